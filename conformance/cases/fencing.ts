/**
 * Cases `fencing:`: a worker's commits are fenced by the stored record, not by what its
 * adapter instance remembers. A cancel or a claim made through another instance over
 * the same storage (hook `peer`: another process, with its own connections, caches and
 * notifications) must be honoured by the first instance's worker.
 *
 * @module
 */

import { Capability } from "../../src/contracts/capabilities.ts";
import { assert, assertEquals } from "../assert.ts";
import { type CaseContext, expectSyncError } from "../context.ts";
import { textChunks } from "../payloads.ts";
import type { ConformanceCase, ConformancePeer } from "../types.ts";
import {
  appliesInTransaction,
  deferred,
  indexes,
  LEASE_MS,
  newWorker,
  range,
  recordApplies,
  settleWithin,
  track,
  turnsUntil,
} from "./support.ts";

/** Runs `body` with a peer instance, closing it afterwards. */
async function withPeer(
  t: CaseContext,
  owner: string,
  body: (peer: ConformancePeer) => Promise<void>,
): Promise<void> {
  assert(t.harness.peer, "the case needs the peer hook");
  const peer = await t.harness.peer(owner);
  try {
    await body(peer);
  } finally {
    await peer.close();
  }
}

const fencingList: ConformanceCase[] = [
  {
    name: "fencing: a cancel made through another adapter instance is honoured by the running " +
      "worker's commit",
    hooks: ["peer"],
    async run(t) {
      const entered = deferred<void>();
      const gate = deferred<void>();
      try {
        await withPeer(t, "peer", async (peer) => {
          recordApplies(t, async (index) => {
            if (index === 1) {
              entered.resolve();
              await gate.promise;
            }
          });
          const sealed = await t.uploadAndSeal(textChunks(3, "peer-cancel"));
          const jobId = sealed.job.jobId;
          const draining = track(t.harness.drain());
          await settleWithin(entered.promise, "the handler never reached chunk 1");
          const cancelling = track(peer.adapter.cancelJob({ scope: t.scope, jobId }));
          const whileBlocked = await turnsUntil(() => cancelling.settled, 50);
          if (!whileBlocked) {
            assert(
              appliesInTransaction(t),
              "the peer's cancelJob did not settle while a handler ran (non-transactional apply)",
            );
          }
          gate.resolve();
          const cancelled = await settleWithin(cancelling.promise, "the peer's cancelJob");
          await settleWithin(draining.promise, "drain after the cancel");
          if (whileBlocked) {
            assertEquals(cancelled.state, "cancelled", "state returned by the peer");
            assertEquals(cancelled.cursor, 1, "cursor at the cancel");
          } else {
            // Held back by the handler's transaction, the cancel may even find the job done.
            assert(
              cancelled.state === "cancelled" || cancelled.state === "succeeded",
              `state returned by the peer: ${cancelled.state}`,
            );
          }
          await t.harness.drain();
          t.clock.advance(LEASE_MS * 10);
          await t.harness.drain();
          assertEquals(await t.job(jobId), cancelled, "the worker's commit after the cancel");
          assertEquals(
            await peer.adapter.getJob({ scope: t.scope, jobId }),
            cancelled,
            "the job as the peer reads it",
          );
          assertEquals(
            indexes(t.handler.calls),
            range(cancelled.cursor + (whileBlocked ? 1 : 0)),
            "chunks applied: the committed ones (and the one refused at commit)",
          );
          assertEquals(
            t.handler.verifications.length,
            cancelled.state === "succeeded" ? 1 : 0,
            "verify calls",
          );
        });
      } finally {
        gate.resolve();
      }
    },
  },
  {
    name: "fencing: a claim made through another adapter instance fences off the first " +
      "instance's worker",
    requires: [Capability.concurrentWorkers],
    hooks: ["peer", "newWorker"],
    async run(t) {
      await withPeer(t, "peer", async (peer) => {
        assert(peer.worker, "a peer of an adapter with concurrent workers has a worker");
        const seen = recordApplies(t);
        const sealed = await t.uploadAndSeal(textChunks(3, "peer-claim"));
        const jobId = sealed.job.jobId;
        const a = newWorker(t, "a");
        const jobA = await a.claimNextJob();
        assert(jobA?.lease !== undefined, "worker A claims the job");
        t.clock.set(jobA.lease.expiresAt + 1);
        const jobB = await peer.worker.claimNextJob();
        assert(jobB?.lease !== undefined, "the peer's worker claims the expired job");
        assert(jobB.lease.token > jobA.lease.token, "the peer's token is above A's");
        const before = await t.job(jobId);
        try {
          await a.runClaimedJob(jobA);
        } catch (error) {
          // Refusing loudly is fine too; changing the job is not.
          await expectSyncError(Promise.reject(error), "E_SYNC_LEASE_LOST");
        }
        assertEquals(await t.job(jobId), before, "A changed nothing while the peer holds it");
        assert(seen.length <= 1, `A applies no further chunk (${seen.length} calls)`);
        seen.splice(0);
        const done = await peer.worker.runClaimedJob(jobB);
        assertEquals(done.state, "succeeded", "state after the peer's run");
        assertEquals(indexes(seen), [0, 1, 2], "the peer applied every chunk once");
        assert(seen.every((s) => s.owner === jobB.lease!.owner), "under the peer's lease");
        assertEquals(await t.job(jobId), done, "the first instance reads the peer's result");
      });
    },
  },
];

/** Fencing cases across adapter instances. */
export const fencingCases: readonly ConformanceCase[] = fencingList;
