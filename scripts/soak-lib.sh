# Shared by the soak scripts (source it; not run on its own): the nss-tls
# binary, a scratch directory cleaned up on exit together with the server and
# client processes, a self-signed certificate, waiting for serve's port, and
# serve's RSS and descriptor count.
#
# Environment: SOAK_BUILD=0 skips the release build; SOAK_BINARY uses that
# nss-tls binary instead of building one.

# Sets `binary` to a release nss-tls, built first unless told otherwise.
soak_binary() {
    if [ -z "${SOAK_BINARY:-}" ] && [ "${SOAK_BUILD:-1}" != 0 ]; then
        timeout 1800 swift build -c release --product nss-tls >/dev/null
    fi
    binary=${SOAK_BINARY:-$(swift build -c release --show-bin-path)/nss-tls}
}

# Sets `work` to a new scratch directory. On exit it stops `client` and
# `server` (when the caller set them) and removes the directory.
soak_workdir() {
    work=$(mktemp -d)
    server=
    client=
    trap soak_cleanup EXIT
    trap 'exit 130' INT TERM
}

soak_cleanup() {
    [ -z "$client" ] || kill -TERM "$client" 2>/dev/null || true
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}

# Writes a self-signed certificate for localhost and 127.0.0.1 to
# $work/cert.pem and its key to $work/key.pem.
soak_certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
}

# Sets `port` from serve's announcement in $work/serve.out; fails after 10 s.
soak_wait_for_port() {
    for _ in $(seq 1 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
    port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$work/serve.out")
    [ -n "$port" ] || { echo "serve did not start:" >&2; cat "$work/serve.err" >&2; exit 1; }
}

# serve's resident set in KiB, and its open descriptors.
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
fds() { ls "/proc/$server/fd" | wc -l; }
