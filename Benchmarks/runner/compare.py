"""The side-by-side comparison: AsyncNSS against NSS's selfserv and against
SwiftNIO + NIOSSL. Run through ../compare.sh, which builds first.

Every measurement is repeated in rounds; within a round the systems take
turns, so that a noisy neighbour hits all of them alike. The summary reports
medians and the ratios the issue sets targets for."""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

from . import measure, pki, report, servers

HANDSHAKE_SERVERS = ["nss-tls serve", "selfserv", "niossl-peer", "asyncnss-peer"]
SYSTEMS = ["asyncnss-peer", "niossl-peer"]


def parse():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full-handshakes", type=int, default=2000, help="strsclnt connections per full-handshake sample")
    parser.add_argument("--resumed-handshakes", type=int, default=5000, help="strsclnt connections per resumed sample")
    parser.add_argument("--bulk-mib", type=int, default=1024, help="MiB each way in the bulk echo")
    parser.add_argument("--idle", type=int, default=10000, help="idle connections in the scale test")
    parser.add_argument("--active", type=int, default=100)
    parser.add_argument("--latency-rounds", type=int, default=200, help="round trips per active connection")
    parser.add_argument("--cpu-connections", type=int, default=1000)
    parser.add_argument("--cpu-seconds", type=float, default=10)
    parser.add_argument("--only", nargs="*", default=["handshakes", "bulk", "scale", "idle"])
    parser.add_argument("--bin", required=True, help="the Benchmarks release build folder (peers)")
    parser.add_argument("--nss-tls", required=True, help="the release nss-tls binary")
    parser.add_argument("--out", required=True, help="where results.json, summary.md, chart.png and runs.log go")
    return parser.parse_args()


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def versions(args):
    def first_line(command):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except Exception as error:  # noqa: BLE001 - a missing tool is reported, not fatal
            return f"unavailable ({error})"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "swift": first_line(["swift", "--version"]),
        "nss": first_line(["pkg-config", "--modversion", "nss"]),
        "nspr": first_line(["pkg-config", "--modversion", "nspr"]),
        "openssl": first_line(["openssl", "version"]),
        "git": first_line(["git", "-C", os.path.dirname(args.bin), "rev-parse", "--short", "HEAD"]),
    }


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    file_limit = raise_file_limit()
    identity = pki.make(os.path.join(args.out, "pki"))
    srv = servers.Servers(args.bin, args.nss_tls, identity)
    results = {"machine": versions(args), "settings": vars(args) | {"file_limit": file_limit},
               "handshakes": [], "bulk": [], "scale": [], "idle": []}
    counts = {"full": args.full_handshakes, "resumed": args.resumed_handshakes}
    results_path = os.path.join(args.out, "results.json")
    with open(os.path.join(args.out, "runs.log"), "w") as log:

        def sample(section, label, key, name, run):
            """Runs one sample; a failure is recorded and the run goes on.
            results.json is rewritten after every sample."""
            step(f"round {round_number + 1}: {label}")
            entry = {"round": round_number, key: name}
            try:
                entry["results" if section == "handshakes" else "result"] = run()
            except Exception as error:  # noqa: BLE001 - recorded in the results, reported in the summary
                entry["error"] = str(error)[:500]
                log.write(f"\nFAILED: {error}\n")
                step(f"  failed: {str(error)[:200]}")
            results[section].append(entry)
            log.flush()
            with open(results_path, "w") as out:
                json.dump(results, out, indent=1)

        for round_number in range(args.rounds):
            # Rotate the order each round as well as alternating within it.
            turn = round_number % len(HANDSHAKE_SERVERS)
            if "handshakes" in args.only:
                for name in HANDSHAKE_SERVERS[turn:] + HANDSHAKE_SERVERS[:turn]:
                    sample("handshakes", f"handshakes against {name}", "server", name,
                           lambda: measure.handshakes(srv, name, counts, log))
            order = SYSTEMS if round_number % 2 == 0 else list(reversed(SYSTEMS))
            if "bulk" in args.only:
                for system in order:
                    sample("bulk", f"bulk echo, {system}", "system", system,
                           lambda: measure.bulk(srv, system, args.bulk_mib << 20, log))
            if "idle" in args.only:
                for system in order:
                    sample("idle", f"idle CPU, {system}", "system", system,
                           lambda: measure.idle_cpu(srv, system, args.cpu_connections, args.cpu_seconds, log))
            if "scale" in args.only:
                for system in order:
                    sample("scale", f"{args.idle} idle connections, {system}", "system", system,
                           lambda: measure.scale(srv, system, args.idle, args.active, args.latency_rounds, log))
    print(report.write(results, args.out))


def step(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
