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
# Prints the kill rate per file and in all (killed: a failing test or a timeout; unviable
# mutants, which do not build, are not counted), and the survivors to look at. Results stay
# in target/mutants.out/.
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
out=target/mutants.out

report() {
  if [ ! -d "$out" ]; then
    echo "FAIL: no results in $out: run tests/mutants.sh first" >&2
    exit 1
  fi
  # One line per mutant: the file, then its outcome.
  {
    for outcome in caught timeout missed; do
      if [ -f "$out/$outcome.txt" ]; then
        sed -e "s/:.*//" -e "s/\$/ $outcome/" "$out/$outcome.txt"
      fi
    done
  } | awk '
    { n[$1]++; if ($2 != "missed") k[$1]++; else m[$1]++; total++; if ($2 != "missed") killed++ }
    END {
      if (total == 0) { print "no viable mutants were tested"; exit 1 }
      printf "%-44s %7s %7s %7s\n", "file", "mutants", "killed", "rate"
      for (f in n) printf "%-44s %7d %7d %6.1f%%\n", f, n[f], k[f], 100 * k[f] / n[f] | "sort"
      close("sort")
      printf "%-44s %7d %7d %6.1f%%\n", "in all", total, killed, 100 * killed / total
    }'
  if [ -f "$out/unviable.txt" ]; then
    echo "unviable (did not build, not counted): $(wc -l <"$out/unviable.txt")"
  fi
  if [ -s "$out/missed.txt" ]; then
    echo "survivors:"
    sed 's/^/  /' "$out/missed.txt"
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
rc=0
.tools/bin/cargo-mutants mutants \
  --baseline skip \
  --timeout 300 \
  --build-timeout 1200 \
  --package cluster \
  --exclude cluster/src/hooks.rs \
  --test-package scenarios \
  --profile mutants \
  --sharding round-robin \
  --output target \
  --cargo-arg=--test=mutation_gate \
  "$@" || rc=$?
case $rc in
  0 | 2 | 3) report ;;
  *)
    echo "FAIL: cargo-mutants exited $rc" >&2
    exit "$rc"
    ;;
esac
