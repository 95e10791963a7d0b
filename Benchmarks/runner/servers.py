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


# How many lines of a server's output runs.log keeps from its start and from
# its end. `nss-tls serve` logs a line per connection, and a handshake run makes
# hundreds of thousands of them: kept whole, they made runs.log about 15 MB.
KEPT_OUTPUT_LINES = 20


@contextlib.contextmanager
def running(command, port, log):
    """Runs `command` (a server listening on `port`) for the body of a `with`;
    yields its process. Its output goes to the text file `log`, shortened to
    its first and last KEPT_OUTPUT_LINES lines once it has stopped."""
    command = pinned(command, "server")
    log.write("\n$ " + " ".join(command) + "\n")
    log.flush()
    output_path = log.name + ".server"
    with open(output_path, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output, start_new_session=True)
        try:
            wait_for_port(port, process)
            # Connecting to check the port made one connection that closed
            # before its handshake; let the server forget it.
            time.sleep(0.2)
            yield process
        finally:
            stop(process)
            append_shortened(output_path, log)


def append_shortened(output_path, log):
    """Writes the server output in `output_path` to `log`, keeping its first
    and last KEPT_OUTPUT_LINES lines, and removes `output_path`."""
    with open(output_path, encoding="utf-8", errors="replace") as output:
        lines = output.readlines()
    os.remove(output_path)
    if len(lines) > 2 * KEPT_OUTPUT_LINES:
        left_out = len(lines) - 2 * KEPT_OUTPUT_LINES
        lines = lines[:KEPT_OUTPUT_LINES] + [f"[{left_out} lines of server output left out]\n"] + lines[-KEPT_OUTPUT_LINES:]
    log.writelines(lines)
    log.flush()


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
