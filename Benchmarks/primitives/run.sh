#!/usr/bin/env bash
# Builds and runs nss-primitives (NSS's cryptography per operation, through
# the PKCS#11 calls libssl makes), then `openssl speed` for the same
# primitives as a reference for the OpenSSL/BoringSSL family that NIOSSL uses.
#
#   Benchmarks/primitives/run.sh [SECONDS-PER-PRIMITIVE]     (default 1)
#
# Needs gcc and libnss3-dev (pkg-config nss). Results: Benchmarks/RESULTS.md,
# "The cryptographic share of a handshake".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
seconds=${1:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2046 # pkg-config's flags are meant to split
gcc -O2 -Wall -o "$work/nss-primitives" "$here/nss-primitives.c" $(pkg-config --cflags --libs nss)
"$work/nss-primitives" "$seconds"
echo
echo "openssl speed (OpenSSL $(openssl version | cut -d' ' -f2)):"
openssl speed -seconds "${seconds%.*}" ecdsap256 ecdhp256 ecdhx25519 2>/dev/null | sed -n '/sign    verify/,$p'
