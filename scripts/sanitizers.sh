#!/usr/bin/env bash
# Runs the test suite under ThreadSanitizer and AddressSanitizer (all of it
# but the nss-tls suites that SANITIZER_SKIP names).
#
#   scripts/sanitizers.sh [thread|address|all]      (default: all)
#
# Each sanitizer has its own build folder (.build-tsan, .build-asan), so the
# normal .build is left alone. Reports from every process go to files in
# .sanitizer-reports/<sanitizer>/ (child processes too: the nss-tls tests run
# the sanitized nss-tls binary), and the script lists them at the end. It
# exits non-zero if a test failed or any report was written.
#
# The ThreadSanitizer build passes -DASYNCNSS_TSAN, which swaps in two
# TSan-only shims (Sources/AsyncNSS/Support/Sanitizer*.swift) for toolchain
# limitations on Linux; RELIABILITY.md explains both. Suppressions, for
# third-party code only and each with its reason, are in scripts/sanitizers/.
#
# SANITIZER_TIMEOUT (seconds, default 1500) bounds each build and each test run.
#
# SANITIZER_SKIP (a regular expression over test IDs) names the tests that
# these runs leave out; set it empty to run everything. By default they leave
# out the nss-tls suites whose library paths the in-process suites also take:
# under a sanitizer most of their time goes into starting instrumented nss-tls
# processes (about 2 s each under ThreadSanitizer), which took 218 of the 345 s
# of a ThreadSanitizer run on 2026-12-06. The nss-tls suites that reach library
# code nothing else does still run: worker processes (ServeWorkersTests), a
# process out of descriptors (DescriptorExhaustionTests) and PROXY headers on
# the listener (ServeProxyProtocolTests); so do the example programs
# (ExamplesTests), which LeakSanitizer has caught before. The normal
# `swift test` runs them all.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
limit=${SANITIZER_TIMEOUT:-1500}
which=${1:-all}
skip=${SANITIZER_SKIP-Integration/(ToolTests|FleetTests|PrivatePathTests|OCSPToolTests|KeyLogToolTests|EncryptedClientHelloToolTests)/}
skip_arguments=()
if [ -n "$skip" ]; then skip_arguments=(--skip "$skip"); fi

run_one() {
    local sanitizer=$1 scratch=$2 options_var=$3 options=$4
    shift 4
    local reports="$root/.sanitizer-reports/$sanitizer"
    rm -rf "$reports"
    mkdir -p "$reports"
    printf '\n==> swift build --build-tests --sanitize=%s (%s)\n' "$sanitizer" "$scratch"
    local start=$SECONDS
    # gold prints one "Cannot export local symbol '__asan_…'" warning per
    # sanitizer runtime symbol on every link (about a thousand lines); they
    # say nothing about our code, so they are dropped from the log.
    timeout --kill-after=30 "$limit" swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" "$@" 2>&1 \
        | { grep -v "ld.gold: warning: Cannot export local symbol '__[a-z]*san_" || true; }
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        echo "build with --sanitize=$sanitizer failed"
        return 1
    fi
    local built=$SECONDS
    printf '\n==> swift test --sanitize=%s\n' "$sanitizer"
    local status=0
    env "$options_var=$options:log_path=$reports/report" ASYNCNSS_SANITIZER="$sanitizer" \
        timeout --kill-after=30 "$limit" swift test --sanitize="$sanitizer" --scratch-path "$scratch" "${skip_arguments[@]}" "$@" || status=$?
    local finished=$SECONDS
    local count
    count=$(cat "$reports"/report.* 2>/dev/null | grep -c '^SUMMARY: ' || true)
    printf '\n==> %s: build %d s, tests %d s, test exit %d, %d report(s) in %s\n' \
        "$sanitizer" $((built - start)) $((finished - built)) "$status" "$count" "$reports"
    if [ "$count" -gt 0 ]; then
        grep -h '^SUMMARY: ' "$reports"/report.* | sort | uniq -c | sort -rn
    fi
    [ "$status" -eq 0 ] && [ "$count" -eq 0 ]
}

overall=0
case "$which" in
    thread|all)
        run_one thread .build-tsan TSAN_OPTIONS \
            "halt_on_error=0:second_deadlock_stack=1:suppressions=$root/scripts/sanitizers/tsan.supp" \
            -Xswiftc -DASYNCNSS_TSAN || overall=1
        ;;&
    address|all)
        LSAN_OPTIONS="suppressions=$root/scripts/sanitizers/lsan.supp:print_suppressions=0" \
            run_one address .build-asan ASAN_OPTIONS "detect_leaks=1" || overall=1
        ;;
    thread) ;;
    *) echo "usage: $0 [thread|address|all]" >&2; exit 2 ;;
esac
exit "$overall"
