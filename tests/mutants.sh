#!/usr/bin/env bash
# Mutation testing of cluster/, on demand (not part of the test command): how many of the
# bugs cargo-mutants writes into the system under test the harness catches.
#
#   bash tests/mutants.sh                   every mutant of cluster/ (about 1,250: many hours)
#   bash tests/mutants.sh --shard 0/25      one mutant in 25, spread over every file
#   bash tests/mutants.sh --file cluster/src/node/rewrap.rs
#   bash tests/mutants.sh --report          the kill rates of the last run, without running
#
# Other arguments go to cargo-mutants. For each mutant, the test is the scenario library
# (seed 0) and a sweep of WEKASIM_MUTANTS_SEEDS swarm seeds (default 200), played in process
# by scenarios/tests/mutation_gate.rs, built with the `mutants` profile (optimized and
# incremental). cluster/src/hooks.rs is left out: its planted-bug table is only read by a
# planted-bugs build.
#
# cargo-mutants 27.1.0 is installed into .tools/ the first time. It works in a copy of the
# tree, so the first mutant pays a whole build (about 8 minutes on 2 cores); each later one
# a few seconds of build and about 16 s of test.
#
# The mutants that survive the gate are then tried against cluster/'s own unit tests (a
# second cargo-mutants pass over those mutants alone), which the test command also runs.
#
# Prints the kill rate per file and in all (killed: a failing test or a timeout; unviable
# mutants, which do not build, are not counted), what killed them, and the survivors to look
# at. Results stay in target/mutants-gate/mutants.out/ and target/mutants-unit/mutants.out/.
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
gate=target/mutants-gate/mutants.out
unit=target/mutants-unit/mutants.out

# The lines of outcome file $2 ("caught", "missed", ...) of results $1, if any.
outcomes() {
  if [ -f "$1/$2.txt" ]; then cat "$1/$2.txt"; fi
}

# One line per viable mutant: what killed it ("gate", "unit") or "missed", then its name.
classify() {
  outcomes "$gate" caught | sed 's/^/gate /'
  outcomes "$gate" timeout | sed 's/^/gate /'
  outcomes "$gate" missed | while IFS= read -r m; do
    if { outcomes "$unit" caught; outcomes "$unit" timeout; } | grep -qxF "$m"; then
      echo "unit $m"
    else
      echo "missed $m"
    fi
  done
}

report() {
  if [ ! -d "$gate" ]; then
    echo "FAIL: no results in $gate: run tests/mutants.sh first" >&2
    exit 1
  fi
  local classified
  classified=$(classify)
  awk '
    { split($2, at, ":"); f = at[1]; n[f]++; total++ }
    $1 == "gate" { g[f]++; gates++ }
    $1 == "unit" { u[f]++; units++ }
    END {
      if (total == 0) { print "no viable mutants were tested"; exit 1 }
      printf "%-40s %7s %6s %6s %7s\n", "file", "mutants", "gate", "unit", "killed"
      for (f in n) printf "%-40s %7d %6d %6d %6.1f%%\n", f, n[f], g[f], u[f], 100 * (g[f] + u[f]) / n[f] | "sort"
      close("sort")
      printf "%-40s %7d %6d %6d %6.1f%%\n", "in all", total, gates, units, 100 * (gates + units) / total
      printf "(gate: the scenario library and the sweep; unit: cluster/'"'"'s unit tests, tried on the gate'"'"'s survivors)\n"
    }' <<<"$classified"
  echo "unviable (did not build, not counted): $(outcomes "$gate" unviable | wc -l)"
  if grep -q '^missed ' <<<"$classified"; then
    echo "survivors:"
    grep '^missed ' <<<"$classified" | sed 's/^missed /  /'
  fi
}

if [ "${1:-}" = "--report" ]; then
  report
  exit 0
fi

if ! .tools/bin/cargo-mutants mutants --version 2>/dev/null | grep -q " $version\$"; then
  echo "installing cargo-mutants $version into .tools/"
  if ! cargo install --quiet --locked --root .tools cargo-mutants --version "$version"; then
    echo "FAIL: could not install cargo-mutants $version (see cargo's error above)" >&2
    exit 1
  fi
fi

# The baseline: the gate must pass on the unmutated tree. (cargo-mutants' own baseline runs
# the mutated package's tests, not the named test package's, so it is skipped below.)
echo "baseline: the gate on the unmutated tree"
if ! cargo test --quiet --profile mutants -p scenarios --test mutation_gate; then
  echo "FAIL: the mutation gate fails on the unmutated tree: fix that first" >&2
  exit 1
fi

# cargo-mutants exits 2 when mutants survived and 3 on timeouts: the rates below say what
# happened; any other failure is passed on. Without a baseline it cannot size timeouts: the
# first mutant's build is a whole build in cargo-mutants' copy of the tree (unless
# --in-place), later ones take seconds; a mutant whose tests run past 5 minutes (the gate
# takes about 16 s) is counted as a timeout, which kills it. `--test=mutation_gate` goes to
# every cargo call, so each build makes only what the gate needs.
in_place=()
sharding=()
for arg in "$@"; do
  case $arg in
    --in-place) in_place=(--in-place) ;;
    # Spread a shard over every file; cargo-mutants refuses --sharding without --shard.
    --shard | --shard=*) sharding=(--sharding round-robin) ;;
  esac
done
rc=0
.tools/bin/cargo-mutants mutants \
  --baseline skip \
  --timeout 300 \
  --build-timeout 1200 \
  --package cluster \
  --exclude cluster/src/hooks.rs \
  --test-package scenarios \
  --profile mutants \
  "${sharding[@]}" \
  --output target/mutants-gate \
  --cargo-arg=--test=mutation_gate \
  "$@" || rc=$?
case $rc in
  0 | 2 | 3) ;;
  *)
    echo "FAIL: cargo-mutants exited $rc" >&2
    exit "$rc"
    ;;
esac

# The gate's survivors against cluster/'s unit tests: exactly those mutants, by name.
rm -rf "$unit"
if [ -s "$gate/missed.txt" ]; then
  names=$(sed -e 's/[][\\.*^$()+?{}|]/\\&/g' -e 's/^/^/' -e 's/$/$/' "$gate/missed.txt" | paste -sd'|')
  rc=0
  .tools/bin/cargo-mutants mutants \
    --package cluster \
    --test-package cluster \
    --cargo-arg=--lib \
    --output target/mutants-unit \
    --re "$names" \
    "${in_place[@]}" || rc=$?
  case $rc in
    0 | 2 | 3) ;;
    *)
      echo "FAIL: cargo-mutants (unit tests on the gate's survivors) exited $rc" >&2
      exit "$rc"
      ;;
  esac
fi
report
