#!/usr/bin/env bash
# The comparison, in one command: installs what is missing, builds in release
# mode, and runs runner/compare.py. Arguments go to compare.py
# (`Benchmarks/compare.sh --help`); results go to Benchmarks/results/ unless
# --out is given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
benchmarks=$PWD

as_root() {
    if [ "$(id -u)" -eq 0 ]; then env DEBIAN_FRONTEND=noninteractive "$@"; else sudo env DEBIAN_FRONTEND=noninteractive "$@"; fi
}

missing=()
for tool in strsclnt selfserv certutil pk12util openssl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing libnss3-tools and openssl (missing: ${missing[*]})"
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends libnss3-tools openssl
fi
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    echo "installing matplotlib for the chart"
    python3 -m pip install --quiet matplotlib
fi

echo "building (release)"
swift build -c release --package-path "$benchmarks/.." --product nss-tls
swift build -c release --package-path "$benchmarks"

out_given=0
for argument in "$@"; do [ "$argument" = "--out" ] && out_given=1; done
extra=()
[ "$out_given" -eq 1 ] || extra=(--out "$benchmarks/results")

exec python3 -m runner.compare \
    --bin "$(swift build -c release --package-path "$benchmarks" --show-bin-path)" \
    --nss-tls "$(swift build -c release --package-path "$benchmarks/.." --show-bin-path)/nss-tls" \
    "${extra[@]}" "$@"
