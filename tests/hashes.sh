#!/usr/bin/env bash
# Prints the trace hash of every run a binary plays, one `scenario seed hash` line per run,
# sorted: every library scenario over SUITE_SEEDS (a regression over its own seeds) and the
# swarm over SWEEP_SEEDS.
#
#   bash tests/hashes.sh BIN SUITE_SEEDS SWEEP_SEEDS      e.g. target/release/wekasim 0..3 0..300
#
# A run's verdict does not matter here (the suite and the sweep steps of tests/run.sh judge
# those); a run without a hash, or no run at all, fails loudly: an empty hash never matches.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: bash tests/hashes.sh BIN SUITE_SEEDS SWEEP_SEEDS" >&2
  exit 2
fi
bin=$1 suite_seeds=$2 sweep_seeds=$3

# One JSON report per run on stdout. Exit 1, 3 or 4 is a failing run, which still has a hash;
# exit 2 (bad input) or anything else means the runs did not happen; exit 6 is a sweep of
# 1,000 seeds or more that left a coverage probe unreached, whose runs all have hashes.
reports() {
  local rc=0
  "$bin" "$@" --json 2>/dev/null || rc=$?
  case $rc in
    0 | 1 | 3 | 4 | 6) ;;
    *) echo "FAIL: $bin $* --json exited $rc" >&2; return 1 ;;
  esac
}

suite=$(reports suite --seeds "$suite_seeds")
sweep=$(reports sweep --seeds "$sweep_seeds")
lines=$(jq -r '"\(.scenario) \(.seed) \(.trace_hash // "")"' <<<"$suite"$'\n'"$sweep")
if [ -z "$lines" ]; then
  echo "FAIL: $bin played no runs" >&2
  exit 1
fi
if missing=$(grep -Ev '^[^ ]+ [0-9]+ [0-9a-f]{16,}$' <<<"$lines"); then
  echo "FAIL: $bin: runs without a trace hash:" >&2
  echo "$missing" >&2
  exit 1
fi
LC_ALL=C sort -k1,1 -k2,2n <<<"$lines"
