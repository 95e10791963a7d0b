"""The benchmark identity: an ECDSA P-256 key and self-signed certificate as
PEM files, and the same key and certificate in an NSS database for selfserv."""

import os
import shutil
import subprocess

NICKNAME = "bench"


def make(directory):
    """Creates cert.pem, key.pem (PKCS#8), server-db/ (holding both as NICKNAME)
    and client-db/ (empty, for strsclnt) in `directory`. Returns their paths."""
    # Always a new identity: certutil -N would prompt on an existing database.
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    p12 = os.path.join(directory, "identity.p12")
    server_db = os.path.join(directory, "server-db")
    client_db = os.path.join(directory, "client-db")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
    run(["openssl", "pkcs12", "-export", "-in", cert, "-inkey", key, "-name", NICKNAME,
         "-out", p12, "-passout", "pass:"])
    for db in (server_db, client_db):
        os.makedirs(db, exist_ok=True)
        run(["certutil", "-N", "-d", "sql:" + db, "--empty-password"])
    run(["pk12util", "-i", p12, "-d", "sql:" + server_db, "-W", ""])
    return {"cert": cert, "key": key, "server_db": server_db, "client_db": client_db}


def run(command):
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
