"""The library's heap per idle connection, as RESULTS.md counts it.

heaptrack runs `nss-tls serve`; the NIOSSL peer opens and holds idle TLS 1.3
connections; the server is killed with SIGKILL while they are open, so every
allocation still live counts as leaked. Each leaked byte is charged by the
innermost frame of its stack that names a function (not an address):

- the library, when that frame is AsyncNSS code (or the Swift runtime or
  standard library called from AsyncNSS code, such as task slabs and
  boxes), split into the connection's task and its objects;
- the tool, when it is `nss-tls`'s own code (its page handler);
- NSS, NSPR and libc otherwise.

    python3 -m runner.heap --nss-tls PATH --peers BINDIR [--connections 1000]

Prints a table; with --out DIR, also writes it (summary.txt) and the
numbers (result.json) there. The recording and the stacks stay in a
temporary folder (tens of megabytes).
"""

import argparse
import collections
import json
import os
import signal
import subprocess
import tempfile
import time

from . import pki, servers

# Frames that allocate on behalf of their caller: the allocator, the Swift
# runtime and standard library, thunks.
PASS_THROUGH = ("swift_", "swift::", "_swift", "Swift.", "malloc", "calloc", "realloc", "operator new",
                "__libc", "posix_memalign", "aligned_alloc", "(anonymous namespace)", "Foundation.",
                "FoundationEssentials.", "_Concurrency.", "Synchronization.", "thunk for", "reabstraction thunk",
                "partial apply", "outlined", "merged ", "protocol witness for Swift.", "specialized thunk",
                "static Swift.", "(extension in Swift)", "generic specialization <Swift.", "_start")
# Symbols of the tool's module (nss-tls) after demangling.
TOOL_MARKERS = ("nss_tls.", "nss_tls_main", "NSSTLS.")


def classify(frame):
    """"library", "tool", "pass" (allocates for its caller) or "C"."""
    if frame.startswith("0x") or frame.startswith("<unresolved"):
        return "pass"
    # Demangled Swift names: "specialized AsyncNSS.TLSConnection.init(...)",
    # "closure #1 in AsyncNSS.Acceptor.run()", "AsyncNSS.Handshake.drive(...)".
    name = frame.split(" (")[0]
    if "AsyncNSS." in name or name.startswith("$s8AsyncNSS"):
        return "library"
    if any(marker in name for marker in TOOL_MARKERS):
        return "tool"
    stripped = name
    for prefix in ("specialized ", "generic specialization ", "closure #1 in ", "closure #2 in ", "implicit closure #1 in "):
        if stripped.startswith(prefix):
            stripped = stripped[len(prefix):]
    if stripped.startswith(PASS_THROUGH) or name.startswith(PASS_THROUGH) or name.startswith("$s") or "async_Main" in name:
        return "pass"
    return "C"


def owner(stack):
    """Who a leaked allocation belongs to: the innermost frame that does not
    merely allocate for its caller. A library allocation made through the
    task allocator is the connection's task (slabs, the task object)."""
    frames = [f.strip() for f in stack.split(";") if f.strip()]
    task_machinery = False
    for frame in reversed(frames):
        if "swift_task_create" in frame or "StackAllocator" in frame or "swift_task_alloc" in frame:
            task_machinery = True
        kind = classify(frame)
        if kind == "pass":
            continue
        if kind == "library":
            return "library, task" if task_machinery else "library, objects"
        if kind == "tool":
            return "tool, task" if task_machinery else "tool, objects"
        return "NSS, NSPR, libc"
    return "unattributed"


def measure(nss_tls, peers, connections, workdir, event_loops=None):
    identity = pki.make(os.path.join(workdir, "pki"))
    port = servers.free_port()
    trace = os.path.join(workdir, "ht")
    command = ["heaptrack", "-o", trace, nss_tls, "serve", "--cert", identity["cert"], "--key", identity["key"],
               "--port", str(port), "--log-level", "warning"]
    if event_loops:
        command += ["--event-loops", str(event_loops)]
    log = open(os.path.join(workdir, "serve.log"), "w")
    wrapper = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        servers.wait_for_port(port, wrapper)
        served = server_pid(nss_tls, port)
        hold = subprocess.Popen([os.path.join(peers, "niossl-peer"), "hold", "--port", str(port), "--ca", identity["cert"],
                                 "--connections", str(connections), "--seconds", "4", "--server-pid", str(served)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The peer opens every connection, then measures for 4 s: kill the
        # server in the middle of that.
        held = wait_established(port, connections, timeout=120)
        time.sleep(1)
        os.kill(served, signal.SIGKILL)
        hold.communicate(timeout=60)
        wrapper.wait(timeout=120)
    finally:
        if wrapper.poll() is None:
            os.killpg(wrapper.pid, signal.SIGKILL)
    recorded = [f for f in os.listdir(workdir) if f.startswith("ht")]
    if not recorded:
        raise RuntimeError("heaptrack wrote nothing")
    return charge(os.path.join(workdir, recorded[0]), workdir, held)


def charge(recording, workdir, held):
    """Charges every leaked byte of `recording` to its owner."""
    stacks = os.path.join(workdir, "leaked.stacks")
    subprocess.run(["heaptrack_print", "-f", recording, "--flamegraph-cost-type", "leaked",
                    "-F", stacks], check=True, stdout=subprocess.DEVNULL, timeout=600)
    totals = collections.Counter()
    biggest = collections.Counter()
    with open(stacks) as lines:
        for line in lines:
            stack, _, cost = line.rstrip("\n").rpartition(" ")
            if not cost.isdigit():
                continue
            kind = owner(demangle_line(stack))
            totals[kind] += int(cost)
            if kind.startswith(("library", "tool")):
                biggest[(kind, innermost_named(demangle_line(stack)))] += int(cost)
    return {"connections": held, "bytes": dict(totals),
            "top": [(k[0], k[1], v) for k, v in biggest.most_common(25)]}


_demangled = {}


def demangle_line(stack):
    if stack not in _demangled:
        done = subprocess.run(["swift", "demangle"], input=stack, capture_output=True, text=True)
        _demangled[stack] = done.stdout.strip() if done.returncode == 0 else stack
    return _demangled[stack]


def innermost_named(stack):
    frames = [f.strip() for f in stack.split(";") if f.strip()]
    for frame in reversed(frames):
        if classify(frame) != "pass":
            return frame[:200]
    return "?"


def server_pid(binary, port, timeout=10):
    """The served process (heaptrack's child), not heaptrack's wrapper."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", "-x", f"{binary} serve .*--port {port}.*"], capture_output=True, text=True)
        pids = [int(p) for p in found.stdout.split()]
        if pids:
            return pids[0]
        time.sleep(0.1)
    raise RuntimeError("the server's process was not found")


def wait_established(port, wanted, timeout):
    """How many TCP connections to `port` are established, once `wanted` are
    (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        done = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True)
        count = len([l for l in done.stdout.splitlines() if l.strip()])
        if count >= wanted:
            return count
        time.sleep(0.2)
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nss-tls", required=True)
    parser.add_argument("--peers", required=True, help="the folder holding niossl-peer")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--event-loops", type=int)
    parser.add_argument("--out")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="asyncnss-heap-") as workdir:
        result = measure(os.path.abspath(arguments.nss_tls), os.path.abspath(arguments.peers), arguments.connections,
                         workdir, arguments.event_loops)
    n = result["connections"]
    lines = [f"{n} idle TLS 1.3 connections held; leaked (live) bytes per connection:"]
    for kind, total in sorted(result["bytes"].items(), key=lambda item: -item[1]):
        lines.append(f"  {kind:20} {total / n / 1024:8.2f} KiB")
    lines.append("largest library and tool allocation sites, bytes per connection:")
    for kind, frame, total in result["top"]:
        lines.append(f"  {total / n:8.0f}  {kind:17} {frame}")
    print("\n".join(lines))
    if arguments.out:
        os.makedirs(arguments.out, exist_ok=True)
        with open(os.path.join(arguments.out, "summary.txt"), "w") as out:
            out.write("\n".join(lines) + "\n")
        with open(os.path.join(arguments.out, "result.json"), "w") as out:
            json.dump(result, out, indent=1)


if __name__ == "__main__":
    main()
