#!/usr/bin/env bash
# Counts what one connection costs a server under strsclnt load: server CPU
# and context switches per connection, and for nss-tls the Swift concurrency
# runtime's work per connection (tasks created, jobs enqueued, continuations
# resumed, executor switches, and jobs run on the poll loops: the switches that
# happened), through uprobes on libswift_Concurrency.so.
#
#   Benchmarks/per-connection.sh nss-tls|selfserv [STRSCLNT-ARGS...]
#
# The default load is resumed TLS 1.3 (-V tls1.3:tls1.3). CONNECTIONS (default
# 2000) are counted after 200 to warm up. NSS_TLS_BIN picks the nss-tls binary
# (default: this checkout's release build); SERVER_CPUS and CLIENT_CPUS pin the
# server and strsclnt apart (server-under-load.bash). Each probe hit costs the server
# a trap, so with the probes the CPU figure grows (by about 100 µs per resumed
# TLS 1.2 connection); PROBES=0 leaves them out and gives CPU and context
# switches only. Needs linux-perf and root (for the probes, which it
# removes again). RESULTS.md, "Per connection, counted", shows
# what the counts meant on 2026-11-29.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
server=${1:?usage: per-connection.sh nss-tls|selfserv [strsclnt args]}
shift
load=("$@")
[ "${#load[@]}" -gt 0 ] || load=(-V tls1.3:tls1.3)
connections=${CONNECTIONS:-2000}
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }

work=$(mktemp -d)
added=()
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
    for probe in "${added[@]}"; do perf probe -q -d "$probe" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
source ./server-under-load.bash

events=(-e context-switches -e task-clock)
case "$server" in
    nss-tls)
        if [ "${PROBES:-1}" != 0 ]; then
            bin=$(nss_tls_bin)
            runtime=$(ldd "$bin" | awk '/libswift_Concurrency/ { print $3 }')
            [ -n "$runtime" ] || { echo "$bin does not link libswift_Concurrency.so" >&2; exit 1; }
            for function in swift_task_create swift_task_enqueueGlobal swift_continuation_resume swift_task_switch swift_job_run_on_serial_and_task_executor; do
                name=probe_libswift_Concurrency:$function
                if ! perf probe -l 2>/dev/null | grep -q "$name "; then
                    perf probe -q -x "$runtime" -a "$function"
                    added+=("$name")
                fi
                events+=(-e "$name")
            done
        fi
        ;;
    selfserv) ;;
    *) echo "unknown server $server" >&2; exit 1 ;;
esac

start_server "$server" "$work"
pinned client strsclnt -d "sql:$pki/client-db" -D -o -q -c 200 "${load[@]}" -p "$port" 127.0.0.1 >/dev/null 2>&1 || true

perf stat "${events[@]}" -p "$pid" -o "$work/stat.txt" &
stat_pid=$!
sleep 0.3
pinned client strsclnt -d "sql:$pki/client-db" -D -o -q -c "$connections" "${load[@]}" -p "$port" 127.0.0.1 >/dev/null 2>&1 || true
kill -INT "$stat_pid"
wait "$stat_pid" || true

echo "# $server under: strsclnt -D -o -q -c $connections ${load[*]} (after 200 to warm up)"
python3 - "$work/stat.txt" "$connections" <<'EOF'
import re, sys
text, connections = open(sys.argv[1]).read(), int(sys.argv[2])
for line in text.splitlines():
    match = re.match(r"\s*([\d,.]+)\s+(?:msec\s+)?(\S+)", line)
    if not match or match.group(2) in ("seconds", "#"):
        continue
    value, name = float(match.group(1).replace(",", "")), match.group(2)
    if name == "task-clock":
        print(f"{'server CPU, µs':<48} {value * 1000 / connections:9.1f} per connection")
    else:
        print(f"{name.split(':')[-1]:<48} {value / connections:9.2f} per connection")
EOF
