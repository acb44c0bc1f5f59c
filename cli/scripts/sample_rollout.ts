/**
 * A deterministic, realistic Codex CLI rollout: JSON Lines shaped like the session files
 * the Codex CLI writes under `~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl` — a
 * `session_meta` line, then `turn_context`, `response_item` (messages, reasoning,
 * function calls and their outputs) and `event_msg` (user/agent messages, token counts)
 * lines — with multi-byte text (accents, CJK, emoji, RTL, combining marks) throughout.
 *
 * Used to build the bundled fixture (`gen_sample_rollout.ts`) and the CLI tests' inputs.
 *
 * @module
 */

import { mulberry32 } from "../../scripts/seeded_random.ts";

const PHRASES = [
  "Refactor the parser so the tokenizer streams instead of buffering.",
  "Les tests échouent encore : l'encodage UTF-8 est coupé au milieu d'un caractère.",
  "请把这个函数拆分成更小的模块，并补充单元测试。",
  "テストは全部通りました 🎉 次はベンチマークです。",
  "הקובץ נשמר בהצלחה, אבל ההרשאות שגויות.",
  "Ünïcödé nörmälïzätïön: é (e + \u0301) vs é — both must survive byte for byte.",
  "Running `cargo test --workspace`… 🦀 412 passed; 0 failed.",
  "Здравствуйте! Проверьте, пожалуйста, миграцию базы данных.",
  "Ο έλεγχος τύπων ολοκληρώθηκε χωρίς σφάλματα ✅",
  "🧪 flaky: `test_retry_backoff` timed out after 30 s (seed 0x5eed)",
];

const COMMANDS = [
  ["bash", "-lc", "rg -n 'TODO' src/ | head -40"],
  ["bash", "-lc", "cargo test --workspace 2>&1 | tail -20"],
  ["bash", "-lc", "git status --short && git diff --stat"],
  ["bash", "-lc", "sed -n '1,120p' src/parser/tokenizer.rs"],
  ["bash", "-lc", "npm run lint -- --fix"],
];

/** Options of {@link sampleRollout}. */
export interface SampleRolloutOptions {
  /** The session id written in `session_meta` (the conversation id). */
  sessionId: string;
  /** Stop once about this many bytes were produced. */
  targetBytes: number;
  /** Seed of the generator: the same options always give the same lines. */
  seed?: number;
  /** Start time of the session (ms since the epoch, default 2025-11-01T09:00:00Z). */
  startMs?: number;
}

/** The first `count` code points of `text` (never half a surrogate pair). */
function codePoints(text: string, count: number): string {
  return Array.from(text).slice(0, count).join("");
}

/**
 * The lines of a sample rollout (without their newlines), about `targetBytes` of UTF-8
 * in all. Deterministic for given options.
 */
export function* sampleRollout(options: SampleRolloutOptions): Generator<string> {
  const random = mulberry32(options.seed ?? 1);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const sentences = (count: number): string =>
    Array.from({ length: count }, () => pick(PHRASES)).join(" ");
  const encoder = new TextEncoder();
  const start = options.startMs ?? Date.UTC(2025, 10, 1, 9, 0, 0);
  let clock = start;
  const at = (stepMs: number): string => {
    clock += stepMs;
    return new Date(clock).toISOString();
  };
  let bytes = 0;
  const line = (record: unknown): string => {
    const text = JSON.stringify(record);
    bytes += encoder.encode(text).length + 1;
    return text;
  };

  yield line({
    timestamp: at(0),
    type: "session_meta",
    payload: {
      id: options.sessionId,
      timestamp: new Date(start).toISOString(),
      cwd: "/home/dev/projets/analyseur-données",
      originator: "codex_cli_rs",
      cli_version: "0.58.0",
      instructions: null,
      git: {
        commit_hash: "5f3c2a9e1b7d4c6a8e0f2b4d6c8a0e1f3b5d7c9a",
        branch: "feature/streaming-tokenizer",
        repository_url: "git@github.com:example/analyseur.git",
      },
    },
  });
  let turn = 0;
  let inputTokens = 0;
  let outputTokens = 0;
  while (bytes < options.targetBytes) {
    turn++;
    const ask = sentences(1 + Math.floor(random() * 3));
    yield line({
      timestamp: at(1_000),
      type: "turn_context",
      payload: {
        cwd: "/home/dev/projets/analyseur-données",
        approval_policy: "on-request",
        sandbox_policy: { mode: "workspace-write", network_access: false },
        model: "gpt-5-codex",
        effort: "medium",
        summary: "auto",
      },
    });
    yield line({
      timestamp: at(10),
      type: "response_item",
      payload: { type: "message", role: "user", content: [{ type: "input_text", text: ask }] },
    });
    yield line({
      timestamp: at(5),
      type: "event_msg",
      payload: { type: "user_message", message: ask, images: [] },
    });
    const calls = 1 + Math.floor(random() * 4);
    for (let call = 0; call < calls; call++) {
      const summary = `**${codePoints(pick(PHRASES), 40)}**\n\n${sentences(2)}`;
      yield line({
        timestamp: at(800),
        type: "response_item",
        payload: {
          type: "reasoning",
          summary: [{ type: "summary_text", text: summary }],
          content: null,
          encrypted_content: `gAAAAAB${Math.floor(random() * 1e15).toString(36).repeat(24)}`,
        },
      });
      yield line({
        timestamp: at(5),
        type: "event_msg",
        payload: { type: "agent_reasoning", text: summary },
      });
      const callId = `call_${turn}_${call}_${Math.floor(random() * 1e9).toString(36)}`;
      yield line({
        timestamp: at(300),
        type: "response_item",
        payload: {
          type: "function_call",
          name: "shell",
          arguments: JSON.stringify({
            command: pick(COMMANDS),
            workdir: "/home/dev/projets/analyseur-données",
            timeout_ms: 120_000,
          }),
          call_id: callId,
        },
      });
      const size = 300 + Math.floor(random() * 6_000);
      const output = codePoints(
        Array.from(
          { length: Math.ceil(size / 70) },
          (_, i) => `${String(i + 1).padStart(4, " ")}  ${pick(PHRASES)}`,
        ).join("\n"),
        size,
      );
      yield line({
        timestamp: at(2_000 + Math.floor(random() * 9_000)),
        type: "response_item",
        payload: {
          type: "function_call_output",
          call_id: callId,
          output: JSON.stringify({
            output,
            metadata: { exit_code: random() < 0.9 ? 0 : 1, duration_seconds: random() * 12 },
          }),
        },
      });
      inputTokens += 2_000 + Math.floor(random() * 20_000);
      outputTokens += 50 + Math.floor(random() * 900);
      yield line({
        timestamp: at(5),
        type: "event_msg",
        payload: {
          type: "token_count",
          info: {
            total_token_usage: {
              input_tokens: inputTokens,
              cached_input_tokens: Math.floor(inputTokens * 0.8),
              output_tokens: outputTokens,
              reasoning_output_tokens: Math.floor(outputTokens * 0.4),
              total_tokens: inputTokens + outputTokens,
            },
            model_context_window: 272_000,
          },
          rate_limits: { primary: { used_percent: (turn % 100) + 0.5, window_minutes: 300 } },
        },
      });
    }
    const answer = sentences(3 + Math.floor(random() * 12));
    yield line({
      timestamp: at(1_500),
      type: "event_msg",
      payload: { type: "agent_message", message: answer },
    });
    yield line({
      timestamp: at(5),
      type: "response_item",
      payload: {
        type: "message",
        role: "assistant",
        content: [{ type: "output_text", text: answer }],
      },
    });
  }
}

/** The sample rollout as one JSON Lines file (every line newline-terminated). */
export function sampleRolloutText(options: SampleRolloutOptions): string {
  let text = "";
  for (const line of sampleRollout(options)) text += line + "\n";
  return text;
}
