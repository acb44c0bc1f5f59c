#!/usr/bin/env bash
# The full check, as run by `npm test` and CI (.ci/run): format, lint, type-check, the
# tests under Deno and Bun from source, the Convex adapter's tests (convex-test, Deno), the
# Postgres adapter's tests (PGlite and a throwaway PostgreSQL server), the HTTP transport's
# tests (conformance over HTTP, hostile clients, scale-out), the npm build
# (+ Node smoke test), every README code block (from source, then from the installed
# tarballs on Node, Bun and Deno), the CLI's npm bin under Node, the tests under Node against the
# compiled package, and a JSR publish dry run. Stops at the first failure. Needs `npm ci`
# first (deno, bun, typescript come from node_modules).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
export DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1
# Colour codes only on a terminal: CI logs stay readable and parseable.
if [[ ! -t 1 ]]; then export NO_COLOR=1; fi

for tool in node npm deno bun tsc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test_all: '$tool' not found; run 'npm ci' first" >&2
    exit 1
  fi
done

LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/codex-sync-test-all.XXXXXX")"
STEP=""
STEP_START=0
TIMINGS=()
PASSED=0
FAILED=0
SKIPPED=0

on_exit() {
  local status=$?
  if [[ $status -ne 0 && -n "$STEP" ]]; then
    echo
    echo "test_all: FAILED at step '$STEP' (exit $status)" >&2
  fi
  rm -rf "$LOG_DIR"
}
trap on_exit EXIT

step_begin() {
  STEP="$1"
  STEP_START=$SECONDS
  echo
  echo "==> $STEP"
}

step_end() {
  TIMINGS+=("$(printf '%4ss  %s' "$((SECONDS - STEP_START))" "$STEP")")
  STEP=""
}

# Runs one step, echoing a header; the output is kept in a log for the summary.
step() {
  local name="$1"
  shift
  step_begin "$name"
  "$@" 2>&1 | tee "$LOG_DIR/current.log"
  step_end
}

# Adds the counts a runner printed at its end to the totals.
count() {
  local runner="$1" log="$LOG_DIR/current.log" p=0 f=0 s=0 line
  case "$runner" in
    deno)
      # Deno's summary ("ok | 12 passed (30 steps) | …") counts top-level tests, with
      # steps apart; Bun and Node count every test case without sub-cases (a describe /
      # a test with steps is not one). Count Deno's the same way, from its result lines:
      # "name ... ok (1ms)" (steps indented under an opening "name ..." line) or, with
      # --parallel, "./file => parent ... step ... ok"; a case with sub-cases is left out.
      read -r p f s < <(awk '
        { line = $0; gsub(/\033\[[0-9;]*m/, "", line) }
        # An opening line is a parent when indented steps follow it; a test that printed
        # output opens the same way, followed by "------- output -------" instead.
        pending != "" { if (line ~ /^[ \t]+[^ \t-]/) opening[pending] = 1; pending = "" }
        line ~ / \.\.\.$/ { pending = line; next }
        match(line, / \.\.\. (ok|FAILED|ignored)( \(|$)/) {
          n++; names[n] = substr(line, 1, RSTART - 1)
          split(substr(line, RSTART + 5), word, " "); status[n] = word[1]
        }
        END {
          for (i = 1; i <= n; i++) {
            parent = ((names[i] " ...") in opening)
            for (j = 1; !parent && j <= n; j++) {
              if (j != i && index(names[j], names[i] " ... ") == 1) parent = 1
            }
            if (!parent) leaves[status[i]]++
          }
          printf "%d %d %d\n", leaves["ok"], leaves["FAILED"], leaves["ignored"]
        }' "$log")
      ;;
    bun)
      # " 12 pass" / " 0 fail" / " 1 skip"
      p="$(sed -nE 's/^ *([0-9]+) pass$/\1/p' "$log" | tail -n 1)"
      f="$(sed -nE 's/^ *([0-9]+) fail$/\1/p' "$log" | tail -n 1)"
      s="$(sed -nE 's/^ *([0-9]+) skip$/\1/p' "$log" | tail -n 1)"
      ;;
    node)
      # spec reporter: "ℹ pass 12" / "ℹ fail 0" / "ℹ skipped 1"
      p="$(sed -nE 's/^[^ ]+ pass ([0-9]+)$/\1/p' "$log" | tail -n 1)"
      f="$(sed -nE 's/^[^ ]+ fail ([0-9]+)$/\1/p' "$log" | tail -n 1)"
      s="$(sed -nE 's/^[^ ]+ skipped ([0-9]+)$/\1/p' "$log" | tail -n 1)"
      ;;
  esac
  p="${p:-0}" f="${f:-0}" s="${s:-0}"
  if [[ "$p" -eq 0 ]]; then
    echo "test_all: $runner ran no test" >&2
    return 1
  fi
  echo "test_all: $runner: $p passed, $f failed, $s skipped"
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  SKIPPED=$((SKIPPED + s))
}

step "deno fmt --check" deno fmt --check
step "deno lint" deno lint
step "deno task check" deno task check
step "deno task test (Deno, from source)" deno task test
count deno
step "deno task test:convex (Convex adapter on convex-test)" deno task test:convex
count deno
# The Postgres adapter on PGlite and on a throwaway PostgreSQL cluster (or DATABASE_URL).
step "deno task test:postgres (Postgres adapter: PGlite and a PostgreSQL server)" \
  deno task test:postgres
count deno
# The HTTP transport: the conformance suite over HTTP (memory in-process and on loopback,
# Postgres on loopback), hostile clients, two servers over one PostgreSQL.
step "deno task test:http (HTTP transport: conformance over HTTP, hostile clients, scale-out)" \
  deno task test:http
count deno
# The codex-sync CLI as a subprocess (embedded PGlite store), plus its in-process tests.
# Its tests of the built npm bin under Node run after build:npm (test:cli:node).
step "deno task test:cli (codex-sync CLI: import, appends, watch, export, resume after SIGINT, verify)" \
  env CODEX_SYNC_CLI_NODE_TESTS=skip deno task test:cli
count deno
# The dashboard of `serve` in headless chromium (playwright-core): live import progress,
# cancel, the viewer, escaping, keyboard, a narrow window, a second token. Without
# chromium it is skipped (counted), except under CI=true, where the test fails (.ci/run
# installs chromium).
if [[ -x "${CODEX_SYNC_CHROMIUM:-/usr/bin/chromium}" || "${CI:-}" == "true" ]]; then
  step "deno task test:dashboard (codex-sync serve's dashboard in headless chromium)" \
    deno task test:dashboard
  count deno
else
  echo "test_all: no chromium at ${CODEX_SYNC_CHROMIUM:-/usr/bin/chromium}: dashboard browser test skipped"
  SKIPPED=$((SKIPPED + 1))
fi
step "deno task test:bun (Bun, from source)" deno task test:bun
count bun
# The Postgres adapter's conformance suite under Bun on PGlite (embedded), and under Node
# on a throwaway cluster (postgres.js): Deno runs both, and the whole suite must stay well
# under CI's 20 minutes.
step "deno task test:postgres:bun (Postgres adapter conformance on PGlite, Bun, from source)" \
  deno task test:postgres:bun
count bun
step "deno task test:http:bun (conformance over HTTP in-process, memory adapter, Bun, from source)" \
  deno task test:http:bun
count bun
# The benchmarks' own parts (tree generator, naive importer, measurements): a benchmark
# whose measuring is wrong reports wrong figures, so its pieces are tested like the rest.
step "deno task test:bench-support (benchmark support: sessions tree, naive importer, RSS/CPU/disk)" \
  deno task test:bench-support
count deno
step "deno task test:readme-runner (the README example runner: blocks, annotations, background blocks)" \
  deno task test:readme-runner
count deno
step "deno task build:npm (tsc build, npm pack --dry-run, Node smoke test)" deno task build:npm
# Every code block of every README (scripts/readme_examples.ts): modules type-checked and run
# from source under Deno, shell blocks in a copy of the repository; then the module blocks
# again under Node, Bun and Deno against the packed tarballs installed in an empty project.
step "deno task test:readme (every README code block: Deno from source, shell in a repo copy)" \
  deno task test:readme
step "deno task test:tarball (README modules on Node, Bun and Deno from the installed tarballs)" \
  deno task test:tarball
# The CLI's subprocess tests again, on the codex-sync bin of the built npm packages.
step "deno task test:cli:node (codex-sync npm bin under Node: import, appends, watch, export, SIGINT)" \
  deno task test:cli:node
count deno
step "deno task test:node (Node, against the compiled package)" deno task test:node
count node
step "deno task test:postgres:node (Postgres adapter conformance on a server, Node, built packages)" \
  deno task test:postgres:node
count node
step "deno task test:http:node (conformance over HTTP on node:http, memory and Postgres, Node, built packages)" \
  deno task test:http:node
count node
step "deno publish --dry-run" deno publish --dry-run --allow-dirty
# The root's dry run covers the root package only; each workspace member has its own.
step "deno publish --dry-run (adapters/convex)" \
  bash -c 'cd adapters/convex && deno publish --dry-run --allow-dirty'
step "deno publish --dry-run (adapters/postgres)" \
  bash -c 'cd adapters/postgres && deno publish --dry-run --allow-dirty'
step "deno publish --dry-run (adapters/http)" \
  bash -c 'cd adapters/http && deno publish --dry-run --allow-dirty'
step "deno publish --dry-run (cli)" bash -c 'cd cli && deno publish --dry-run --allow-dirty'

echo
echo "Step timings:"
printf '  %s\n' "${TIMINGS[@]}"
echo
echo "test_all: all steps passed (deno, bun and node test counts added up)"
echo "test cases (without sub-cases, on every runtime): $PASSED passed, $FAILED failed, $SKIPPED skipped"
