#!/usr/bin/env bash
# Makes the certificates docker-compose.yml's `pykmip` service needs, with openssl, into
# tests/compose/pykmip-certs/ (git-ignored: no private key is ever committed):
#
#   ca.pem, ca.key           a CA, valid 30 days
#   server.pem, server.key   PyKMIP's certificate: ECDSA P-256 (with an RSA one PyKMIP offers
#                            only CBC suites, which rustls refuses), serverAuth, for
#                            DNS:localhost, IP:127.0.0.1 and DNS:pykmip (the service's name
#                            on the compose network)
#   client.pem, client.key   the cluster's: CN wekasim-cluster (PyKMIP's owner of the objects
#                            it creates), clientAuth (without it PyKMIP refuses the client),
#                            its key as PKCS#8 (what `wekasim run --client-key` reads)
#
#   bash tests/compose/pykmip-certs.sh [DIR]
#
# Existing files are kept, so a running server and the certificates it was started with keep
# matching; delete the directory (or give --force) to make new ones.
set -euo pipefail
cd "$(dirname "$0")"

force=false
dir=pykmip-certs
for arg in "$@"; do
  case $arg in
    --force) force=true ;;
    -*) echo "usage: $0 [--force] [DIR]" >&2; exit 2 ;;
    *) dir=$arg ;;
  esac
done
if ! command -v openssl >/dev/null; then
  echo "FAIL: openssl is not installed" >&2
  exit 1
fi
files=(ca.pem server.pem server.key client.pem client.key)
have=0
for f in "${files[@]}"; do [ -f "$dir/$f" ] && have=$((have + 1)); done
if [ "$have" = "${#files[@]}" ] && ! $force; then
  echo "$dir: certificates present (--force makes new ones)"
  exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

# An ECDSA P-256 key as PKCS#8 PEM.
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# sign NAME CN EXTENSIONS: NAME.pem for NAME.key, signed by the CA.
sign() {
  openssl req -new -key "$tmp/$1.key" -subj "/CN=$2" -out "$tmp/$1.csr"
  printf '%s\n' "$3" >"$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$tmp/$1.ext" -out "$tmp/$1.pem" 2>/dev/null
}

key "$tmp/ca.key"
openssl req -new -x509 -key "$tmp/ca.key" -subj "/CN=wekasim pykmip CA" -days 30 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$tmp/ca.pem"
key "$tmp/server.key"
sign server pykmip "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:pykmip"
key "$tmp/client.key"
sign client wekasim-cluster "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
openssl verify -CAfile "$tmp/ca.pem" "$tmp/server.pem" "$tmp/client.pem" >/dev/null

# Certificates readable by all; keys only by their owner (the container runs as root).
for f in ca.pem server.pem client.pem; do install -m 0644 "$tmp/$f" "$dir/$f"; done
for f in ca.key server.key client.key; do install -m 0600 "$tmp/$f" "$dir/$f"; done
echo "$dir: CA, server (localhost, 127.0.0.1, pykmip) and client (wekasim-cluster) certificates"
