#!/usr/bin/env bash
# What the test command needs before its first cargo call, installed from what this machine
# has (no download of a toolchain is possible here):
# - the toolchain rust-toolchain.toml pins: when rustup does not know it by that name but
#   the installed stable is that very version, it is linked under the pinned name;
# - jq, which reads the JSON reports of the planted-bug proof (Debian's package);
# - chromium, the headless browser tests/report_html.rs draws report.html in (Debian's
#   package); without it that test fails, so a failed install stops here, loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

pinned=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
if ! rustup toolchain list | grep -q "^$pinned-"; then
  stable=$(rustc +stable --version | cut -d' ' -f2)
  if [ "$stable" != "$pinned" ]; then
    echo "FAIL: rust-toolchain.toml pins Rust $pinned, rustup has no such toolchain and the installed stable is $stable" >&2
    exit 1
  fi
  # `rustup toolchain link` refuses a name that looks like a release, so the pinned name
  # is made the way rustup lays out its own toolchains: a directory under its home.
  host=$(rustc +stable -vV | sed -n 's/^host: //p')
  toolchains="${RUSTUP_HOME:-$HOME/.rustup}/toolchains"
  ln -s "$(rustc +stable --print sysroot)" "$toolchains/$pinned-$host"
  echo "made the installed stable (Rust $stable) rustup's toolchain $pinned"
fi

if ! command -v jq >/dev/null; then
  apt-get update -qq && apt-get install -y -qq jq >/dev/null
fi

if ! command -v chromium >/dev/null; then
  if ! { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; then
    echo "FAIL: could not install chromium (apt-get install -y chromium, above); tests/report_html.rs needs it" >&2
    exit 1
  fi
  if ! chromium --version; then
    echo "FAIL: chromium was installed but does not start (above)" >&2
    exit 1
  fi
fi
