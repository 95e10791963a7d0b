#!/usr/bin/env bash
# Builds the libFuzzer targets (with AddressSanitizer) and runs one of them.
#
#   Fuzz/run.sh TARGET SECONDS [libFuzzer options...]
#   Fuzz/run.sh TARGET replay FILE...     # rerun saved inputs, e.g. a crash
#
# TARGET is FuzzHTTPRequestHead, FuzzPEM, FuzzPEMIdentity or FuzzProxyHeader.
#
# Inputs it finds go to Fuzz/.corpus/TARGET (not committed); Fuzz/Corpus/TARGET
# is the small committed seed corpus, read but never written. Crashes are
# saved as Fuzz/.artifacts/TARGET-crash-*; the log of each run is
# Fuzz/.logs/TARGET-DATE.log. For FuzzPEMIdentity the script also makes
# fresh certificates and keys with openssl as extra seeds, in .corpus:
# no key is ever committed.
#
# The build runs under `nice`, in Fuzz/.build-fuzz. FUZZ_CONFIGURATION=debug
# builds without optimisation (slower, clearer traces).
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
target=$1; shift
case "$target" in
    FuzzHTTPRequestHead|FuzzPEM|FuzzPEMIdentity|FuzzProxyHeader) ;;
    *) echo "unknown target: $target" >&2; usage ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
configuration=${FUZZ_CONFIGURATION:-release}

echo "==> building $target ($configuration, -sanitize=fuzzer,address)"
# Both flags, on purpose. `--sanitize=fuzzer` makes SwiftPM link libFuzzer's
# main instead of the target's. But SwiftPM passes each --sanitize as its own
# -sanitize= flag, and swiftc keeps only the last one, so
# `--sanitize=fuzzer --sanitize=address` compiles without coverage and
# libFuzzer finds nothing. -Xswiftc -sanitize=fuzzer,address comes last.
nice -n 10 timeout 1800 swift build --scratch-path .build-fuzz -c "$configuration" \
    --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -g --product "$target"
binary=".build-fuzz/$configuration/$target"

if [ "$1" = "replay" ]; then
    shift
    exec "$binary" "$@"
fi

seconds=$1; shift
corpus=".corpus/$target"
mkdir -p "$corpus" .artifacts .logs
seeds=("Corpus/$target")

if [ "$target" = "FuzzPEMIdentity" ] && command -v openssl >/dev/null; then
    generated=".corpus/$target-generated"
    if [ ! -d "$generated" ]; then
        echo "==> making certificate and key seeds with openssl in $generated"
        mkdir -p "$generated"
        scratch=$(mktemp -d)
        trap 'rm -rf "$scratch"' EXIT
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
            -keyout "$scratch/ec.key" -out "$scratch/ec.pem" 2>/dev/null
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
            -keyout "$scratch/rsa.key" -out "$scratch/rsa.pem" 2>/dev/null
        openssl ec -in "$scratch/ec.key" -out "$scratch/ec-sec1.key" 2>/dev/null
        openssl pkey -in "$scratch/rsa.key" -traditional -out "$scratch/rsa-pkcs1.key" 2>/dev/null
        openssl pkcs8 -topk8 -in "$scratch/ec.key" -passout pass:fuzz -out "$scratch/ec-encrypted.key" 2>/dev/null
        { cat "$scratch/ec.pem"; printf '\0'; cat "$scratch/ec.key"; } > "$generated/ec"
        { cat "$scratch/rsa.pem"; printf '\0'; cat "$scratch/rsa.key"; } > "$generated/rsa"
        { cat "$scratch/ec.pem" "$scratch/rsa.pem"; printf '\0'; cat "$scratch/ec.key"; } > "$generated/chain"
        { cat "$scratch/ec.pem" "$scratch/ec.key"; } > "$generated/combined"
        { cat "$scratch/ec.pem"; printf '\0'; cat "$scratch/rsa.key"; } > "$generated/mismatch"
        { cat "$scratch/ec.pem"; printf '\0'; cat "$scratch/ec-sec1.key"; } > "$generated/sec1"
        { cat "$scratch/rsa.pem"; printf '\0'; cat "$scratch/rsa-pkcs1.key"; } > "$generated/pkcs1"
        { cat "$scratch/ec.pem"; printf '\0'; cat "$scratch/ec-encrypted.key"; } > "$generated/encrypted"
    fi
    seeds+=("$generated")
fi

log=".logs/$target-$(date -u +%Y%m%dT%H%M%SZ).log"
echo "==> fuzzing $target for $seconds s; log: Fuzz/$log"
status=0
nice -n 10 timeout --kill-after=30 $((seconds + 300)) "$binary" \
    -max_total_time="$seconds" -print_final_stats=1 -max_len=8192 -timeout=30 \
    -dict="Dictionaries/$target.dict" -artifact_prefix=".artifacts/$target-" \
    "$@" "$corpus" "${seeds[@]}" > "$log" 2>&1 || status=$?

grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" || true
grep -E '^stat::' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "==> $target stopped with status $status; see Fuzz/$log and Fuzz/.artifacts/"
    tail -40 "$log"
fi
exit "$status"
