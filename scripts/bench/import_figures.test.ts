// The import benchmark's figures from measured runs (scripts/bench_import.ts): ratios,
// medians and targets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { figuresOf, type Run, type StoreResult } from "../bench_import.ts";

const MB = 1000 * 1000;
const MIB = 1024 * 1024;
const run = (ms: number, peakMib: number): Run => ({
  ms,
  peakRssBytes: peakMib * MIB,
  method: "/usr/bin/time -v",
});
const tree = {
  bytes: 100 * MB,
  files: [{ writtenBytes: 60 * MB }, { writtenBytes: 40 * MB }] as never[],
};

function result(overrides: Partial<StoreResult> = {}): StoreResult {
  return {
    naive: [run(10_000, 500), run(12_000, 520)],
    cli: [run(11_000, 400), run(16_000, 480)],
    rateRatios: [10_000 / 11_000, 12_000 / 16_000],
    naiveStoreBytes: 160 * MB,
    cliStoreBytes: 170 * MB,
    cliStoreBytesBeforeGc: 300 * MB,
    noOp: { ms: [900, 1_200, 800], cliMs: [500, 700, 400] },
    incremental: { appendMs: [300, 500, 400], oneLineMs: [200, 200, 250], ratios: [1.5, 2.5, 1.6] },
    ...overrides,
  };
}

const byFigure = (figures: ReturnType<typeof figuresOf>) =>
  new Map(figures.map((figure) => [figure.figure, figure]));

test("import figures: medians of the rounds, against their targets (server)", () => {
  const figures = byFigure(figuresOf("server", result(), tree, 8 * MIB));
  const rate = figures.get(20)!;
  assert.equal(rate.value, Number(((10 / 11 + 12 / 16) / 2).toFixed(3)));
  assert.equal(rate.met, true);
  assert.deepEqual(rate.spread, { min: 0.75, max: 0.909, rounds: 2 });
  const rss = figures.get(21)!;
  assert.equal(rss.value, Number(((400 / 500 + 480 / 520) / 2).toFixed(3)));
  assert.equal(rss.met, true);
  assert.equal(rss.details.method, "/usr/bin/time -v");
  const store = figures.get(22)!;
  assert.equal(store.value, 1.7);
  assert.equal(store.target, "≤ 1.8");
  assert.equal(store.met, true);
  assert.equal(store.details.naiveStoreRatio, 1.6);
  assert.equal(store.details.emptyStoreBytes, 8 * MIB);
  const noOp = figures.get(23)!;
  assert.equal(noOp.value, 900);
  assert.equal(noOp.unit, "ms");
  assert.equal(noOp.met, true);
  const incremental = figures.get(24)!;
  assert.equal(incremental.value, 1.6);
  assert.equal(incremental.met, true);
  assert.match(incremental.name, /largest file \(60\.0 MB\) \+ 1 line/);
});

test("import figures: the rate ratio in CPU, the process's and the server's, when measured", () => {
  const withCpu = result({
    naive: [{ ...run(10_000, 500), cpuMs: 3_000, serverCpuMs: 1_000 }],
    cli: [{ ...run(20_000, 400), cpuMs: 6_000, serverCpuMs: 2_000 }],
    rateRatios: [0.5],
  });
  const rate = byFigure(figuresOf("server", withCpu, tree, 0)).get(20)!;
  assert.deepEqual(rate.details.cpuRateRatios, [0.5]);
  assert.match(rate.measured, /CPU 6\.00 s, server 2\.00 s/);
  assert.match(rate.baseline, /CPU 3\.00 s, server 1\.00 s/);
  assert.equal(
    byFigure(figuresOf("server", result(), tree, 0)).get(20)!.details.cpuRateRatios,
    undefined,
  );
});

test("import figures: missed targets are marked, PGlite's store target is 2.0", () => {
  const slow = result({
    rateRatios: [0.5, 0.7],
    cli: [run(20_000, 900), run(17_000, 880)],
    cliStoreBytes: 210 * MB,
    noOp: { ms: [1_100, 4_000, 3_000], cliMs: [1, 2, 3] },
    incremental: { appendMs: [1, 1, 1], oneLineMs: [1, 1, 1], ratios: [30, 40, 2.1] },
  });
  const figures = byFigure(figuresOf("pglite", slow, tree, 40 * MIB));
  assert.equal(figures.get(20)!.met, false);
  assert.equal(figures.get(21)!.met, false);
  assert.equal(figures.get(22)!.target, "≤ 2.0");
  assert.equal(figures.get(22)!.value, 2.1);
  assert.equal(figures.get(22)!.met, false);
  assert.equal(figures.get(23)!.value, 3_000);
  assert.equal(figures.get(23)!.met, false);
  assert.equal(figures.get(24)!.value, 30);
  assert.equal(figures.get(24)!.met, false);
  for (const figure of figures.values()) assert.match(figure.name, /^PGlite \(embedded\)/);
});
