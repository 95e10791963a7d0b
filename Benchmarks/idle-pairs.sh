#!/usr/bin/env bash
# Server CPU per connection of two nss-tls builds (or one build and selfserv) in
# alternating pairs, with the server idle between a client's flights: the case
# where the framework's code is out of the caches at every wakeup, and where a
# cut of a few microseconds per connection shows (RESULTS.md, "Why full TLS 1.3
# is the one row over selfserv"). The default load, resumed TLS 1.3 from one
# strsclnt thread (-t 1), makes the same calls into the framework per connection
# as a full handshake without the key exchange.
#
#   Benchmarks/idle-pairs.sh A B [PAIRS] [STRSCLNT-ARGS...]
#
# A and B are nss-tls binaries, or `selfserv`; an nss-tls binary may be given as
# ENV=VALUE,...:PATH to run it with that environment. PAIRS defaults to 3;
# CONNECTIONS (default 1500) are measured after 200 to warm up. The CPU is the
# sum of the server's threads' run time (/proc/PID/task/*/schedstat, in
# nanoseconds), so it does not round to clock ticks. SERVER_CPUS and CLIENT_CPUS
# default to 0 and 1: the server and strsclnt on a core each.
set -euo pipefail

# A build as given, with its binary's path made absolute (this script changes directory).
absolute() {
    local build=$1 binary prefix=""
    [ "$build" = selfserv ] && { echo selfserv; return; }
    binary=${build##*:}
    [ "$binary" != "$build" ] && prefix="${build%:*}:"
    [ -x "$binary" ] || { echo "idle-pairs.sh: $binary is not an executable" >&2; return 1; }
    echo "$prefix$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
}
a=$(absolute "${1:?usage: idle-pairs.sh A B [PAIRS] [strsclnt args]}")
b=$(absolute "${2:?usage: idle-pairs.sh A B [PAIRS] [strsclnt args]}")
cd "$(dirname "${BASH_SOURCE[0]}")"
pairs=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
load=("$@")
[ "${#load[@]}" -gt 0 ] || load=(-t 1 -V tls1.3:tls1.3)
connections=${CONNECTIONS:-1500}
export SERVER_CPUS=${SERVER_CPUS-0} CLIENT_CPUS=${CLIENT_CPUS-1}
source ./server-under-load.bash

# The run time of every thread of process $1 so far, in nanoseconds.
thread_nanoseconds() {
    local total=0 task value
    for task in /proc/"$1"/task/*; do
        value=$(cut -d' ' -f1 "$task/schedstat" 2>/dev/null) || continue
        total=$((total + value))
    done
    echo "$total"
}

# Server CPU per connection in µs for build $1.
measure() {
    local build=$1 work environment=() binary before after
    work=$(mktemp -d)
    if [ "$build" = selfserv ]; then
        start_server selfserv "$work" >/dev/null 2>&1
    else
        binary=${build##*:}
        if [ "$binary" != "$build" ]; then IFS=, read -r -a environment <<<"${build%:*}"; fi
        export NSS_TLS_BIN=$binary
        for assignment in "${environment[@]}"; do export "${assignment?}"; done
        start_server nss-tls "$work" >/dev/null 2>&1
        for assignment in "${environment[@]}"; do unset "${assignment%%=*}"; done
    fi
    sleep 0.5
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "idle-pairs.sh: $build did not start:" >&2
        cat "$work/server.log" >&2
        rm -rf "$work"
        return 1
    fi
    pinned client strsclnt -d "sql:$pki/client-db" -D -o -q "${load[@]}" -c 200 -p "$port" 127.0.0.1 >/dev/null 2>&1 || true
    before=$(thread_nanoseconds "$pid")
    pinned client strsclnt -d "sql:$pki/client-db" -D -o -q "${load[@]}" -c "$connections" -p "$port" 127.0.0.1 >/dev/null 2>&1 || true
    after=$(thread_nanoseconds "$pid")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
    echo $(( (after - before) / 1000 / connections ))
}

echo "server CPU µs per connection, ${connections} connections, load: ${load[*]}"
echo "pair  A  B"
for i in $(seq "$pairs"); do
    first=$(measure "$a")
    second=$(measure "$b")
    echo "$i  $first  $second"
done
