#!/usr/bin/env bash
# Profiles one server under strsclnt load with `perf record -e cpu-clock -g`
# and prints where its CPU goes, by library and by symbol (demangled).
#
#   Benchmarks/profile.sh SERVER [STRSCLNT-ARGS...]
#
# SERVER is nss-tls, asyncnss-peer, niossl-peer or selfserv. The default load
# is 3000 full TLS 1.3 handshakes (-N -V tls1.3:tls1.3). Needs linux-perf and
# a release build (compare.sh makes one); output goes to results/profile-SERVER.txt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
server=${1:?usage: profile.sh nss-tls|asyncnss-peer|niossl-peer|selfserv [strsclnt args]}
shift
load=("$@")
[ "${#load[@]}" -gt 0 ] || load=(-N -V tls1.3:tls1.3 -c 3000)
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill ${pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
source ./server-under-load.bash
start_server "$server" "$work"
sleep 0.3
perf record -e cpu-clock -F 2000 -g -p "$pid" -o "$work/perf.data" >/dev/null 2>&1 &
perf_pid=$!
sleep 0.5
pinned client strsclnt -d "sql:$pki/client-db" -D -o -q "${load[@]}" -p "$port" 127.0.0.1 >/dev/null 2>&1 || true
kill -INT "$perf_pid"; wait "$perf_pid" || true

# head closes its pipe early; that is not a failure.
set +o pipefail
mkdir -p results
out=results/profile-$server.txt
{
    echo "# perf record -e cpu-clock -g on $server under: strsclnt -D -o -q ${load[*]}"
    echo "## by library (self time; samples at 2,000 per second of CPU)"
    perf report -i "$work/perf.data" -g none --no-children --sort dso -n --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
    echo "## by symbol (self time)"
    perf report -i "$work/perf.data" -g none --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -${PROFILE_SYMBOLS:-40} | swift demangle --simplified
} >"$out"
cat "$out"
