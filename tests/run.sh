#!/usr/bin/env bash
# wekasim's test command: everything the tests need, then the tests.
#
#   bash tests/run.sh
#
# 1. the workspace's tests (unit, scenario, CLI end-to-end, 20-seed determinism);
# 2. the same seed gives the same trace hash in a debug and a release build;
# 3. the scenario suite over the default seeds, from the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test --workspace"
cargo test --workspace

echo "== same seed, same hash: debug and release builds"
cargo build --release --quiet
debug=$(target/debug/wekasim run startup-unwrap --seed 42)
release=$(target/release/wekasim run startup-unwrap --seed 42)
echo "debug:   $debug"
echo "release: $release"
hash_of() { grep -o 'hash=[0-9a-f]*' <<<"$1"; }
if [ "$(hash_of "$debug")" != "$(hash_of "$release")" ]; then
  echo "FAIL: debug and release builds disagree on seed 42" >&2
  exit 1
fi

echo "== wekasim suite"
target/release/wekasim suite
