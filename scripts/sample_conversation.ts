/**
 * A deterministic, realistic agent conversation: JSON records shaped like a coding
 * agent's rollout (session meta, user and assistant messages, tool calls and outputs),
 * with multi-byte text (accents, CJK, emoji, RTL) throughout.
 */

import { mulberry32 } from "./seeded_random.ts";

/** One record of the sample conversation. */
export type SampleRecord = Record<string, unknown>;

const PHRASES = [
  "Refactor the parser so the tokenizer streams instead of buffering.",
  "Les tests échouent encore : l'encodage UTF-8 est coupé au milieu d'un caractère.",
  "请把这个函数拆分成更小的模块，并补充单元测试。",
  "テストは全部通りました 🎉 次はベンチマークです。",
  "הקובץ נשמר בהצלחה, אבל ההרשאות שגויות.",
  "Ünïcödé nörmälïzätïön: é (e + \u0301) vs é — both must survive byte for byte.",
  "Running `cargo test --workspace`… 🦀 412 passed; 0 failed.",
  "Здравствуйте! Проверьте, пожалуйста, миграцию базы данных.",
];

/** Builds about `targetBytes` of JSON Lines worth of records. */
export function* sampleConversation(
  conversationId: string,
  targetBytes: number,
  seed = 7,
): Generator<SampleRecord> {
  const random = mulberry32(seed);
  const pick = () => PHRASES[Math.floor(random() * PHRASES.length)];
  const start = Date.UTC(2026, 10, 1, 9, 0, 0);
  let bytes = 0;
  let turn = 0;
  const emit = (record: SampleRecord): SampleRecord => {
    bytes += JSON.stringify(record).length + 1;
    return record;
  };
  yield emit({
    type: "session_meta",
    timestamp: new Date(start).toISOString(),
    payload: { id: conversationId, cwd: "/home/dev/project", cli_version: "0.42.0" },
  });
  while (bytes < targetBytes) {
    const timestamp = new Date(start + turn * 7_000).toISOString();
    const kind = turn % 4;
    if (kind === 0) {
      yield emit({ type: "user_message", timestamp, turn, text: pick() });
    } else if (kind === 1) {
      const lines = 3 + Math.floor(random() * 20);
      yield emit({
        type: "assistant_message",
        timestamp,
        turn,
        text: Array.from({ length: lines }, pick).join("\n"),
      });
    } else if (kind === 2) {
      yield emit({
        type: "function_call",
        timestamp,
        turn,
        name: "shell",
        arguments: { command: ["bash", "-lc", `rg -n "TODO" src/ | head -${turn % 50}`] },
      });
    } else {
      const size = 200 + Math.floor(random() * 4000);
      yield emit({
        type: "function_call_output",
        timestamp,
        turn,
        output: pick().repeat(Math.ceil(size / 60)).slice(0, size),
        exit_code: random() < 0.9 ? 0 : 1,
      });
    }
    turn++;
  }
}

/** At most `bytes` (and nearly that many) of JSON Lines of the sample conversation. */
export function sampleJsonLines(bytes: number, conversationId = "bench"): Uint8Array {
  const lines: string[] = [];
  for (const record of sampleConversation(conversationId, bytes)) {
    lines.push(JSON.stringify(record));
  }
  const all = new TextEncoder().encode(lines.join("\n") + "\n");
  if (all.length <= bytes) return all;
  return all.subarray(0, all.lastIndexOf(0x0a, bytes - 1) + 1);
}
