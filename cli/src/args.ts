/**
 * A small declarative argument parser (no runtime APIs): long options with `--name value`
 * or `--name=value`, short aliases, booleans, integers, repeatable lists, positionals,
 * `--` to end options, and usage errors that name the offending argument.
 *
 * @module
 */

import { usage } from "./errors.ts";

/** How an option's value is read. */
export type OptionType = "boolean" | "string" | "integer" | "size" | "list";

/** One option of a command. */
export interface OptionSpec {
  /** Long name, without the dashes. */
  name: string;
  /** One-letter alias, without the dash. */
  short?: string;
  type: OptionType;
  /** Placeholder of the value in help (`<dir>`). */
  value?: string;
  description: string;
  /** Allowed values (string options). */
  choices?: readonly string[];
}

/** One positional argument. */
export interface PositionalSpec {
  name: string;
  required: boolean;
  /** Takes every remaining positional (the last one only). */
  variadic?: boolean;
}

/** A command: what it takes and how it is described. */
export interface CommandSpec {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Longer text for `--help`. */
  description: string;
  positionals: readonly PositionalSpec[];
  options: readonly OptionSpec[];
  examples?: readonly string[];
}

/** A parsed option value. */
export type OptionValue = string | boolean | number | string[];

/** The parsed command line of one command. */
export interface ParsedArgs {
  options: Record<string, OptionValue | undefined>;
  positionals: string[];
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 * 1024,
  mb: 1024 * 1024,
  mib: 1024 * 1024,
};

/** Parses `512`, `64k`, `1MiB` (binary units) into bytes. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  if (!match) return undefined;
  const unit = SIZE_UNITS[match[2].toLowerCase()];
  if (unit === undefined) return undefined;
  const value = Number(match[1]) * unit;
  return Number.isSafeInteger(value) ? value : undefined;
}

function convert(spec: OptionSpec, raw: string, flag: string): OptionValue {
  switch (spec.type) {
    case "integer": {
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        throw usage(`${flag} expects a non-negative integer, got ${JSON.stringify(raw)}`);
      }
      return Number(raw);
    }
    case "size": {
      const size = parseSize(raw);
      if (size === undefined) {
        throw usage(
          `${flag} expects a size such as 262144, 256k or 1MiB, got ${JSON.stringify(raw)}`,
        );
      }
      return size;
    }
    default:
      if (spec.choices && !spec.choices.includes(raw)) {
        throw usage(
          `${flag} must be one of ${spec.choices.join(", ")}, got ${JSON.stringify(raw)}`,
        );
      }
      return raw;
  }
}

function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length];
}

/** Parses `argv` (the arguments after the command name) against `spec`. */
export function parseArgs(argv: readonly string[], spec: CommandSpec): ParsedArgs {
  const byName = new Map(spec.options.map((option) => [option.name, option]));
  const byShort = new Map(
    spec.options.filter((option) => option.short).map((option) => [option.short!, option]),
  );
  const options: Record<string, OptionValue | undefined> = {};
  const positionals: string[] = [];
  const set = (option: OptionSpec, value: OptionValue, flag: string): void => {
    if (option.type === "list") {
      const list = (options[option.name] as string[] | undefined) ?? [];
      list.push(value as string);
      options[option.name] = list;
    } else if (options[option.name] !== undefined && option.type !== "boolean") {
      throw usage(`${flag} given more than once`);
    } else {
      options[option.name] = value;
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let option: OptionSpec | undefined;
    let flag = arg;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (eq >= 0) inline = arg.slice(eq + 1);
      flag = `--${name}`;
      option = byName.get(name);
      if (!option) {
        const guess = closest(name, [...byName.keys()]);
        throw usage(
          `unknown option ${flag} for "${spec.name}"${guess ? ` (did you mean --${guess}?)` : ""}`,
        );
      }
    } else if (arg.startsWith("-") && arg.length > 1 && !/^-\d/.test(arg)) {
      option = byShort.get(arg.slice(1, 2));
      if (!option || arg.length > 2) {
        throw usage(`unknown option ${arg} for "${spec.name}"`);
      }
    } else {
      positionals.push(arg);
      continue;
    }
    if (option.type === "boolean") {
      if (inline !== undefined) {
        if (inline !== "true" && inline !== "false") {
          throw usage(`${flag} takes no value (or =true / =false)`);
        }
        set(option, inline === "true", flag);
      } else set(option, true, flag);
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      if (i + 1 >= argv.length) {
        throw usage(`${flag} needs a value${option.value ? ` ${option.value}` : ""}`);
      }
      raw = argv[++i];
    }
    set(option, convert(option, raw, flag), flag);
  }
  if (options.help) return { options, positionals };
  const required = spec.positionals.filter((positional) => positional.required).length;
  const variadic = spec.positionals.some((positional) => positional.variadic);
  if (positionals.length < required) {
    const missing = spec.positionals[positionals.length];
    throw usage(`"${spec.name}" needs <${missing.name}>${missing.variadic ? "..." : ""}`);
  }
  if (!variadic && positionals.length > spec.positionals.length) {
    throw usage(
      `"${spec.name}" takes at most ${spec.positionals.length} argument(s), got ${
        JSON.stringify(positionals[spec.positionals.length])
      }`,
    );
  }
  return { options, positionals };
}

function positionalUsage(positional: PositionalSpec): string {
  const body = `<${positional.name}>${positional.variadic ? "..." : ""}`;
  return positional.required ? body : `[${body}]`;
}

/** `--help` text of one command. */
export function commandHelp(program: string, spec: CommandSpec): string {
  const lines: string[] = [];
  const args = spec.positionals.map(positionalUsage).join(" ");
  lines.push(`Usage: ${program} ${spec.name} [options]${args ? ` ${args}` : ""}`, "");
  lines.push(spec.description.trim(), "");
  lines.push("Options:");
  const labels = spec.options.map((option) => {
    const short = option.short ? `-${option.short}, ` : "    ";
    const value = option.type === "boolean" ? "" : ` ${option.value ?? "<value>"}`;
    return `${short}--${option.name}${value}`;
  });
  const width = Math.max(...labels.map((label) => label.length)) + 2;
  spec.options.forEach((option, i) => {
    const choices = option.choices ? ` (${option.choices.join(" | ")})` : "";
    lines.push(`  ${labels[i].padEnd(width)}${option.description}${choices}`);
  });
  if (spec.examples && spec.examples.length > 0) {
    lines.push("", "Examples:");
    for (const example of spec.examples) lines.push(`  ${example}`);
  }
  return lines.join("\n") + "\n";
}
