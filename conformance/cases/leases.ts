/**
 * Cases `lease:`: leases and fencing tokens — a crashed worker's claim, stale commits
 * refused, heartbeats, a chunk that kills every worker, and for any adapter (one worker
 * included) a lease renewed by every commit and every heartbeat.
 *
 * @module
 */

import { Capability } from "../../src/contracts/capabilities.ts";
import { assert, assertEquals } from "../assert.ts";
import { expectSyncError } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase } from "../types.ts";
import {
  appliesInTransaction,
  deferred,
  eventually,
  expectNothingClaimed,
  HEARTBEAT_MS,
  indexes,
  LEASE_MS,
  newWorker,
  recordApplies,
  settleWithin,
  SUITE_MAX_ATTEMPTS,
  track,
  turnsUntil,
} from "./support.ts";

const leaseList: ConformanceCase[] = [
  {
    name: "lease: a crashed worker's claim blocks others until it expires, then work resumes " +
      "at the cursor",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      let failedOnce = false;
      const seen = recordApplies(t, (index) => {
        if (index === 2 && !failedOnce) {
          failedOnce = true;
          throw new Error("transient");
        }
      });
      const sealed = await t.uploadAndSeal(textChunks(4, "lease"));
      const jobId = sealed.job.jobId;
      await t.harness.drain();
      const partial = await t.job(jobId);
      assertEquals([partial.state, partial.cursor], ["retry_wait", 2], "progress before A");
      const earlierTokens = seen.map((s) => s.token ?? 0);
      t.clock.set(partial.runAt);
      const a = newWorker(t, "a");
      const claimed = await a.claimNextJob();
      assert(claimed !== undefined, "worker A claims the due job");
      assertEquals(claimed.jobId, jobId, "claimed job");
      assertEquals(claimed.state, "running", "claimed state");
      assertEquals(claimed.lease?.owner, "a", "lease owner");
      const tokenA = claimed.lease!.token;
      assert(
        earlierTokens.every((token) => token < tokenA),
        `A's token ${tokenA} is above earlier tokens ${earlierTokens}`,
      );
      const expiresAt = claimed.lease!.expiresAt;
      assertEquals(expiresAt, t.clock.now() + LEASE_MS, "lease expiry = claim time + leaseMs");
      // Worker A crashes: it never runs the job.
      const held = await t.job(jobId);
      t.clock.set(expiresAt - 1);
      await t.harness.drain();
      const b = newWorker(t, "b");
      await expectNothingClaimed(b, "B while A's lease holds");
      assertEquals(seen.length, 3, "apply calls while A's lease holds");
      assertEquals(await t.job(jobId), held, "job while A's lease holds");
      t.clock.set(expiresAt + 1);
      // Claim and run, not runDueJobs: bounded even if the adapter hands the job out again.
      const claimedByB = await b.claimNextJob();
      assertEquals(claimedByB?.jobId, jobId, "B claims the job once A's lease expired");
      await b.runClaimedJob(claimedByB!);
      const done = await t.job(jobId);
      assertEquals(done.state, "succeeded", "final state");
      assertEquals(done.cursor, 4, "final cursor");
      const byB = seen.slice(3);
      assertEquals(indexes(byB), [2, 3], "B resumes at the cursor");
      assert(byB.every((s) => s.owner === "b"), "B's calls run under B's lease");
      assert(
        byB.every((s) => s.token !== undefined && s.token > tokenA),
        `B's token is above A's (${byB.map((s) => s.token)} vs ${tokenA})`,
      );
      assertEquals(indexes(t.handler.applied), [0, 1, 2, 3], "each chunk applied once in all");
    },
  },
  {
    name: "lease: a stale worker's commits are refused after another worker took over",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const seen = recordApplies(t);
      const sealed = await t.uploadAndSeal(textChunks(3, "stale"));
      const a = newWorker(t, "a");
      const jobA = await a.claimNextJob();
      assert(jobA?.lease !== undefined, "worker A claims the job");
      t.clock.set(jobA.lease.expiresAt + 1);
      const b = newWorker(t, "b");
      const jobB = await b.claimNextJob();
      assert(jobB?.lease !== undefined, "worker B claims the expired job");
      assert(jobB.lease.token > jobA.lease.token, "B's fencing token is above A's");
      // A wakes up while B holds the job: none of A's commits may land.
      const staleRun = async (label: string) => {
        const before = await t.job(sealed.job.jobId);
        const calls = seen.length;
        t.clock.advance(5);
        try {
          await a.runClaimedJob(jobA);
        } catch (error) {
          // Refusing loudly is fine too; changing the job is not.
          await expectSyncError(Promise.reject(error), "E_SYNC_LEASE_LOST");
        }
        assertEquals(await t.job(sealed.job.jobId), before, `${label}: A changed nothing`);
        const byA = seen.length - calls;
        assert(byA <= 1, `${label}: A applies no further chunk (${byA} calls)`);
        seen.splice(calls);
      };
      await staleRun("while B holds the lease");
      const done = await b.runClaimedJob(jobB);
      assertEquals(done.state, "succeeded", "state after B");
      assertEquals((await t.job(done.jobId)).cursor, 3, "cursor after B");
      assertEquals(indexes(seen), [0, 1, 2], "B applied every chunk once");
      assert(seen.every((s) => s.owner === "b"), "B applied under its own lease");
      await staleRun("after B finished");
      await expectNothingClaimed(a, "A after B finished");
    },
  },
  {
    name: "lease: heartbeats keep the lease of a worker whose handler is still running",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const entered = deferred<void>();
      const gate = deferred<void>();
      try {
        const seen = recordApplies(t, async (index) => {
          if (index === 0) {
            entered.resolve();
            await gate.promise;
          }
        });
        const sealed = await t.uploadAndSeal(textChunks(2, "heartbeat"));
        const jobId = sealed.job.jobId;
        const draining = track(t.harness.drain());
        await settleWithin(entered.promise, "the handler was never called");
        const owner = seen[0].owner;
        const claimedAt = t.clock.now();
        const b = newWorker(t, "b");
        const transactional = appliesInTransaction(t);
        // Past the lease only where each heartbeat is awaited. A transactional store may hold
        // the job's row while the handler runs (B cannot claim it) or, on a pooled server,
        // not hold it and extend the lease by heartbeats from other transactions: a clock
        // that jumps past the lease before the first heartbeat commits would let B take the
        // job over rightly. So there the clock stays within the lease.
        const horizon = claimedAt + (transactional ? LEASE_MS - HEARTBEAT_MS : LEASE_MS * 1.5);
        while (t.clock.now() < horizon) {
          t.clock.advance(HEARTBEAT_MS);
          if (transactional) continue;
          await eventually(
            async () => (await t.job(jobId)).lease?.expiresAt === t.clock.now() + LEASE_MS,
            `the heartbeat at +${t.clock.now() - claimedAt} ms extends the lease to now + leaseMs`,
          );
          await expectNothingClaimed(b, "B while the lease is kept alive");
        }
        const bRun = track(b.runDueJobs());
        await turnsUntil(() => bRun.settled, 20);
        gate.resolve();
        assertEquals(await settleWithin(bRun.promise, "B's run"), 0, "B never ran the job");
        await settleWithin(draining.promise, "drain after the handler was released");
        const done = await t.job(jobId);
        assertEquals(done.state, "succeeded", "final state");
        assertEquals(indexes(seen), [0, 1], "apply calls");
        assert(seen.every((s) => s.owner === owner), "every chunk applied by the first worker");
      } finally {
        gate.resolve();
      }
    },
  },
  {
    name: "lease: heartbeats keep the lease while the verify hook runs",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const gate = deferred<void>();
      try {
        const entered = deferred<void>();
        t.handler.onVerify(async () => {
          entered.resolve();
          await gate.promise;
        });
        const sealed = await t.uploadAndSeal(textChunks(2, "verify-heartbeat"));
        const jobId = sealed.job.jobId;
        const draining = track(t.harness.drain());
        await settleWithin(entered.promise, "the verify hook was never called");
        const startedAt = t.clock.now();
        const b = newWorker(t, "b");
        const transactional = appliesInTransaction(t);
        while (t.clock.now() < startedAt + LEASE_MS * 1.5) {
          t.clock.advance(HEARTBEAT_MS);
          if (transactional) continue;
          await eventually(
            async () => (await t.job(jobId)).lease?.expiresAt === t.clock.now() + LEASE_MS,
            `the heartbeat at +${t.clock.now() - startedAt} ms while the verify hook runs ` +
              "extends the lease to now + leaseMs",
          );
          await expectNothingClaimed(b, "B while the verify hook's lease is kept alive");
        }
        const bRun = track(b.runDueJobs());
        await turnsUntil(() => bRun.settled, 20);
        gate.resolve();
        assertEquals(await settleWithin(bRun.promise, "B's run"), 0, "B never ran the job");
        await settleWithin(draining.promise, "drain after the verify hook was released");
        assertEquals((await t.job(jobId)).state, "succeeded", "final state");
        assertEquals(t.handler.verifications.length, 1, "verify calls (never run twice)");
      } finally {
        gate.resolve();
      }
    },
  },
  {
    name:
      "lease: a chunk whose every worker dies fails the job after maxAttempts (no endless loop)",
    requires: [Capability.concurrentWorkers],
    hooks: ["newWorker"],
    async run(t) {
      const sealed = await t.uploadAndSeal(textChunks(2, "crash-loop"));
      for (let death = 1; death <= SUITE_MAX_ATTEMPTS; death++) {
        const claimed = await newWorker(t, `dies-${death}`).claimNextJob();
        assert(claimed?.lease !== undefined, `worker ${death} claims the job`);
        assertEquals(claimed.attempt, death - 1, `attempts counted before worker ${death}`);
        // The worker dies holding the lease: it never commits nor renews it.
        t.clock.set(claimed.lease.expiresAt);
      }
      const next = await newWorker(t, "survivor").claimNextJob();
      assertEquals(next, undefined, "nothing left to claim");
      const done = await t.job(sealed.job.jobId);
      assertEquals(done.state, "failed", "job state");
      assertEquals(done.attempt, SUITE_MAX_ATTEMPTS, "attempts");
      assertEquals(done.error?.code, "E_SYNC_LEASE_LOST", "error code");
      assertEquals(done.error?.retryable, false, "final");
      assertEquals(t.handler.calls.length, 0, "no handler ran");
    },
  },
  {
    name: "lease: a job outliving its lease renews it at every chunk, under one claim",
    async run(t) {
      const step = Math.floor(LEASE_MS * 0.6);
      const entries: { index: number; now: number; expiresAt?: number; token?: number }[] = [];
      t.handler.onApply((chunk, context) => {
        entries.push({
          index: chunk.index,
          now: t.clock.now(),
          expiresAt: context.job.lease?.expiresAt,
          token: context.job.lease?.token,
        });
        // Each chunk takes most of a lease; the job takes more than two in all.
        t.clock.advance(step);
      });
      const sealed = await t.uploadAndSeal(textChunks(4, "renew"));
      const done = await t.runToTerminal(sealed.job.jobId);
      assertEquals(done.state, "succeeded", "final state");
      assertEquals(done.attempt, 0, "no attempt was lost to the lease");
      assertEquals(indexes(entries), [0, 1, 2, 3], "each chunk applied once, in order");
      assert(entries[3].now >= entries[0].now + LEASE_MS, "fixture: the job outlived a lease");
      assertEquals(new Set(entries.map((entry) => entry.token)).size, 1, "one claim for the job");
      for (const entry of entries) {
        assert(
          entry.expiresAt !== undefined && entry.expiresAt > entry.now,
          `chunk ${entry.index} starts under a live lease (expires at +${
            (entry.expiresAt ?? 0) - entry.now
          } ms): every commit renews it`,
        );
      }
    },
  },
  {
    name: "lease: heartbeats renew a blocked handler's lease in the store (single worker)",
    async run(t) {
      const entered = deferred<void>();
      const gate = deferred<void>();
      try {
        const seen = recordApplies(t, async (index) => {
          if (index === 0) {
            entered.resolve();
            await gate.promise;
          }
        });
        const sealed = await t.uploadAndSeal(textChunks(2, "heartbeat-single"));
        const jobId = sealed.job.jobId;
        const draining = track(t.harness.drain());
        await settleWithin(entered.promise, "the handler was never called");
        const claimedAt = t.clock.now();
        // Where the handler holds the job's transaction, the job cannot be read meanwhile.
        const transactional = appliesInTransaction(t);
        while (t.clock.now() < claimedAt + LEASE_MS * 1.5) {
          t.clock.advance(HEARTBEAT_MS);
          if (transactional) continue;
          await eventually(
            async () => (await t.job(jobId)).lease?.expiresAt === t.clock.now() + LEASE_MS,
            `the heartbeat at +${t.clock.now() - claimedAt} ms stores lease expiry now + leaseMs`,
          );
        }
        gate.resolve();
        await settleWithin(draining.promise, "drain after the handler was released");
        const done = await t.job(jobId);
        assertEquals(done.state, "succeeded", "final state");
        assertEquals(done.attempt, 0, "no attempt was lost to the lease");
        assertEquals(indexes(seen), [0, 1], "each chunk applied once");
        assertEquals(new Set(seen.map((s) => s.token)).size, 1, "one claim for the job");
      } finally {
        gate.resolve();
      }
    },
  },
];

/** Lease cases. */
export const leaseCases: readonly ConformanceCase[] = [
  ...leaseList,
];
