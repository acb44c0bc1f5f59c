// A real busy child: its CPU time is the point. Every wait is bounded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parentPid, parseProcStat, processTreeCpuMs } from "./process_cpu.ts";

test("a /proc stat line is read past a command name with spaces and parentheses", () => {
  const line = "4242 (postgres: a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 " +
    "250 75 30 12 20 0 1 0 1000 100000 200 18446744073709551615";
  assert.deepEqual(parseProcStat(line), {
    pid: 4242,
    ppid: 17,
    utime: 250,
    stime: 75,
    cutime: 30,
    cstime: 12,
  });
  assert.throws(() => parseProcStat("garbage"), /unreadable/);
});

test("a process tree's CPU counts a busy child, live and after it exited", async () => {
  // This test process is the parent; the child spins until it has used 600 ms of CPU, then waits.
  const busy = "import process from 'node:process'; " +
    "while (process.cpuUsage().user < 600_000) {} " +
    "console.log('spun'); await new Promise((r) => setTimeout(r, 30_000));";
  const before = await processTreeCpuMs(Deno.pid);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", busy],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const kill = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    const reader = child.stdout.getReader();
    const { value } = await reader.read(); // "spun": the CPU has been used
    assert.match(new TextDecoder().decode(value), /spun/);
    reader.releaseLock();
    assert.equal(await parentPid(child.pid), Deno.pid);
    const live = await processTreeCpuMs(Deno.pid);
    assert.ok(live - before >= 500, `live child: ${live - before} ms`);
    child.kill("SIGTERM");
    await child.status; // reaped: its time is now in our cutime
    const exited = await processTreeCpuMs(Deno.pid);
    assert.ok(exited - before >= 500, `exited child: ${exited - before} ms`);
  } finally {
    clearTimeout(kill);
    await child.stdout.cancel().catch(() => {});
  }
});

test("a process that does not exist is an error", async () => {
  await assert.rejects(processTreeCpuMs(2 ** 22 + 17), /no process/);
});
