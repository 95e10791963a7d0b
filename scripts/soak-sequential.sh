#!/usr/bin/env bash
# Soak: TOTAL sequential full TLS handshakes against one `nss-tls serve`
# (issue 4: 100,000), checking that nothing accumulates. Not run by CI: it
# takes several minutes.
#
#   scripts/soak-sequential.sh [TOTAL] [FIRST] [VERSIONS] [THREADS]
#
# Defaults: 100000 handshakes, sampled after the first 10000, tls1.2:tls1.3
# (which negotiates TLS 1.3; pass tls1.2:tls1.2 for TLS 1.2 and its server
# session-ID cache), 1 strsclnt thread: one connection after another, each a
# full handshake (-N, no session reuse) followed by strsclnt's HTTP/1.0 GET,
# which serve answers and then closes. Builds nss-tls in release mode first.
#
# strsclnt runs twice against the same serve process: FIRST connections, then
# TOTAL - FIRST. serve's RSS and descriptor count are sampled at baseline,
# after the first run and at the end (each after the descriptors have settled).
# Exits non-zero unless:
#   - no connection failed (strsclnt errors, handshake failures logged by serve);
#   - the descriptor count at the end is back at its baseline;
#   - the RSS at the end is within SOAK_RSS_TOLERANCE percent (default 5) of the
#     RSS after the first FIRST handshakes.
# Environment: SOAK_BUILD=0 skips the release build, SOAK_BINARY uses another
# nss-tls binary (scripts/soak-lib.sh); SOAK_TIMEOUT bounds each
# strsclnt run in seconds (default 3600).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

total=${1:-100000}
first=${2:-10000}
versions=${3:-tls1.2:tls1.3}
threads=${4:-1}
tolerance=${SOAK_RSS_TOLERANCE:-5}
run_timeout=${SOAK_TIMEOUT:-3600}
[ "$first" -lt "$total" ] || { echo "FIRST ($first) must be below TOTAL ($total)" >&2; exit 64; }

command -v strsclnt >/dev/null || { echo "strsclnt is missing: apt-get install libnss3-tools" >&2; exit 1; }
source scripts/soak-lib.sh
soak_binary

soak_workdir
certutil -N -d "sql:$work" --empty-password

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$binary" serve --port 0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
soak_wait_for_port
sleep 1

# Waits (up to 30 s) until serve's descriptors are back at the baseline, then 1 s more.
settle() {
    for _ in $(seq 1 300); do [ "$(fds)" -le "$fds_baseline" ] && break; sleep 0.1; done
    sleep 1
}
fds_baseline=$(fds)
rss_baseline=$(rss)

client_errors=0
# run N LABEL: N sequential connections from strsclnt.
run() {
    local n=$1 label=$2 status elapsed errors start
    start=$(date +%s.%N)
    set +e
    # -o -o: no certificate check (the in-memory self-signed certificate);
    # -D: no Nagle; -q: stop when serve is gone; -N: full handshakes only.
    # In the background, so that a signal to this script is handled at once.
    timeout "$run_timeout" strsclnt -q -D -o -o -N -c "$n" -t "$threads" -V "$versions" -p "$port" \
        -d "sql:$work" 127.0.0.1 >"$work/strsclnt-$label.out" 2>&1 &
    client=$!
    wait "$client"
    status=$?
    client=
    set -e
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
    # strsclnt's exit status is 1 by design with -N -o -o (see strsclnt-load.sh);
    # 124 is the timeout.
    [ "$status" -ne 124 ] || { echo "strsclnt timed out after $run_timeout s" >&2; client_errors=$((client_errors + 1)); }
    errors=$(grep -v -e "cache hits" -e "stateless resumes" -e "NoReuse" "$work/strsclnt-$label.out" | grep -c -i -e "error" -e "fail" || true)
    client_errors=$((client_errors + errors))
    printf '%s: %d connections in %.1f s (%.0f/s), strsclnt status %d, connections with an error %d\n' \
        "$label" "$n" "$elapsed" "$(echo "$n / $elapsed" | bc -l)" "$status" "$errors"
}

echo "soak-sequential: $total full handshakes ($versions, $threads strsclnt thread(s)) against nss-tls serve (pid $server, port $port)"
echo "baseline: RSS $rss_baseline KiB, $fds_baseline descriptors"
run "$first" first
settle
fds_first=$(fds)
rss_first=$(rss)
echo "after $first: RSS $rss_first KiB, $fds_first descriptors"
run $((total - first)) rest
settle
fds_end=$(fds)
rss_end=$(rss)
echo "after $total: RSS $rss_end KiB, $fds_end descriptors"

alive=yes; kill -0 "$server" 2>/dev/null || alive=no
handshake_failures=$(grep -c "handshake failed" "$work/serve.err" || true)
logged=$(grep -c ": closed" "$work/serve.err" || true)
versions_seen=$(sed -n 's/^.*\] [^ ]* \(TLSv[0-9.]*\) .*/\1/p' "$work/serve.err" | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}')
growth=$(echo "scale=2; 100 * ($rss_end - $rss_first) / $rss_first" | bc)
echo "serve alive: $alive; connections logged as closed: $logged; versions: ${versions_seen:-?}; handshake failures logged: $handshake_failures; strsclnt errors: $client_errors"
echo "RSS: baseline $rss_baseline, after $first $rss_first, after $total $rss_end KiB ($growth% since $first; limit $tolerance%)"
echo "descriptors: baseline $fds_baseline, after $first $fds_first, after $total $fds_end"

ok=yes
[ "$alive" = yes ] || { echo "FAIL: serve is gone"; ok=no; }
[ "$client_errors" -eq 0 ] && [ "$handshake_failures" -eq 0 ] || { echo "FAIL: failed connections"; ok=no; }
[ "$fds_end" -le "$fds_baseline" ] || { echo "FAIL: descriptors not back at the baseline"; ok=no; }
if [ "$(echo "$growth > $tolerance || $growth < -$tolerance" | bc)" -eq 1 ]; then
    echo "FAIL: RSS changed by more than $tolerance% after the first $first"; ok=no
fi
[ "$ok" = yes ] && echo "PASS"
[ "$ok" = yes ]
