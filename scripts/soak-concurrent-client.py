#!/usr/bin/env python3
"""The client half of scripts/soak-concurrent.sh (not run by CI: too slow).

Opens COUNT TLS connections to one `nss-tls serve` and keeps every one of them
open until all have been opened and checked:

1. open: TCP connect, TLS handshake (the server's certificate is verified
   against --ca for the name "localhost"), then one HTTP/1.1 keep-alive
   request whose 200 answer proves the connection works. At most --parallel
   connections are being opened at any moment.
2. alive: once all COUNT are open, a second request on every connection
   (at most --parallel at a time), while all of them stay open; the server's
   RSS and descriptors are sampled at that point.
3. close: every connection is closed (close_notify), then the server's
   descriptors are watched until they are back at --baseline-fds or
   --settle-timeout passes.

Only the standard library is used. Prints a human summary and writes the
numbers as JSON to --json. Exits 0 only if every connection opened, answered
both requests, and the server's descriptors came back to the baseline.
"""
import argparse
import asyncio
import json
import os
import ssl
import sys
import time


def server_sample(pid):
    """(RSS in KiB, open descriptors) of the server process."""
    rss = None
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: soak-concurrent\r\n\r\n"


async def exchange(reader, writer, timeout):
    """One keep-alive request; returns once the whole 200 answer is read."""
    writer.write(REQUEST)
    await asyncio.wait_for(writer.drain(), timeout)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200"):
        raise RuntimeError(f"unexpected status line {lines[0]!r}")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise RuntimeError("no Content-Length in the answer")
    body = await asyncio.wait_for(reader.readexactly(length), timeout)
    if b"TLS" not in body:
        raise RuntimeError(f"unexpected body {body[:80]!r}")


def reason(error):
    text = f"{type(error).__name__}: {error}"
    return text[:160]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ca", required=True, help="PEM certificate of the server (self-signed)")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--baseline-fds", type=int, required=True)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--parallel", type=int, default=100, help="connections being opened at once")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for one connect, handshake or request")
    parser.add_argument("--open-timeout", type=float, default=1800.0, help="seconds for opening all connections")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold all connections open after the check")
    parser.add_argument("--settle-timeout", type=float, default=300.0, help="seconds for the server's descriptors to come back")
    parser.add_argument("--rounds", type=int, default=1, help="open, check and close all COUNT this many times")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=args.ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    result = {"count": args.count, "parallel": args.parallel}
    failures = {}

    def fail(stage, error):
        key = f"{stage}: {reason(error)}"
        failures[key] = failures.get(key, 0) + 1

    rss0, fds0 = server_sample(args.server_pid)
    result["baseline"] = {"rss_kib": rss0, "fds": fds0}
    print(f"baseline: server RSS {rss0} KiB, {fds0} descriptors", flush=True)

    async def round_trip(number, result):
        connections = []
        versions = {}
        semaphore = asyncio.Semaphore(args.parallel)
        opened = 0
        start = time.monotonic()

        async def open_one(index):
            nonlocal opened
            async with semaphore:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(args.host, args.port, ssl=context, server_hostname="localhost",
                                                ssl_handshake_timeout=args.timeout),
                        args.timeout)
                except Exception as error:  # noqa: BLE001 - every failure is counted
                    fail("open", error)
                    return
                try:
                    await exchange(reader, writer, args.timeout)
                except Exception as error:  # noqa: BLE001
                    fail("first request", error)
                    writer.transport.abort()
                    return
                version = writer.get_extra_info("ssl_object").version()
                versions[version] = versions.get(version, 0) + 1
                connections.append((reader, writer))
                opened += 1
                if opened % 1000 == 0:
                    rss, fds = server_sample(args.server_pid)
                    print(f"  {opened:6d} open after {time.monotonic() - start:7.1f} s; server RSS {rss} KiB, {fds} descriptors", flush=True)

        tasks = [asyncio.ensure_future(open_one(i)) for i in range(args.count)]
        done, pending = await asyncio.wait(tasks, timeout=args.open_timeout)
        for task in pending:
            task.cancel()
            fail("open", TimeoutError(f"not opened within --open-timeout {args.open_timeout} s"))
        if pending:
            await asyncio.wait(pending, timeout=30)
        open_seconds = time.monotonic() - start
        result["open_seconds"] = round(open_seconds, 1)
        result["opened"] = len(connections)
        result["versions"] = versions
        print(f"opened {len(connections)} of {args.count} in {open_seconds:.1f} s ({versions})", flush=True)

        # All open at once: a second request on each proves every one is alive.
        alive = 0
        check_start = time.monotonic()

        async def check(reader, writer):
            nonlocal alive
            async with semaphore:
                try:
                    await exchange(reader, writer, args.timeout)
                    alive += 1
                except Exception as error:  # noqa: BLE001
                    fail("second request (all open)", error)

        await asyncio.gather(*(check(r, w) for r, w in connections))
        result["alive"] = alive
        result["alive_check_seconds"] = round(time.monotonic() - check_start, 1)
        await asyncio.sleep(args.hold)
        rss1, fds1 = server_sample(args.server_pid)
        result["open"] = {"rss_kib": rss1, "fds": fds1}
        print(f"all open: {alive} of {len(connections)} answered a second request in {result['alive_check_seconds']} s; "
              f"server RSS {rss1} KiB, {fds1} descriptors", flush=True)

        close_start = time.monotonic()

        async def close(writer):
            try:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), args.timeout)
            except Exception as error:  # noqa: BLE001
                fail("close", error)
                writer.transport.abort()

        for i in range(0, len(connections), 500):
            await asyncio.gather(*(close(w) for _, w in connections[i:i + 500]))
        connections.clear()
        result["close_seconds"] = round(time.monotonic() - close_start, 1)

        deadline = time.monotonic() + args.settle_timeout
        while True:
            rss2, fds2 = server_sample(args.server_pid)
            if fds2 <= args.baseline_fds or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(2)
        rss2, fds2 = server_sample(args.server_pid)
        result["closed"] = {"rss_kib": rss2, "fds": fds2}
        result["settle_seconds"] = round(time.monotonic() - close_start, 1)
        print(f"all closed (in {result['close_seconds']} s, descriptors settled after {result['settle_seconds']} s): "
              f"server RSS {rss2} KiB, {fds2} descriptors", flush=True)
        return alive, fds2

    rounds = []
    alive_all = True
    fds_end = fds0
    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"round {number} of {args.rounds}", flush=True)
        entry = {}
        alive, fds_end = await round_trip(number, entry)
        alive_all = alive_all and alive == args.count
        rounds.append(entry)
    result["rounds"] = rounds

    total_failures = sum(failures.values())
    result["failures"] = total_failures
    result["failure_reasons"] = failures
    first = rounds[0]
    if first["opened"]:
        first["rss_per_connection_kib"] = round((first["open"]["rss_kib"] - rss0) / first["opened"], 1)
    for key, value in sorted(failures.items(), key=lambda item: -item[1])[:20]:
        print(f"  failure x{value}: {key}", flush=True)
    with open(args.json, "w") as out:
        json.dump(result, out, indent=2)
    ok = total_failures == 0 and alive_all and fds_end <= args.baseline_fds
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
