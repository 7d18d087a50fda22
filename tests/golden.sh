#!/usr/bin/env bash
# Golden trace hashes: every library scenario over seeds 0..3 and the swarm over seeds
# 0..300, as the release build plays them, committed in tests/golden/hashes.txt.
#
#   bash tests/golden.sh            compare this build's hashes with the file (tests/run.sh does)
#   bash tests/golden.sh --write    rewrite the file after a deliberate behaviour change
#
# A mismatch means this machine, toolchain, platform library or a dependency plays a seed
# differently from the machine that wrote the file (see "Golden hashes" in README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
golden=tests/golden/hashes.txt
suite_seeds=0..3
sweep_seeds=0..300

case "${1:-}" in
  "" | --write) ;;
  *) echo "usage: bash tests/golden.sh [--write]" >&2; exit 2 ;;
esac

cargo build --release --quiet
current=$(bash tests/hashes.sh target/release/wekasim "$suite_seeds" "$sweep_seeds")

if [ "${1:-}" = --write ]; then
  {
    echo "# scenario seed hash: written by \`bash tests/golden.sh --write\`; see README.md, Golden hashes"
    echo "$current"
  } >"$golden"
  echo "wrote $(wc -l <<<"$current") hashes to $golden"
  exit 0
fi

if [ ! -f "$golden" ]; then
  echo "FAIL: $golden is missing; write it with: bash tests/golden.sh --write" >&2
  exit 1
fi
if ! mismatches=$(diff --label "$golden" --label "this build" <(grep -v '^#' "$golden") - <<<"$current"); then
  echo "FAIL: trace hashes differ from $golden (< golden, > this build):" >&2
  echo "$mismatches" >&2
  echo "If the change is a deliberate behaviour change, run: bash tests/golden.sh --write" >&2
  echo "and say so in the commit." >&2
  exit 1
fi
echo "all $(wc -l <<<"$current") runs replay their golden hash"
