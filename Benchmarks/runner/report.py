"""Medians, ratios against the issue's targets, the Markdown table and the chart."""

import json
import os
import statistics
import sys

from . import measure


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(results):
    summary = {"handshakes": {}, "bulk": {}, "scale": {}, "idle": {}, "failures": []}
    for sample in results["handshakes"]:
        if "error" in sample:
            summary["failures"].append(f"round {sample['round'] + 1}, {sample['server']}: {sample['error']}")
            continue
        for scenario, result in sample["results"].items():
            for failure in result.get("failures", []):
                summary["failures"].append(f"round {sample['round'] + 1}, {sample['server']}, {scenario}: {failure}")
    for scenario in measure.HANDSHAKES:
        per_server = {}
        for sample in ok(results["handshakes"]):
            per_server.setdefault(sample["server"], []).append(sample["results"][scenario]["handshakes_per_s"])
        cpu = {}
        for sample in ok(results["handshakes"]):
            cpu.setdefault(sample["server"], []).append(sample["results"][scenario].get("server_cpu_us_per_handshake"))
        summary["handshakes"][scenario] = {server: {"median": median(v), "samples": v, "cpu_us": median(cpu[server])}
                                           for server, v in per_server.items()}
    for section in ("bulk", "scale", "idle"):
        for sample in results[section]:
            if "error" in sample:
                summary["failures"].append(f"round {sample['round'] + 1}, {section}, {sample['system']}: {sample['error']}")
    for sample in ok(results["bulk"]):
        summary["bulk"].setdefault(sample["system"], []).append(sample["result"]["mib_per_s"])
    summary["bulk"] = {s: {"median": median(v), "samples": v} for s, v in summary["bulk"].items()}
    for sample in ok(results["scale"]):
        entry = summary["scale"].setdefault(sample["system"], {k: [] for k in
                                            ("rss_per_idle_kib", "alone_p50", "alone_p99", "among_p50", "among_p99", "open_s")})
        among, alone = sample["result"]["among"], sample["result"]["alone"]
        entry["rss_per_idle_kib"].append(among.get("rss_per_idle_kib"))
        entry["alone_p50"].append(alone["p50_us"])
        entry["alone_p99"].append(alone["p99_us"])
        entry["among_p50"].append(among["p50_us"])
        entry["among_p99"].append(among["p99_us"])
        entry["open_s"].append(among.get("idle_open_seconds"))
    summary["scale"] = {s: {k: median(v) for k, v in e.items()} | {"samples": e} for s, e in summary["scale"].items()}
    for sample in ok(results["idle"]):
        summary["idle"].setdefault(sample["system"], []).append(sample["result"]["server_cpu_percent"])
    summary["idle"] = {s: {"median": median(v), "samples": v} for s, v in summary["idle"].items()}
    return summary


def ok(samples):
    """The samples that did not fail."""
    return [sample for sample in samples if "error" not in sample]


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(value, digits=0):
    return "–" if value is None else f"{value:,.{digits}f}"


def verdict(value, target, higher_is_better=True):
    if value is None:
        return "not measured"
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "missed"


def markdown(results, summary):
    machine = results["machine"]
    settings = results["settings"]
    lines = [
        f"Run {machine['date_utc']} UTC on {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB, Linux {machine['kernel']}; {machine['swift']}; "
        f"NSS {machine['nss']}, NSPR {machine['nspr']}; {machine['openssl']}; commit {machine['git']}.",
        f"{settings['rounds']} rounds, medians; samples in results.json.", "",
    ]
    hs = summary["handshakes"]
    if hs:
        servers = list(next(iter(hs.values())).keys())
        lines += ["### Handshakes per second (strsclnt, ECDSA P-256)", "",
                  "| scenario | " + " | ".join(servers) + " | nss-tls / selfserv | nss-tls / NIOSSL | asyncnss-peer / selfserv |",
                  "|---|" + "---:|" * (len(servers) + 3)]
        for scenario, per_server in hs.items():
            m = {s: per_server[s]["median"] for s in per_server}
            lines.append(f"| {scenario} | " + " | ".join(fmt(m.get(s)) for s in servers) +
                         f" | {fmt(ratio(m.get('nss-tls serve'), m.get('selfserv')), 2)}"
                         f" | {fmt(ratio(m.get('nss-tls serve'), m.get('niossl-peer')), 2)}"
                         f" | {fmt(ratio(m.get('asyncnss-peer'), m.get('selfserv')), 2)} |")
        lines.append("")
        lines += ["### Server CPU per handshake (µs, user + system, from /proc; 10 ms ticks)", "",
                  "| scenario | " + " | ".join(servers) + " | nss-tls − selfserv |",
                  "|---|" + "---:|" * (len(servers) + 1)]
        for scenario, per_server in hs.items():
            c = {s: per_server[s].get("cpu_us") for s in per_server}
            difference = c["nss-tls serve"] - c["selfserv"] if c.get("nss-tls serve") is not None and c.get("selfserv") is not None else None
            lines.append(f"| {scenario} | " + " | ".join(fmt(c.get(s)) for s in servers) + f" | {fmt(difference)} |")
        lines.append("")
    if summary["bulk"]:
        b = {s: v["median"] for s, v in summary["bulk"].items()}
        lines += ["### Bulk echo over one connection (MiB/s each way)", "",
                  "| AsyncNSS pair | NIOSSL pair | AsyncNSS / NIOSSL |", "|---:|---:|---:|",
                  f"| {fmt(b.get('asyncnss-peer'))} | {fmt(b.get('niossl-peer'))} | "
                  f"{fmt(ratio(b.get('asyncnss-peer'), b.get('niossl-peer')), 2)} |", ""]
    if summary["scale"]:
        lines += [f"### {settings['idle']:,} idle connections, {settings['active']} active (echo of 64 bytes, µs)", "",
                  "| system | server RSS per idle connection (KiB) | p50 alone | p99 alone | p50 among idle | p99 among idle | p99 among / alone | seconds to open the idle connections |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for system, s in summary["scale"].items():
            lines.append(f"| {system} | {fmt(s['rss_per_idle_kib'], 1)} | {fmt(s['alone_p50'])} | {fmt(s['alone_p99'])} | "
                         f"{fmt(s['among_p50'])} | {fmt(s['among_p99'])} | {fmt(ratio(s['among_p99'], s['alone_p99']), 2)} | {fmt(s['open_s'], 1)} |")
        lines.append("")
    if summary["idle"]:
        lines += [f"### Server CPU with {settings['cpu_connections']:,} idle connections (% of one core)", "",
                  "| system | CPU |", "|---|---:|"]
        for system, s in summary["idle"].items():
            lines.append(f"| {system} | {fmt(s['median'], 2)} |")
        lines.append("")
    if summary["failures"]:
        lines += ["### Failed samples", ""]
        lines += [f"- {failure}" for failure in summary["failures"]] + [""]
    lines += targets(summary, settings)
    return "\n".join(lines) + "\n"


def targets(summary, settings):
    hs = summary["handshakes"]

    def hs_ratio(scenario, a, b):
        per = hs.get(scenario, {})
        return ratio(per.get(a, {}).get("median"), per.get(b, {}).get("median"))

    bulk = summary["bulk"]
    ours = summary["scale"].get("asyncnss-peer", {})
    rows = [
        ("full TLS 1.3 handshakes, nss-tls / selfserv", hs_ratio("full TLS 1.3", "nss-tls serve", "selfserv"), 1.0, True, 2),
        ("resumed TLS 1.3, nss-tls / selfserv", hs_ratio("resumed TLS 1.3 (tickets)", "nss-tls serve", "selfserv"), 1.0, True, 2),
        ("resumed TLS 1.2, nss-tls / selfserv", hs_ratio("resumed TLS 1.2 (session IDs)", "nss-tls serve", "selfserv"), 0.9, True, 2),
        ("bulk, AsyncNSS / NIOSSL", ratio(bulk.get("asyncnss-peer", {}).get("median"), bulk.get("niossl-peer", {}).get("median")), 1.1, True, 2),
        ("server RSS per idle connection (KiB)", ours.get("rss_per_idle_kib"), 64, False, 1),
        ("p99 among idle / p99 alone", ratio(ours.get("among_p99"), ours.get("alone_p99")), 1.5, False, 2),
        (f"idle CPU with {settings['cpu_connections']:,} connections (%)", summary["idle"].get("asyncnss-peer", {}).get("median"), 1.0, False, 2),
    ]
    lines = ["### Against the targets of issue 5", "", "| target | measured | goal | |", "|---|---:|---:|---|"]
    for name, value, goal, higher, digits in rows:
        lines.append(f"| {name} | {fmt(value, digits)} | {'≥' if higher else '≤'} {goal} | {verdict(value, goal, higher)} |")
    return lines + [""]


def chart(summary, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart")
        return
    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    hs = summary["handshakes"]
    if hs:
        scenarios = list(hs.keys())
        servers = list(next(iter(hs.values())).keys())
        width = 0.8 / len(servers)
        for i, server in enumerate(servers):
            values = [hs[s].get(server, {}).get("median") or 0 for s in scenarios]
            axes[0][0].bar([x + i * width for x in range(len(scenarios))], values, width, label=server)
        axes[0][0].set_xticks([x + width * (len(servers) - 1) / 2 for x in range(len(scenarios))], scenarios, fontsize=8)
        axes[0][0].set_title("Handshakes per second (strsclnt load)")
        axes[0][0].legend(fontsize=8)
    bulk = summary["bulk"]
    if bulk:
        axes[0][1].bar(list(bulk.keys()), [v["median"] for v in bulk.values()], color=["tab:blue", "tab:orange"])
        axes[0][1].set_title("Bulk echo, MiB/s each way")
    scale = summary["scale"]
    if scale:
        systems = list(scale.keys())
        axes[1][0].bar([x - 0.2 for x in range(len(systems))], [scale[s]["alone_p99"] for s in systems], 0.4, label="p99 alone")
        axes[1][0].bar([x + 0.2 for x in range(len(systems))], [scale[s]["among_p99"] for s in systems], 0.4, label="p99 among idle")
        axes[1][0].set_xticks(range(len(systems)), systems)
        axes[1][0].set_title("Echo round trip p99 (µs)")
        axes[1][0].legend(fontsize=8)
        axes[1][1].bar(systems, [scale[s]["rss_per_idle_kib"] or 0 for s in systems], color=["tab:blue", "tab:orange"])
        axes[1][1].axhline(64, color="red", linestyle="--", label="target 64 KiB")
        axes[1][1].set_title("Server RSS per idle connection (KiB)")
        axes[1][1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def write(results, directory):
    """Writes summary.md and chart.png next to results.json; returns the summary text."""
    summary = summarise(results)
    text = markdown(results, summary)
    with open(os.path.join(directory, "summary.md"), "w") as out:
        out.write(text)
    chart(summary, os.path.join(directory, "chart.png"))
    return text


if __name__ == "__main__":
    # python3 -m runner.report DIR: the summary and chart again from DIR/results.json
    # (for example from a run that was stopped part-way).
    directory = sys.argv[1]
    with open(os.path.join(directory, "results.json")) as source:
        print(write(json.load(source), directory))
