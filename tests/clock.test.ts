import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ManualClock, systemClock } from "../src/clock.ts";

const START = Date.UTC(2026, 0, 1);

describe("ManualClock", () => {
  test("starts at 2026-01-01 by default, or at the given time", () => {
    assert.equal(new ManualClock().now(), START);
    assert.equal(new ManualClock(42).now(), 42);
  });

  test("time moves only when told to", () => {
    const clock = new ManualClock(1000);
    assert.equal(clock.now(), 1000);
    assert.equal(clock.now(), 1000);
    clock.advance(250);
    assert.equal(clock.now(), 1250);
    clock.set(5000);
    assert.equal(clock.now(), 5000);
  });

  test("a timer does not fire before its time, and fires once when due", () => {
    const clock = new ManualClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 100);
    assert.equal(clock.pendingTimers, 1);
    assert.equal(clock.nextTimerAt(), 100);
    clock.advance(99);
    assert.deepEqual(fired, []);
    clock.advance(1);
    assert.deepEqual(fired, [100]);
    assert.equal(clock.pendingTimers, 0);
    assert.equal(clock.nextTimerAt(), undefined);
    clock.advance(1000);
    assert.deepEqual(fired, [100]);
  });

  test("fires timers in time order, each seeing its own time as now", () => {
    const clock = new ManualClock(0);
    const fired: Array<[string, number]> = [];
    const at = (name: string, ms: number) =>
      clock.setTimeout(() => fired.push([name, clock.now()]), ms);
    at("c", 300);
    at("a", 100);
    at("d", 400);
    at("b", 200);
    clock.advance(350);
    assert.deepEqual(fired, [["a", 100], ["b", 200], ["c", 300]]);
    assert.equal(clock.now(), 350);
    assert.equal(clock.nextTimerAt(), 400);
    clock.advance(50);
    assert.deepEqual(fired.at(-1), ["d", 400]);
  });

  test("timers due at the same time fire in scheduling order", () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    for (const name of ["first", "second", "third"]) clock.setTimeout(() => fired.push(name), 10);
    clock.advance(10);
    assert.deepEqual(fired, ["first", "second", "third"]);
  });

  test("zero and negative delays fire on the next advance, even advance(0)", () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push("zero"), 0);
    clock.setTimeout(() => fired.push("negative"), -50);
    assert.equal(clock.nextTimerAt(), 0);
    assert.deepEqual(fired, []); // never synchronously
    clock.advance(0);
    assert.deepEqual(fired, ["zero", "negative"]);
    assert.equal(clock.now(), 0);
  });

  test("clearTimeout cancels a pending timer; unknown or fired handles are ignored", () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    const a = clock.setTimeout(() => fired.push("a"), 10);
    const b = clock.setTimeout(() => fired.push("b"), 20);
    clock.clearTimeout(a);
    assert.equal(clock.pendingTimers, 1);
    clock.clearTimeout(12345);
    clock.clearTimeout(undefined);
    clock.advance(30);
    assert.deepEqual(fired, ["b"]);
    clock.clearTimeout(b);
    clock.clearTimeout(a);
    assert.equal(clock.pendingTimers, 0);
  });

  test("a timer can cancel a later timer due in the same advance", () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    const handles: { later?: unknown } = {};
    clock.setTimeout(() => {
      fired.push("early");
      clock.clearTimeout(handles.later);
    }, 10);
    handles.later = clock.setTimeout(() => fired.push("later"), 20);
    clock.advance(100);
    assert.deepEqual(fired, ["early"]);
  });

  test("handles are distinct", () => {
    const clock = new ManualClock(0);
    const handles = new Set(Array.from({ length: 50 }, () => clock.setTimeout(() => {}, 1)));
    assert.equal(handles.size, 50);
  });

  test("timers scheduled during an advance fire in the same advance when due", () => {
    const clock = new ManualClock(0);
    const fired: Array<[string, number]> = [];
    clock.setTimeout(() => {
      fired.push(["outer", clock.now()]);
      clock.setTimeout(() => {
        fired.push(["inner", clock.now()]);
        clock.setTimeout(() => fired.push(["innermost", clock.now()]), 0);
      }, 5);
      clock.setTimeout(() => fired.push(["too late", clock.now()]), 100);
    }, 10);
    clock.setTimeout(() => fired.push(["other", clock.now()]), 12);
    clock.advance(20);
    assert.deepEqual(fired, [["outer", 10], ["other", 12], ["inner", 15], ["innermost", 15]]);
    assert.equal(clock.now(), 20);
    assert.equal(clock.nextTimerAt(), 110);
    clock.advance(90);
    assert.deepEqual(fired.at(-1), ["too late", 110]);
  });

  test("a self-rescheduling timer runs once per period", () => {
    const clock = new ManualClock(0);
    const ticks: number[] = [];
    const tick = () => {
      ticks.push(clock.now());
      clock.setTimeout(tick, 10);
    };
    clock.setTimeout(tick, 10);
    clock.advance(45);
    assert.deepEqual(ticks, [10, 20, 30, 40]);
    assert.equal(clock.pendingTimers, 1);
  });

  test("set never goes backwards and advance ignores negative steps", () => {
    const clock = new ManualClock(1000);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 10);
    clock.set(500);
    assert.equal(clock.now(), 1000);
    clock.advance(-100);
    assert.equal(clock.now(), 1000);
    assert.deepEqual(fired, []);
    clock.set(1010);
    assert.deepEqual(fired, [1010]);
    clock.set(0);
    assert.equal(clock.now(), 1010);
  });

  test("property: every due timer fires exactly once, in time order, never early", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -10, max: 500 }), { maxLength: 30 }),
        fc.array(fc.integer({ min: -20, max: 200 }), { maxLength: 10 }),
        (delays, steps) => {
          const clock = new ManualClock(0);
          const fired: Array<{ id: number; due: number; at: number }> = [];
          delays.forEach((delay, id) => {
            const due = Math.max(0, delay);
            clock.setTimeout(() => fired.push({ id, due, at: clock.now() }), delay);
          });
          let now = 0;
          for (const step of steps) {
            clock.advance(step);
            now += Math.max(0, step);
            assert.equal(clock.now(), now);
            // exactly the timers due by now have fired
            const expected = delays
              .map((d, id) => ({ id, due: Math.max(0, d) }))
              .filter((t) => t.due <= now)
              .sort((x, y) => x.due - y.due || x.id - y.id)
              .map((t) => t.id);
            assert.deepEqual(fired.map((f) => f.id), expected);
            assert.equal(clock.pendingTimers, delays.length - expected.length);
          }
          for (const f of fired) assert.equal(f.at, f.due);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("systemClock", () => {
  test("now() is the wall clock", () => {
    const before = Date.now();
    const now = systemClock.now();
    const after = Date.now();
    assert.ok(now >= before && now <= after);
  });
});
