/**
 * What a scan found of each valid line, kept while its file's source is uploaded and
 * applied in this process, so the job's handler does not parse every line's JSON a second
 * time (issue 17: JSON.parse was the largest cost of the CLI's own that two passes paid).
 *
 * Sound because a source id derives from the content's SHA-256 (`sourceIdFor`): a job of
 * that source applies exactly the bytes the scan judged (the upload checks the file
 * against the scan's digest before it seals, the engine checks each chunk against the
 * manifest). A judgement is used only for the same line number with the same byte length;
 * anything else — an invalid line, a line not judged by this scan (before its `from`), a
 * job of another process — is parsed as before.
 *
 * @module
 */

/** A valid line's judgement (see `ParsedLine`). */
export interface KnownLine {
  recordType: string | null;
  jsonbSafe: boolean;
}

const VALID = 1;
const JSONB_SAFE = 2;

/** The valid lines of one scan, by line number. */
export class JudgedLines {
  readonly #firstLine: number;
  #count = 0;
  #lengths = new Uint32Array(1024);
  #flags = new Uint8Array(1024);
  #types = new Uint16Array(1024);
  readonly #typeNames: (string | null)[] = [null];
  readonly #typeIndex = new Map<string, number>();

  /** `firstLine`: the number of the first line {@link add} is told of. */
  constructor(firstLine: number) {
    this.#firstLine = firstLine;
  }

  /** The next line (numbered one after the last), `byteLength` bytes without its newline. */
  add(byteLength: number, known: KnownLine | undefined): void {
    if (this.#count === this.#lengths.length) this.#grow();
    const at = this.#count++;
    this.#lengths[at] = byteLength;
    if (!known) {
      this.#flags[at] = 0;
      return;
    }
    const type = this.#typeOf(known.recordType);
    // A type beyond the index's range is not kept: the line is parsed again.
    this.#flags[at] = type < 0 ? 0 : VALID | (known.jsonbSafe ? JSONB_SAFE : 0);
    this.#types[at] = Math.max(type, 0);
  }

  /** Line `lineNo`'s judgement, when it was valid and is `byteLength` bytes long. */
  get(lineNo: number, byteLength: number): KnownLine | undefined {
    const at = lineNo - this.#firstLine;
    if (at < 0 || at >= this.#count || this.#lengths[at] !== byteLength) return undefined;
    const flags = this.#flags[at];
    if ((flags & VALID) === 0) return undefined;
    return {
      recordType: this.#typeNames[this.#types[at]],
      jsonbSafe: (flags & JSONB_SAFE) !== 0,
    };
  }

  #typeOf(recordType: string | null): number {
    if (recordType === null) return 0;
    let index = this.#typeIndex.get(recordType);
    if (index === undefined) {
      if (this.#typeNames.length > 0xffff) return -1;
      index = this.#typeNames.length;
      this.#typeNames.push(recordType);
      this.#typeIndex.set(recordType, index);
    }
    return index;
  }

  #grow(): void {
    const size = this.#lengths.length * 2;
    const lengths = new Uint32Array(size);
    lengths.set(this.#lengths);
    const flags = new Uint8Array(size);
    flags.set(this.#flags);
    const types = new Uint16Array(size);
    types.set(this.#types);
    this.#lengths = lengths;
    this.#flags = flags;
    this.#types = types;
  }
}

/** The judgements of the sources being synced in this process, by scope and source id. */
export class LineJudgements {
  readonly #bySource = new Map<string, JudgedLines>();

  set(scope: string, sourceId: string, lines: JudgedLines): void {
    this.#bySource.set(key(scope, sourceId), lines);
  }

  get(scope: string, sourceId: string): JudgedLines | undefined {
    return this.#bySource.get(key(scope, sourceId));
  }

  delete(scope: string, sourceId: string): void {
    this.#bySource.delete(key(scope, sourceId));
  }
}

function key(scope: string, sourceId: string): string {
  return `${scope.length}:${scope}:${sourceId}`;
}
