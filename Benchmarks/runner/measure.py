"""The measurements. Each function runs one sample and returns a dict;
compare.py repeats them in rounds, alternating between the systems."""

import json
import os
import re
import subprocess
import time

from . import servers

# The handshake scenarios: strsclnt arguments, and how many connections.
HANDSHAKES = {
    "full TLS 1.3": (["-N", "-V", "tls1.3:tls1.3"], "full"),
    "resumed TLS 1.3 (tickets)": (["-V", "tls1.3:tls1.3"], "resumed"),
    "resumed TLS 1.2 (session IDs)": (["-V", "tls1.2:tls1.2"], "resumed"),
}


def strsclnt(port, client_db, arguments, connections, log, require_resumption=True):
    """Runs strsclnt and returns handshakes per second (wall clock of the
    whole strsclnt process, its own start-up included) and what it printed
    about resumption. With `require_resumption` (the default), a resumed
    scenario that resumed fewer than all but one connection is an error."""
    command = servers.pinned(["strsclnt", "-d", "sql:" + client_db, "-D", "-o", "-q", *arguments,
                              "-p", str(port), "-c", str(connections), "127.0.0.1"], "client")
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - start
    output = done.stdout + done.stderr
    log.write(f"\n$ {' '.join(command)}\n{output}(exit {done.returncode}, {elapsed:.3f} s)\n")
    tested = re.search(r"(\d+) server certificates tested", output)
    hits = [int(n) for n in re.findall(r"(\d+) cache hits", output)]
    stateless = [int(n) for n in re.findall(r"(\d+) stateless resumes", output)]
    resumed = max(hits + stateless + [0])
    # strsclnt exits 1 after TLS 1.3 runs even when every connection worked,
    # so success is judged by what it printed.
    if "-N" in arguments:
        if not tested or int(tested.group(1)) != connections:
            raise RuntimeError(f"strsclnt did not complete {connections} full handshakes: {output[-300:]}")
    elif resumed < connections - 1 and require_resumption:
        raise RuntimeError(f"strsclnt resumed only {resumed} of {connections}: {output[-300:]}")
    return {"handshakes_per_s": connections / elapsed, "seconds": elapsed,
            "connections": connections, "resumed": resumed}


def cpu_seconds(pid):
    """User plus system CPU seconds of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peer_client(binary, arguments, log, timeout=1800):
    """Runs a peer's client command and returns the JSON line it printed."""
    command = [binary, *arguments]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    log.write(f"\n$ {' '.join(command)}\n{done.stdout}{done.stderr[-2000:]}"
              f"(exit {done.returncode}, {time.monotonic() - start:.3f} s)\n")
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def client_args(port, pki):
    return ["--port", str(port), "--ca", pki["cert"]]


def handshakes(srv, name, counts, log, attempts=3):
    """All handshake scenarios against one server, started once (HTTP-hello
    mode for the peers, since strsclnt sends an HTTP/1.0 request). A sample
    that fails (strsclnt saw a reset, say) is retried on a new server process,
    and each failure is kept in the result under "failures"."""
    results = {}
    for scenario, (arguments, kind) in HANDSHAKES.items():
        failures = []
        for _ in range(attempts):
            port = servers.free_port()
            try:
                with servers.running(srv.command(name, port, mode="http"), port, log) as server:
                    cpu_before = cpu_seconds(server.pid)
                    result = strsclnt(port, srv.pki["client_db"], arguments, counts[kind], log)
                    # The server's own CPU per handshake: what the framework
                    # adds shows here whatever the load generator costs.
                    result["server_cpu_us_per_handshake"] = (cpu_seconds(server.pid) - cpu_before) / counts[kind] * 1e6
                    results[scenario] = result
                break
            except RuntimeError as error:
                failures.append(str(error)[:300])
                log.write(f"\nFAILED: {error}\n")
        else:
            results[scenario] = {"handshakes_per_s": None}
        results[scenario]["failures"] = failures
    return results


def bulk(srv, system, total_bytes, log):
    """A system's client against its own echo server, `total_bytes` each way."""
    port = servers.free_port()
    with servers.running(srv.command(system, port, mode="echo"), port, log):
        return peer_client(srv.client(system),
                           ["bulk", *client_args(port, srv.pki), "--bytes", str(total_bytes)], log)


def scale(srv, system, idle, active, rounds, log):
    """Echo latency of `active` connections alone, then among `idle` idle
    ones, and the server's RSS per idle connection; one server process."""
    port = servers.free_port()
    with servers.running(srv.command(system, port, mode="echo"), port, log) as server:
        common = ["latency", *client_args(port, srv.pki), "--active", str(active),
                  "--rounds", str(rounds), "--server-pid", str(server.pid)]
        alone = peer_client(srv.client(system), [*common, "--idle", "0"], log)
        among = peer_client(srv.client(system), [*common, "--idle", str(idle)], log)
    return {"alone": alone, "among": among}


def idle_cpu(srv, system, connections, seconds, log):
    """The server's CPU while its own system's client holds idle connections."""
    port = servers.free_port()
    with servers.running(srv.command(system, port, mode="echo"), port, log) as server:
        return peer_client(srv.client(system),
                           ["hold", *client_args(port, srv.pki), "--connections", str(connections),
                            "--seconds", str(seconds), "--server-pid", str(server.pid)], log)
