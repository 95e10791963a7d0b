#!/usr/bin/env bash
# Makes a local test PKI in DIR (default ./pki) with openssl: a CA, a server
# certificate for localhost, 127.0.0.1 and ::1, and a client certificate,
# each signed by the CA, with PKCS#8 keys that AsyncNSS loads as they are.
# For development and tests only: the CA key sits unencrypted next to the
# certificates.
#
#   scripts/make-test-pki.sh [--rsa] [DIR]
#
# --rsa makes RSA-2048 keys instead of EC P-256 ones. Existing files in DIR
# are replaced.
set -euo pipefail

key_arguments=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
if [ "${1:-}" = "--rsa" ]; then
    key_arguments=(-newkey rsa:2048)
    shift
fi
dir=${1:-pki}
days=${PKI_DAYS:-30}

command -v openssl >/dev/null || { echo "make-test-pki: openssl is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"

printf 'basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > server.ext
printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' > client.ext

openssl req -x509 "${key_arguments[@]}" -nodes -keyout ca.key -out ca.pem -days "$days" \
    -subj "/CN=AsyncNSS local test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

issue() { # name subject
    openssl req "${key_arguments[@]}" -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days "$days" -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue server "/CN=localhost"
issue client "/CN=local test client"
rm -f ca.srl

cat <<DONE
Made in $(pwd), valid for $days days:
  ca.pem, ca.key           the CA
  server.pem, server.key   localhost, 127.0.0.1, ::1
  client.pem, client.key   a client certificate

Serve with it; /private asks a client for its certificate in the middle of the connection:
  swift run nss-tls serve --cert $dir/server.pem --key $dir/server.key --client-ca $dir/ca.pem
  curl --cacert $dir/ca.pem --cert $dir/client.pem --key $dir/client.key https://localhost:8443/private
nss-tls connect half-closes when its input ends, usually before such a request comes, so
for it ask at the handshake: add --request-client-cert to serve, then
  printf 'GET /private HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n' | swift run nss-tls connect localhost:8443 --ca $dir/ca.pem --cert $dir/client.pem --key $dir/client.key
DONE
