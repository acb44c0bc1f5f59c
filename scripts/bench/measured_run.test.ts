// Real child processes: their memory and their exit are the point. Every wait is bounded
// by the runner's own timeout.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  defaultPeakRssMethod,
  measuredRun,
  measuredSuccess,
  parseGnuTimeCpu,
  parseGnuTimePeak,
  parseVmHwm,
  type PeakRssMethod,
} from "./measured_run.ts";

const MIB = 1024 * 1024;
const deno = Deno.execPath();
/** A child that touches `mib` MiB and holds them for 300 ms (long enough to be polled). */
const holding = (mib: number) =>
  `const a = new Uint8Array(${mib} * 1024 * 1024); a.fill(7); ` +
  `await new Promise((r) => setTimeout(r, 300)); console.log(a[a.length - 1]);`;

const methods: PeakRssMethod[] = ["/proc/<pid>/status VmHWM polling"];
if (defaultPeakRssMethod() === "/usr/bin/time -v") methods.push("/usr/bin/time -v");

for (const method of methods) {
  test(`${method}: a child's peak RSS includes what it touched`, async () => {
    const big = await measuredSuccess("big", deno, ["eval", holding(300)], { method });
    const small = await measuredSuccess("small", deno, ["eval", holding(1)], { method });
    assert.equal(big.method, method);
    assert.equal(big.stdout.trim(), "7");
    assert.ok(big.peakRssBytes >= 300 * MIB, `big ${big.peakRssBytes}`);
    assert.ok(small.peakRssBytes < 200 * MIB, `small ${small.peakRssBytes}`);
    assert.ok(big.peakRssBytes - small.peakRssBytes >= 250 * MIB);
    assert.ok(big.ms >= 300, `${big.ms}`);
    // Filling 300 MiB takes CPU; GNU time reports it, polling does not measure it.
    if (method === "/usr/bin/time -v") assert.ok(big.cpuMs! > 0, `${big.cpuMs}`);
    else assert.equal(big.cpuMs, undefined);
  });

  test(`${method}: a child past its timeout is killed and the run fails`, async () => {
    const started = performance.now();
    await assert.rejects(
      measuredRun(deno, ["eval", "await new Promise((r) => setTimeout(r, 60_000));"], {
        method,
        timeoutMs: 1_000,
      }),
      /did not end within 1000 ms/,
    );
    assert.ok(performance.now() - started < 20_000);
  });

  test(`${method}: a failing child is reported with its code and output`, async () => {
    const run = await measuredRun(deno, ["eval", "console.error('boom'); Deno.exit(3)"], {
      method,
    });
    assert.equal(run.code, 3);
    await assert.rejects(
      measuredSuccess("child", deno, ["eval", "console.error('boom'); Deno.exit(3)"], { method }),
      /child exited with code 3: boom/,
    );
  });
}

test("GNU time's report and /proc status are read in bytes", () => {
  assert.equal(
    parseGnuTimePeak("\tUser time (seconds): 0.01\n\tMaximum resident set size (kbytes): 2048\n"),
    2 * MIB,
  );
  assert.throws(() => parseGnuTimePeak("Command terminated"), /no peak RSS/);
  assert.equal(
    parseGnuTimeCpu("\tUser time (seconds): 1.25\n\tSystem time (seconds): 0.50\n"),
    1750,
  );
  assert.throws(() => parseGnuTimeCpu("\tUser time (seconds): 1.25\n"), /no System time/);
  assert.equal(parseVmHwm("Name:\tdeno\nVmHWM:\t   4096 kB\nVmRSS:\t 1 kB\n"), 4 * MIB);
  assert.equal(parseVmHwm("Name:\tzombie\n"), undefined);
});
