/**
 * Text formatting helpers: sizes, times, tables.
 *
 * @module
 */

/** `3.02 MiB`, `512 B`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

/** An epoch-ms time as ISO 8601 (UTC, seconds). */
export function formatTime(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "-";
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** `1.2 s`, `340 ms`. */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Shortens `text` to `width` characters with an ellipsis in the middle. */
export function middleEllipsis(text: string, width: number): string {
  const chars = Array.from(text);
  if (chars.length <= width) return text;
  if (width <= 1) return "…";
  const head = Math.ceil((width - 1) / 2);
  const tail = Math.floor((width - 1) / 2);
  return chars.slice(0, head).join("") + "…" + chars.slice(chars.length - tail).join("");
}

/** Renders rows as an aligned text table with a header. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(Array.from(title).length, ...rows.map((row) => Array.from(row[column] ?? "").length))
  );
  const render = (cells: readonly string[]) =>
    cells.map((cell, column) =>
      column === cells.length - 1
        ? cell
        : cell + " ".repeat(widths[column] - Array.from(cell).length)
    ).join("  ").trimEnd();
  return [render(header), ...rows.map(render)].join("\n") + "\n";
}
