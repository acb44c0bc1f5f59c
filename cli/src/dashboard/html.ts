/**
 * HTML built by a tagged template that escapes every interpolated value: conversation
 * content is arbitrary text (HTML, scripts, attribute-breaking quotes), so nothing reaches
 * the page unescaped unless it is an {@link Html} fragment built here.
 *
 * @module
 */

/** A fragment of markup that is already safe to emit. */
export class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

/** What may be interpolated: text (escaped), numbers, fragments, lists of them, nothing. */
export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
  "`": "&#96;",
};

/**
 * Text → markup safe in element content and in quoted attribute values. NUL and the
 * other C0 controls (but tab and newlines) become U+FFFD, as the HTML parser would.
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c]).replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g,
    "\ufffd",
  );
}

function render(value: HtmlValue): string {
  if (value instanceof Html) return value.text;
  if (value === null || value === undefined || value === false) return "";
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

/** `html\`<p>${text}</p>\``: the template's literal parts as written, every value escaped. */
export function html(parts: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = parts[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + parts[i + 1];
  return new Html(out);
}
