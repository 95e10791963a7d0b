#!/usr/bin/env bash
# Soak: COUNT TLS connections held open at once against ONE `nss-tls serve`
# (issue 4: 10,000 concurrent connections). Not run by CI: it takes minutes.
#
#   scripts/soak-concurrent.sh [COUNT] [PARALLEL] [ROUNDS]
#
# Defaults: 10000 connections, at most 100 being opened at a time, 1 round
# (with ROUNDS > 1 the same serve process gets COUNT open at once ROUNDS times,
# one round after the other, to tell memory kept for reuse from a leak). Builds
# nss-tls in release mode, makes a self-signed EC certificate for localhost with
# openssl, starts `nss-tls serve --cert --key` with a raised descriptor limit,
# and runs scripts/soak-concurrent-client.py (python3, standard library only):
# each connection does a verified TLS handshake and one HTTP/1.1 keep-alive
# request; once all are open, each answers a second request while all stay
# open; then all are closed with close_notify. Prints the server's RSS and
# descriptors at baseline, with all open and after all closed.
#
# Exits non-zero if any connection failed, serve died or did not log every
# connection as served, or the server's descriptors did not come back to the
# baseline. Environment:
#   SOAK_HANDSHAKE_TIMEOUT  serve's --handshake-timeout (default 10, serve's own default)
#   SOAK_OPEN_TIMEOUT       seconds allowed for opening all connections (default 1800)
#   SOAK_TIMEOUT            seconds for one connect, handshake or request (default 120)
#   SOAK_BUILD=0            skip the release build (use the existing binary);
#   SOAK_BINARY=PATH        use that nss-tls binary (scripts/soak-lib.sh)
#   SOAK_MALLOC_STATS=1     a diagnostic: with gdb, call glibc's malloc_stats() in serve
#                           at the baseline and after all are closed (the bytes its heap
#                           has in use), then malloc_trim(0), and print the RSS after it;
#                           tells memory the allocator keeps from memory still in use
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

count=${1:-10000}
parallel=${2:-100}
rounds=${3:-1}
handshake_timeout=${SOAK_HANDSHAKE_TIMEOUT:-10}
open_timeout=${SOAK_OPEN_TIMEOUT:-1800}
per_step_timeout=${SOAK_TIMEOUT:-120}

command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is missing" >&2; exit 1; }
source scripts/soak-lib.sh
soak_binary

# Both sides need COUNT descriptors and some to spare. Root may raise the hard limit.
need=$((count + 1024))
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$need" ] || ulimit -Hn "$need" 2>/dev/null || true
ulimit -n "$need" 2>/dev/null || { echo "cannot raise the descriptor limit to $need (hard limit $(ulimit -Hn))" >&2; exit 1; }

soak_workdir

soak_certificate

"$binary" serve --port 0 --cert "$work/cert.pem" --key "$work/key.pem" \
    --handshake-timeout "$handshake_timeout" >"$work/serve.out" 2>"$work/serve.err" &
server=$!
soak_wait_for_port
sleep 1
baseline_fds=$(ls "/proc/$server/fd" | wc -l)

# malloc_stats LABEL: glibc's heap totals of serve (printed on serve's standard error).
malloc_stats() {
    [ "${SOAK_MALLOC_STATS:-0}" = 1 ] || return 0
    command -v gdb >/dev/null || { echo "SOAK_MALLOC_STATS needs gdb" >&2; return 0; }
    local before
    before=$(wc -l <"$work/serve.err")
    timeout 120 gdb -p "$server" -batch -ex 'call (void)malloc_stats()' >/dev/null 2>&1 || true
    local in_use system
    in_use=$(tail -n +"$((before + 1))" "$work/serve.err" | awk '/^Total/ {t=1} t && /in use bytes/ {print $NF; exit}')
    system=$(tail -n +"$((before + 1))" "$work/serve.err" | awk '/^Total/ {t=1} t && /system bytes/ {print $NF; exit}')
    echo "malloc_stats $1: heap in use ${in_use:-?} bytes, obtained from the system ${system:-?} bytes; RSS $(awk '/VmRSS/ {print $2}' "/proc/$server/status") KiB"
}
malloc_stats baseline

echo "soak-concurrent: $count connections held open at once ($rounds round(s)), $parallel opening at a time, against nss-tls serve (pid $server, port $port, descriptor limit $(ulimit -n), --handshake-timeout $handshake_timeout)"
start=$(date +%s)
set +e
# In the background, so that a signal to this script is handled at once.
timeout $(( rounds * (open_timeout + 3 * per_step_timeout + 900) )) python3 scripts/soak-concurrent-client.py \
    --port "$port" --ca "$work/cert.pem" --server-pid "$server" --baseline-fds "$baseline_fds" \
    --count "$count" --parallel "$parallel" --timeout "$per_step_timeout" --open-timeout "$open_timeout" \
    --rounds "$rounds" --json "$work/result.json" &
client=$!
wait "$client"
status=$?
client=
set -e
echo "client finished in $(( $(date +%s) - start )) s with status $status"
if kill -0 "$server" 2>/dev/null && [ "${SOAK_MALLOC_STATS:-0}" = 1 ]; then
    malloc_stats "after all closed"
    timeout 120 gdb -p "$server" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || true
    echo "after malloc_trim(0): RSS $(awk '/VmRSS/ {print $2}' "/proc/$server/status") KiB"
fi

alive=yes; kill -0 "$server" 2>/dev/null || alive=no
handshake_failures=$(grep -c "handshake failed" "$work/serve.err" || true)
served=$(grep -c "http, 2 requests): closed" "$work/serve.err" || true)
echo "serve alive afterwards: $alive; connections logged as 2 HTTP requests then a clean close: $served of $((count * rounds)); handshake failures logged: $handshake_failures"
[ -f "$work/result.json" ] && cat "$work/result.json"
if [ "$handshake_failures" -gt 0 ]; then grep "handshake failed" "$work/serve.err" | sed 's/^.*handshake failed/handshake failed/' | sort | uniq -c | sort -rn | head -5 || true; fi
[ "$status" -eq 0 ] && [ "$alive" = yes ] && [ "$handshake_failures" -eq 0 ] && [ "$served" -eq $((count * rounds)) ]
