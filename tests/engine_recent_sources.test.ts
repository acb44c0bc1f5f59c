// RecentSources: the bounded memory of source records a one-step upload stored, the
// guesses for the next one-step extension.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Source } from "../src/contracts/domain.ts";
import { RecentSources } from "../src/engine/recent_sources.ts";

function source(scope: string, sourceId: string, updatedAt = 1): Source {
  return { scope, sourceId, updatedAt } as Source;
}

test("recent sources: keyed by scope and id, newest record wins, forget drops it", () => {
  const recent = new RecentSources(8);
  recent.remember([source("a", "s1"), source("b", "s1")]);
  recent.remember([source("a", "s1", 2)]);
  assert.equal(recent.get("a", "s1")?.updatedAt, 2);
  assert.equal(recent.get("b", "s1")?.updatedAt, 1);
  // A scope ending like another's id prefix is another key.
  recent.remember([source("a:", "s"), source("a", ":s")]);
  assert.equal(recent.size, 4);
  recent.forget("a", "s1");
  assert.equal(recent.get("a", "s1"), undefined);
  assert.equal(recent.get("b", "s1")?.updatedAt, 1);
});

test("recent sources: bounded, the least recently stored dropped first", () => {
  const recent = new RecentSources(3);
  recent.remember([source("a", "1"), source("a", "2"), source("a", "3")]);
  recent.remember([source("a", "1", 2)]);
  recent.remember([source("a", "4")]);
  assert.equal(recent.size, 3);
  assert.equal(recent.get("a", "2"), undefined, "the oldest went first");
  assert.deepEqual(["1", "3", "4"].map((id) => recent.get("a", id)?.sourceId), ["1", "3", "4"]);
  const none = new RecentSources(0);
  none.remember([source("a", "1")]);
  assert.equal(none.size, 0);
});
