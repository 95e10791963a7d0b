# Sourced by profile.sh and per-connection.sh: starts one server the same way
# for both, with a fresh key, on a free port, and waits until it accepts.
#
#   start_server NAME WORK      NAME: nss-tls, asyncnss-peer, niossl-peer or selfserv
#
# Sets `pki` (WORK/pki, with the client database for strsclnt), `port` and
# `pid`. The server's output goes to WORK/server.log. Run from Benchmarks/.
# NSS_TLS_ARGS adds arguments to `nss-tls serve` (e.g. `--event-loops 1`).

# SERVER_CPUS and CLIENT_CPUS (CPU lists for `taskset -c`, e.g. 0 and 1), when
# set, pin the server and the load generator apart, as `runner.ab --pin` does.
# `pinned ROLE COMMAND...` runs COMMAND under the CPUs of ROLE (server, client).
pinned() {
    local cpus
    cpus=$(cpus_for "$1")
    shift
    if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# The CPU list of ROLE (server or client), or nothing.
cpus_for() {
    if [ "$1" = server ]; then echo "${SERVER_CPUS:-}"; else echo "${CLIENT_CPUS:-}"; fi
}

# The nss-tls binary: NSS_TLS_BIN, or this checkout's release build.
nss_tls_bin() {
    echo "${NSS_TLS_BIN:-$(swift build -c release --package-path .. --show-bin-path)/nss-tls}"
}

start_server() {
    local name=$1 work=$2 command
    python3 -c "from runner import pki; pki.make('$work/pki')"
    pki=$work/pki
    port=$(python3 -c 'from runner import servers; print(servers.free_port())')
    case "$name" in
        nss-tls) command=("$(nss_tls_bin)" serve --cert "$pki/cert.pem" --key "$pki/key.pem" --port "$port" ${NSS_TLS_ARGS:-}) ;;
        asyncnss-peer|niossl-peer) command=("$(swift build -c release --show-bin-path)/$name" server --cert "$pki/cert.pem" --key "$pki/key.pem" --port "$port" --mode http) ;;
        selfserv) command=(selfserv -d "sql:$pki/server-db" -n bench -p "$port" -D -u -V tls1.2:tls1.3) ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
    # Not through `pinned`: `pid` must be the server's, not a subshell's.
    local cpus
    cpus=$(cpus_for server)
    if [ -n "$cpus" ]; then command=(taskset -c "$cpus" "${command[@]}"); fi
    "${command[@]}" >"$work/server.log" 2>&1 &
    pid=$!
    python3 -c "import socket,time
for _ in range(200):
    s=socket.socket()
    if s.connect_ex(('127.0.0.1',$port))==0: break
    time.sleep(0.05)"
}
