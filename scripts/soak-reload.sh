#!/usr/bin/env bash
# Soak: RELOADS identity reloads (SIGHUP) of one `nss-tls serve`, checking that
# memory and descriptors do not accumulate. Not run by CI: it takes minutes.
#
#   scripts/soak-reload.sh [RELOADS] [SAMPLES]
#
# Defaults: 5000 reloads, RSS and descriptors sampled SAMPLES (default 10) times
# along the way. serve runs with --cert/--key (an EC P-256 certificate made with
# openssl), so each SIGHUP re-reads both PEM files, loads a new identity and
# builds a new model socket (TLSListener.reload). The script waits for serve's
# "SIGHUP: reloaded" line before the next signal, and makes one TLS connection
# (openssl s_client) after each sample so that the reloaded setup is used.
#
# Exits non-zero unless every reload succeeded, every connection worked, the
# descriptors at the end are back at their baseline, and the RSS at the end is
# within SOAK_RSS_TOLERANCE percent (default 5) of the RSS at the first sample
# (after RELOADS / SAMPLES reloads). Environment: SOAK_BUILD=0 skips the release
# build; SOAK_BINARY uses another nss-tls binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

reloads=${1:-5000}
samples=${2:-10}
tolerance=${SOAK_RSS_TOLERANCE:-5}
every=$(( reloads / samples ))
[ "$every" -ge 1 ] || { echo "RELOADS must be at least SAMPLES" >&2; exit 64; }

command -v openssl >/dev/null || { echo "openssl is missing" >&2; exit 1; }
source scripts/soak-lib.sh
soak_binary

soak_workdir

soak_certificate

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$binary" serve --port 0 --cert "$work/cert.pem" --key "$work/key.pem" >"$work/serve.out" 2>"$work/serve.err" &
server=$!
soak_wait_for_port

reloaded() { grep -c "SIGHUP: reloaded" "$work/serve.err" || true; }
failed_connections=0
connect_once() {
    if ! timeout 20 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$work/cert.pem" \
        -verify_return_error </dev/null >"$work/s_client.out" 2>&1; then
        failed_connections=$((failed_connections + 1))
        echo "connection failed:"; tail -5 "$work/s_client.out"
    fi
}
settle_fds() {
    for _ in $(seq 1 100); do [ "$(fds)" -le "$fds_baseline" ] && break; sleep 0.1; done
}

connect_once
sleep 1
fds_baseline=$(fds)
rss_baseline=$(rss)
echo "soak-reload: $reloads SIGHUP reloads of nss-tls serve (pid $server, port $port) with --cert/--key"
echo "reloads  RSS(KiB)  descriptors  seconds"
printf '%7d  %8d  %11d  %7d\n' 0 "$rss_baseline" "$fds_baseline" 0
start=$(date +%s)
rss_first=
for i in $(seq 1 "$reloads"); do
    kill -HUP "$server"
    # Wait for this reload's log line (signals sent before it would coalesce).
    for _ in $(seq 1 1000); do [ "$(reloaded)" -ge "$i" ] && break; kill -0 "$server" 2>/dev/null || break; sleep 0.01; done
    if [ "$(reloaded)" -lt "$i" ]; then
        echo "reload $i did not complete within 10 s (serve alive: $(kill -0 "$server" 2>/dev/null && echo yes || echo no))"
        grep -i "SIGHUP" "$work/serve.err" | tail -3
        exit 1
    fi
    if [ $(( i % every )) -eq 0 ]; then
        connect_once
        settle_fds
        rss_now=$(rss)
        [ -n "$rss_first" ] || rss_first=$rss_now
        printf '%7d  %8d  %11d  %7d\n' "$i" "$rss_now" "$(fds)" $(( $(date +%s) - start ))
    fi
done
settle_fds
sleep 1
fds_end=$(fds)
rss_end=$(rss)
reload_failures=$(grep -c "SIGHUP: reload failed" "$work/serve.err" || true)
growth=$(echo "scale=2; 100 * ($rss_end - $rss_first) / $rss_first" | bc)
echo "end: RSS $rss_end KiB ($growth% since reload $every; limit $tolerance%), descriptors $fds_end (baseline $fds_baseline); failed reloads $reload_failures; failed connections $failed_connections"

ok=yes
[ "$reload_failures" -eq 0 ] && [ "$failed_connections" -eq 0 ] || { echo "FAIL: failed reloads or connections"; ok=no; }
[ "$fds_end" -le "$fds_baseline" ] || { echo "FAIL: descriptors not back at the baseline"; ok=no; }
if [ "$(echo "$growth > $tolerance" | bc)" -eq 1 ]; then echo "FAIL: RSS grew by more than $tolerance%"; ok=no; fi
[ "$ok" = yes ] && echo "PASS"
[ "$ok" = yes ]
