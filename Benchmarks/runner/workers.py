"""Handshakes per second and server CPU per handshake with worker
processes: `nss-tls serve` in one process with its own session cache,
`--workers 1` (the shared, multi-process cache, one worker), `--workers 2`,
and NSS's selfserv alone and with `-M 2` (its own multi-process mode) as the
reference. Rounds alternate between the servers; the server CPU is the
parent's plus its workers'.

    python3 -m runner.workers --nss-tls PATH [--rounds 3] --out DIR
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import time

from . import measure, pki as pki_module, servers


def descendants(pid):
    """The process IDs below `pid`, from /proc/PID/task/*/children."""
    found = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as children:
                    for child in children.read().split():
                        found.append(int(child))
                        pending.append(int(child))
            except FileNotFoundError:
                pass
    return found


def tree_cpu_seconds(pid):
    total = 0.0
    for process in [pid, *descendants(pid)]:
        try:
            total += measure.cpu_seconds(process)
        except FileNotFoundError:
            pass
    return total


def command(name, nss_tls, pki, port):
    cert, key = pki["cert"], pki["key"]
    if name == "serve":
        return [nss_tls, "serve", "--cert", cert, "--key", key, "--port", str(port)]
    if name.startswith("serve --workers "):
        return [nss_tls, "serve", "--cert", cert, "--key", key, "--port", str(port), "--workers", name.split()[-1]]
    # A full path: with -M, selfserv starts its children from argv[0].
    selfserv = [shutil.which("selfserv") or "selfserv", "-d", "sql:" + pki["server_db"], "-n", "bench", "-p", str(port), "-D", "-u", "-V", "tls1.2:tls1.3"]
    if name == "selfserv":
        return selfserv
    if name == "selfserv -M 2":
        return selfserv + ["-M", "2"]
    raise ValueError(name)


SYSTEMS = ["serve", "serve --workers 1", "serve --workers 2", "selfserv", "selfserv -M 2"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nss-tls", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full", type=int, default=2000)
    parser.add_argument("--resumed", type=int, default=5000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    pki = pki_module.make(os.path.join(args.out, "pki"))
    counts = {"full": args.full, "resumed": args.resumed}
    samples = {}
    with open(os.path.join(args.out, "runs.log"), "w") as log:
        for round_number in range(args.rounds):
            order = SYSTEMS if round_number % 2 == 0 else list(reversed(SYSTEMS))
            for system in order:
                for scenario, (arguments, kind) in measure.HANDSHAKES.items():
                    port = servers.free_port()
                    with servers.running(command(system, args.nss_tls, pki, port), port, log) as server:
                        # Workers start after the parent listens.
                        time.sleep(0.5)
                        before = tree_cpu_seconds(server.pid)
                        # selfserv -M resumes TLS 1.3 tickets only on the
                        # process that issued them: count, do not fail.
                        result = measure.strsclnt(port, pki["client_db"], arguments, counts[kind], log, require_resumption=False)
                        cpu = tree_cpu_seconds(server.pid) - before
                        group = server.pid
                    # selfserv -M does not pass SIGTERM on to its children.
                    try:
                        os.killpg(group, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    result["server_cpu_us_per_handshake"] = cpu / counts[kind] * 1e6
                    samples.setdefault(system, {}).setdefault(scenario, []).append(result)
                    print(f"round {round_number + 1} {system:20} {scenario:30} {result['handshakes_per_s']:8.0f}/s "
                          f"{result['server_cpu_us_per_handshake']:6.0f} µs, resumed {result['resumed']}", flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as out:
        json.dump(samples, out, indent=1)
    lines = ["| server | " + " | ".join(f"{s}: handshakes/s, server CPU µs, resumed" for s in measure.HANDSHAKES) + " |",
             "|---|" + "---|" * len(measure.HANDSHAKES)]
    for system in SYSTEMS:
        cells = []
        for scenario in measure.HANDSHAKES:
            runs = samples[system][scenario]
            rate = statistics.median(r["handshakes_per_s"] for r in runs)
            cpu = statistics.median(r["server_cpu_us_per_handshake"] for r in runs)
            resumed = statistics.median(r["resumed"] for r in runs)
            cells.append(f"{rate:,.0f}, {cpu:,.0f}, {resumed:,.0f}")
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    summary = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "summary.md"), "w") as out:
        out.write(summary)
    print(summary)


if __name__ == "__main__":
    main()
