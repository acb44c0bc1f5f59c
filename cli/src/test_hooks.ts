/**
 * Hooks for the CLI's own subprocess tests, set through the environment, so that a test
 * can act while chunks are applied whatever the machine's speed, instead of racing the
 * apply. Unset (always, outside those tests), they change nothing.
 *
 * - `CODEX_SYNC_TEST_HOLD_APPLY=<index>:<marker path>`: before chunk `<index>` is applied,
 *   the marker is written and the apply waits for Ctrl-C (`import`).
 * - `CODEX_SYNC_TEST_APPLY_DELAY_MS=<ms>`: every chunk's apply waits that long first
 *   (`serve`, whose dashboard a test watches while a job runs; the wait is inside the
 *   chunk's transaction, and other work runs between chunks).
 *
 * @module
 */

import type { RolloutHandlerOptions } from "./handler.ts";
import type { CliHost } from "./host.ts";

const aborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));

/** The hooks the environment asks for, as handler options; `signal` ends any wait. */
export function testHooks(
  host: CliHost,
  signal: AbortSignal,
): Pick<RolloutHandlerOptions, "beforeApply"> {
  const hold = /^(\d+):(.+)$/.exec(host.env("CODEX_SYNC_TEST_HOLD_APPLY") ?? "");
  const delayMs = Number(host.env("CODEX_SYNC_TEST_APPLY_DELAY_MS") ?? "");
  const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
  if (!hold && delay === 0) return {};
  return {
    async beforeApply(index) {
      if (signal.aborted) return;
      if (delay > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          new Promise<void>((resolve) => timer = setTimeout(resolve, delay)),
          aborted(signal),
        ]);
        clearTimeout(timer);
      }
      if (hold && index === Number(hold[1])) {
        const marker = new TextEncoder().encode(`${index}\n`);
        await host.writeFile(
          hold[2],
          (async function* () {
            yield marker;
          })(),
        );
        await aborted(signal);
      }
    },
  };
}
