"""Before and after: builds of AsyncNSS side by side, with selfserv as the
yardstick. For library changes (the poll thread, say), where the full
comparison (compare.py) takes too long to repeat.

    python3 -m runner.ab --build before:B/Benchmarks/.build/release:B/.build/release/nss-tls \\
        --build after:A/Benchmarks/.build/release:A/.build/release/nss-tls \\
        --build after-2-threads:A/Benchmarks/.build/release:A/.build/release/nss-tls:NAME=VALUE \\
        --out results/ab --rounds 3 --only handshakes scale

Each --build is NAME:PEER_BIN_DIR:NSS_TLS[:ENV=VALUE...]; the environment
applies to that build's servers and clients. Each round runs, in an order
that rotates every round:
- handshakes: every strsclnt scenario of measure.HANDSHAKES against
  `nss-tls serve` of each build and against selfserv;
- scale: asyncnss-peer of each build (its own client and server), --active
  connections alone and among --idle idle ones;
- bulk: asyncnss-peer of each build and niossl-peer (each its own client and
  echo server), --bulk-mib each way over one connection, with the server's
  CPU seconds.

--pin SERVER_CPUS:CLIENT_CPUS (e.g. 0:1) runs every server under
`taskset -c SERVER_CPUS` and strsclnt under `taskset -c CLIENT_CPUS`, so that
the server under test and its load do not share cores; `nss-tls serve` then
starts one event loop per CPU it was given.

Writes results.json (every sample), summary.md and runs.log to --out."""

import argparse
import json
import os
import statistics
import sys
import time

from . import compare, measure, pki, servers


def parse():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="append", required=True, help="NAME:PEER_BIN_DIR:NSS_TLS[:ENV=VALUE...]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full-handshakes", type=int, default=2000)
    parser.add_argument("--resumed-handshakes", type=int, default=5000)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--active", type=int, default=100)
    parser.add_argument("--latency-rounds", type=int, default=200)
    parser.add_argument("--bulk-mib", type=int, default=1024, help="MiB each way in the bulk echo")
    parser.add_argument("--only", nargs="*", default=["handshakes", "scale"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--pin", metavar="SERVER_CPUS:CLIENT_CPUS",
                        help="run the servers and strsclnt under taskset -c with these CPU lists (e.g. 0:1), "
                             "so that they do not share cores")
    return parser.parse_args()


class Build(servers.Servers):
    """One build's servers and clients, run with `env` added to the environment."""

    def __init__(self, bin_dir, nss_tls, pki, env, scripts):
        super().__init__(bin_dir, nss_tls, pki)
        self.env = env
        self.scripts = scripts

    def wrap(self, path):
        """A script that runs `path` with this build's environment."""
        if not self.env:
            return path
        os.makedirs(self.scripts, exist_ok=True)
        script = os.path.join(self.scripts, f"{len(os.listdir(self.scripts))}-{os.path.basename(path)}")
        with open(script, "w") as out:
            out.write("#!/bin/sh\nexec env " + " ".join(self.env) + f" '{path}' \"$@\"\n")
        os.chmod(script, 0o755)
        return script

    def command(self, name, port, mode="http"):
        command = super().command(name, port, mode)
        return command if name == "selfserv" or not self.env else ["env", *self.env, *command]

    def client(self, name):
        return self.wrap(super().client(name))


def step(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    return "–" if value is None else f"{value:,.{digits}f}"


def summary(results):
    lines = [f"Run {results['machine']['date_utc']} UTC, {results['settings']['rounds']} rounds, medians.", ""]
    if results["handshakes"]:
        names = results["builds"]
        lines += ["| scenario | " + " | ".join(names) + " | selfserv | " + " | ".join(f"{n} / selfserv" for n in names)
                  + " | " + " | ".join(f"server CPU µs {n}" for n in names) + " | server CPU µs selfserv |",
                  "|---|" + "---:|" * (3 * len(names) + 2)]
        for scenario in measure.HANDSHAKES:
            rate, cpu = {}, {}
            for sample in results["handshakes"]:
                if "error" in sample:
                    continue
                r = sample["results"][scenario]
                rate.setdefault(sample["server"], []).append(r.get("handshakes_per_s"))
                cpu.setdefault(sample["server"], []).append(r.get("server_cpu_us_per_handshake"))
            m = {k: median(v) for k, v in rate.items()}
            c = {k: median(v) for k, v in cpu.items()}
            s = m.get("selfserv")
            ratio = lambda x, y: fmt(x / y, 2) if x and y else "–"
            lines.append(f"| {scenario} | " + " | ".join(fmt(m.get(n)) for n in names) + f" | {fmt(s)} | "
                         + " | ".join(ratio(m.get(n), s) for n in names) + " | "
                         + " | ".join(fmt(c.get(n)) for n in names) + f" | {fmt(c.get('selfserv'))} |")
        lines.append("")
        lines += paired_ratios(results)
    if results["scale"]:
        lines += [f"| build | p50 alone | p99 alone | p50 among {results['settings']['idle']:,} | p99 among | p99 among / alone | s to open the idle connections | RSS per idle connection (KiB) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for build in results["builds"]:
            samples = [s["result"] for s in results["scale"] if s.get("system") == build and "error" not in s]
            if not samples:
                continue
            get = lambda part, key: median([s[part].get(key) for s in samples])
            alone99, among99 = get("alone", "p99_us"), get("among", "p99_us")
            lines.append(f"| {build} | {fmt(get('alone', 'p50_us'))} | {fmt(alone99)} | {fmt(get('among', 'p50_us'))} | {fmt(among99)} | "
                         f"{fmt(among99 / alone99, 2) if among99 and alone99 else '–'} | {fmt(get('among', 'idle_open_seconds'), 1)} | "
                         f"{fmt(get('among', 'rss_per_idle_kib'), 1)} |")
        lines.append("")
    if results["bulk"]:
        lines += ["| pair | MiB/s each way | / niossl-peer | server CPU s per GiB each way |", "|---|---:|---:|---:|"]
        rates, cpus = {}, {}
        for sample in results["bulk"]:
            if "error" in sample:
                continue
            rates.setdefault(sample["system"], []).append(sample["result"].get("mib_per_s"))
            cpus.setdefault(sample["system"], []).append(sample["result"].get("server_cpu_s_per_gib"))
        nio = median(rates.get("niossl-peer", []))
        for name in [*results["builds"], "niossl-peer"]:
            rate = median(rates.get(name, []))
            lines.append(f"| {name} | {fmt(rate)} | {fmt(rate / nio, 2) if rate and nio else '–'} | {fmt(median(cpus.get(name, [])), 2)} |")
        lines.append("")
    failures = [f"{section} round {s['round'] + 1} {s.get('server') or s.get('system')}: {s['error']}"
                for section in ("handshakes", "scale", "bulk") for s in results[section] if "error" in s]
    if failures:
        lines += ["Failures:", *[f"- {f}" for f in failures], ""]
    return "\n".join(lines)


def paired_ratios(results):
    """A table of each build's ratios to selfserv within each round: their
    median and range. The machine's speed drifts between rounds more than
    most changes move these figures, so a ratio taken within one round is
    the steadier measure, and its range shows whether a median of 1.02 can
    be told from 1.00."""
    names = results["builds"]
    lines = ["Ratios to selfserv within each round: median (lowest–highest).", "",
             "| scenario | " + " | ".join(f"rate {n} / selfserv | CPU {n} / selfserv" for n in names) + " |",
             "|---|" + "---:|" * (2 * len(names))]
    for scenario in measure.HANDSHAKES:
        rounds = {}
        for sample in results["handshakes"]:
            if "error" not in sample:
                rounds.setdefault(sample["round"], {})[sample["server"]] = sample["results"][scenario]
        cells = []
        for name in names:
            for key in ("handshakes_per_s", "server_cpu_us_per_handshake"):
                ratios = sorted(r[name][key] / r["selfserv"][key] for r in rounds.values()
                                if name in r and "selfserv" in r and r[name].get(key) and r["selfserv"].get(key))
                cells.append(f"{median(ratios):.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f})" if ratios else "–")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return lines + [""]


def bulk(srv, system, total_bytes, log):
    """measure.bulk, plus the echo server's CPU seconds per GiB each way."""
    port = servers.free_port()
    with servers.running(srv.command(system, port, mode="echo"), port, log) as server:
        before = measure.cpu_seconds(server.pid)
        result = measure.peer_client(srv.client(system),
                                     ["bulk", *measure.client_args(port, srv.pki), "--bytes", str(total_bytes)], log)
        result["server_cpu_s_per_gib"] = (measure.cpu_seconds(server.pid) - before) / (total_bytes / (1 << 30))
    return result


def main():
    args = parse()
    if args.pin:
        servers.PIN["server"], servers.PIN["client"] = args.pin.split(":")
    os.makedirs(args.out, exist_ok=True)
    file_limit = compare.raise_file_limit()
    identity = pki.make(os.path.join(args.out, "pki"))
    builds = {}
    for spec in args.build:
        name, bin_dir, nss_tls, *env = spec.split(":")
        builds[name] = Build(bin_dir, nss_tls, identity, env, os.path.join(args.out, "scripts", name))
    machine = compare.versions(argparse.Namespace(bin=list(builds.values())[-1].bin_dir))
    results = {"machine": machine, "settings": vars(args) | {"file_limit": file_limit},
               "builds": list(builds), "handshakes": [], "scale": [], "bulk": []}
    counts = {"full": args.full_handshakes, "resumed": args.resumed_handshakes}
    names = list(builds) + ["selfserv"]
    with open(os.path.join(args.out, "runs.log"), "w") as log:
        def sample(section, key, name, run, round_number):
            step(f"round {round_number + 1}: {section}, {name}")
            entry = {"round": round_number, key: name}
            try:
                entry["results" if section == "handshakes" else "result"] = run()
            except Exception as error:  # noqa: BLE001 - recorded, the run goes on
                entry["error"] = str(error)[:500]
                log.write(f"\nFAILED: {error}\n")
                step(f"  failed: {str(error)[:200]}")
            results[section].append(entry)
            log.flush()
            with open(os.path.join(args.out, "results.json"), "w") as out:
                json.dump(results, out, indent=1)

        for round_number in range(args.rounds):
            turn = round_number % len(names)
            if "handshakes" in args.only:
                for name in names[turn:] + names[:turn]:
                    srv = list(builds.values())[0] if name == "selfserv" else builds[name]
                    server = "selfserv" if name == "selfserv" else "nss-tls serve"
                    sample("handshakes", "server", name,
                           lambda: measure.handshakes(srv, server, counts, log), round_number)
            if "bulk" in args.only:
                systems = list(builds) + ["niossl-peer"]
                turn = round_number % len(systems)
                for name in systems[turn:] + systems[:turn]:
                    srv = list(builds.values())[0] if name == "niossl-peer" else builds[name]
                    system = "niossl-peer" if name == "niossl-peer" else "asyncnss-peer"
                    sample("bulk", "system", name,
                           lambda: bulk(srv, system, args.bulk_mib << 20, log), round_number)
            if "scale" in args.only:
                systems = list(builds)
                turn = round_number % len(systems)
                for name in systems[turn:] + systems[:turn]:
                    sample("scale", "system", name,
                           lambda: measure.scale(builds[name], "asyncnss-peer", args.idle, args.active,
                                                 args.latency_rounds, log), round_number)
    text = summary(results)
    with open(os.path.join(args.out, "summary.md"), "w") as out:
        out.write(text + "\n")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
