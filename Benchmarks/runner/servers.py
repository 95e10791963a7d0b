"""Starting and stopping the servers under test, one at a time."""

import contextlib
import os
import signal
import socket
import subprocess
import time


# CPUs to pin the servers and the load generators to (`taskset -c`), or None
# for no pinning. runner.ab's --pin sets them, so that on a small machine the
# server under test gets cores of its own instead of sharing them with its load.
PIN = {"server": None, "client": None}


def pinned(command, role):
    """`command` run under `taskset -c` with the CPUs of `role`, if any."""
    cpus = PIN[role]
    return command if cpus is None else ["taskset", "-c", cpus, *command]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


@contextlib.contextmanager
def running(command, port, log_path):
    """Runs `command` (a server listening on `port`) for the body of a `with`;
    yields its process. Its output goes to `log_path`."""
    command = pinned(command, "server")
    with open(log_path, "ab") as log:
        log.write(("\n$ " + " ".join(command) + "\n").encode())
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        try:
            wait_for_port(port, process)
            # Connecting to check the port made one connection that closed
            # before its handshake; let the server forget it.
            time.sleep(0.2)
            yield process
        finally:
            stop(process)


def stop(process):
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Servers:
    """The command lines of every server, given the build and the identity."""

    def __init__(self, bin_dir, nss_tls, pki):
        self.bin_dir = bin_dir
        self.nss_tls = nss_tls
        self.pki = pki

    def command(self, name, port, mode="http"):
        cert, key = self.pki["cert"], self.pki["key"]
        if name == "nss-tls serve":
            return [self.nss_tls, "serve", "--cert", cert, "--key", key, "--port", str(port)]
        if name == "selfserv":
            # -D: no Nagle; -u: session tickets (AsyncNSS servers enable them too).
            return ["selfserv", "-d", "sql:" + self.pki["server_db"], "-n", "bench", "-p", str(port),
                    "-D", "-u", "-V", "tls1.2:tls1.3"]
        if name in ("asyncnss-peer", "niossl-peer"):
            return [os.path.join(self.bin_dir, name), "server", "--cert", cert, "--key", key,
                    "--port", str(port), "--mode", mode]
        raise ValueError(name)

    def client(self, name):
        return os.path.join(self.bin_dir, name)
