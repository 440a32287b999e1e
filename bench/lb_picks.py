"""Picks per second from the LB: in-process (the gateway's default) against the LB service, over
gRPC and over the lean wire.

    python bench/lb_picks.py            # 3 s per point (about 2.5 minutes in all)
    python bench/lb_picks.py --quick    # 1 s per point, for a smoke run

In-process: ``Balancer.pick`` called back to back in this process (pinned to CPU 0), for each
strategy with 1, 10 and 100 loader instances of one (service, version). Every instance reports
a licence count large enough that no pick is refused, so the rows measure choosing, not refusing.

As a service: ``python -m ase_serving.lb --port 0 --strategy S`` pinned to CPU 0, the client on
one uvloop loop (the gateway's) pinned to CPU 1, ``--concurrency`` tasks calling in a loop: first
``LbClient.pick`` (its gRPC port, one channel), then ``LbWireClient.pick`` (its lean-wire port,
one connection: what a gateway started with ``--lb`` uses), against the same LB process;
instances reported through ``LbClient.report`` first. ``load`` with 1, 10 and 100 instances,
``poll`` and ``loadMini`` with 10; ``loadMini`` also with a release after every pick (what a
gateway does per request; a point counts the picks).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import loadgen
import uvloop
from loadgen import Point

from ase_serving.lb import Balancer
from ase_serving.lb.client import LbClient
from ase_serving.lb.wire_client import LbWireClient

SERVICE, VERSION = "bench", "1.0"
#: Licences per instance: enough that no pick in a point is refused (int32 on the wire).
PLENTY = 1_000_000_000
LB_CMD = [sys.executable, "-m", "ase_serving.lb", "--port", "0", "--ttl", "3600"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="1 s per point and 0.3 s warm-up")
    ap.add_argument("--seconds", type=float, help="measured seconds per point (default 3, quick 1)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per point (default 1, quick 0.3)")
    ap.add_argument("--nodes", default="1,10,100", help="instance counts (default 1,10,100)")
    ap.add_argument("--concurrency", default="1,16", help="service client concurrency (default 1,16)")
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="wait up to this many seconds for other programs to go quiet before starting (default 60)",
    )
    args = ap.parse_args(argv)
    args.seconds = args.seconds or (1.0 if args.quick else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    args.node_counts = [int(c) for c in args.nodes.split(",") if c.strip()]
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    return args


def addresses(count: int) -> list[str]:
    return [f"10.0.{i // 250}.{i % 250 + 1}:9000" for i in range(count)]


def inprocess(strategy: str, count: int, args: argparse.Namespace) -> Point:
    lb = Balancer(strategy, ttl=3600.0)
    for addr in addresses(count):
        lb.report(SERVICE, VERSION, addr, total=PLENTY, idle=PLENTY)
    pick = lb.pick
    name = f"in-process `{strategy}`, {count} instance(s)"
    # time_inprocess times each call: that adds ~0.1 µs per pick, the same in every row.
    point = loadgen.time_inprocess(name, lambda: pick(SERVICE, VERSION), args.warmup, args.seconds)
    point.concurrency = 1
    return point


#: A path to the LB: its name in the rows, and the client for the LB's ready line.
CLIENTS: list[tuple[str, Callable[[str], LbClient | LbWireClient]]] = [
    ("gRPC", lambda line: LbClient(line.split()[3], timeout=10.0)),
    ("lean wire", lambda line: LbWireClient(_wire(line), timeout=10.0)),
]


def _wire(line: str) -> str:
    found = re.search(r"lean wire on (\S+)", line)
    if found is None:
        raise RuntimeError(f"no lean-wire address on the LB's ready line: {line!r}")
    return found.group(1)


async def _service_point(
    make: Callable[[], LbClient | LbWireClient],
    name: str,
    conc: int,
    args: argparse.Namespace,
    pid: int,
    release: bool,
) -> Point:
    async with make() as client:  # made on this loop: a gRPC channel stays on the loop it was made on
        lat: list[int] = []
        errors = 0
        first_error = ""
        loop = asyncio.get_running_loop()
        clock = time.perf_counter_ns
        warm_end = loop.time() + args.warmup
        end = warm_end + args.seconds
        measuring = [False]

        async def caller() -> None:
            nonlocal errors, first_error
            while True:
                now = loop.time()
                if now >= end:
                    return
                a = clock()
                try:
                    got = await client.pick(SERVICE, VERSION)
                    if release:
                        await client.release(SERVICE, VERSION, got[0])
                except Exception as exc:
                    if measuring[0]:
                        errors += 1
                        first_error = first_error or f"{type(exc).__name__}: {exc}"
                    continue
                if measuring[0]:
                    lat.append(clock() - a)

        async def window() -> tuple[float, float, float, float]:
            await asyncio.sleep(max(0.0, warm_end - loop.time()))
            measuring[0] = True
            s0, c0, b0 = sum(loadgen.tree_cpu_s(pid)), time.process_time(), loadgen.machine_busy_s()
            t0 = time.monotonic()
            await asyncio.sleep(max(0.0, end - loop.time()))
            measuring[0] = False
            return (
                time.monotonic() - t0,
                sum(loadgen.tree_cpu_s(pid)) - s0,
                time.process_time() - c0,
                loadgen.machine_busy_s() - b0,
            )

        win = asyncio.create_task(window())
        await asyncio.gather(*(caller() for _ in range(conc)))
        seconds, server_cpu, client_cpu, busy = await win
    point = Point(name, conc, seconds, lat, errors, first_error)
    point.server_cpu_s, point.client_cpu_s, point.machine_busy_s = server_cpu, client_cpu, busy
    return point


async def _report(target: str, count: int) -> None:
    async with LbClient(target, timeout=10.0) as client:
        for addr in addresses(count):
            await client.report(SERVICE, VERSION, addr, total=PLENTY, idle=PLENTY)


def service(
    strategy: str, counts: list[int], args: argparse.Namespace, cpus: tuple[Any, Any], release: bool = False
) -> list[Point]:
    server_cpus, client_cpus = cpus
    points = []
    for count in counts:
        # A fresh LB per instance count: each row starts from the same state.
        with loadgen.serving([*LB_CMD, "--strategy", strategy], server_cpus) as server:
            assert server.proc is not None
            uvloop.run(_report(server.target, count))
            before = os.sched_getaffinity(0) if client_cpus else None
            loadgen.pin(client_cpus)
            try:
                for path, make in CLIENTS:
                    name = f"`{strategy}`, {count} instance(s), {path}" + (" + release" if release else "")
                    made = functools.partial(make, server.line)
                    for conc in args.levels:
                        point = uvloop.run(_service_point(made, name, conc, args, server.proc.pid, release))
                        points.append(point)
                        print(row(point), flush=True)
            finally:
                if before is not None:
                    os.sched_setaffinity(0, before)
    return points


def fmt(v: float) -> str:
    return f"{v:.1f}" if abs(v) < 10 else f"{v:,.0f}"


def row(p: Point) -> str:
    s = p.summary()
    err = f"{s['errors']}" + (f" ({s['first_error'][:60]})" if s["errors"] else "")
    return (
        f"| {s['name']} | {s['concurrency']} | {s['calls_per_s']:,.0f} | {fmt(s['p50_us'])} | "
        f"{fmt(s['p99_us'])} | {fmt(s['server_cpu_us_per_call'])} | {s['server_cpu_pct']:.0f}% | "
        f"{s['client_cpu_pct']:.0f}% | {s['other_cpu_pct']:.0f}% | {err} |"
    )


HEADER = (
    "| path | conc. | picks/s | p50 µs | p99 µs | LB CPU µs/pick | LB CPU | client CPU | other CPU "
    "| errors |\n"
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--|"
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = loadgen.banner(args.quiet_wait)
    # The LB service must not follow a cluster set up on this machine: Report calls only.
    os.environ["ASE_HOME"] = tempfile.mkdtemp(prefix="ase-bench-home-")
    for var in ("ASE_CONFIG_ADDRESS", "ASE_CONFIG_ACCOUNT", "ASE_CONFIG_PASSWORD"):
        os.environ.pop(var, None)
    pinned = loadgen.can_pin(2)
    cpus = ({0}, {1}) if pinned else (None, None)
    if not pinned:
        print("(fewer than 2 CPUs usable: nothing pinned)")
    points: list[Point] = []

    print(f"\n## In-process Balancer.pick, {args.seconds:g} s per point (CPU 0)\n\n{HEADER}", flush=True)
    before = os.sched_getaffinity(0) if pinned else None
    loadgen.pin(cpus[0])
    try:
        for strategy in ("load", "poll", "loadMini"):
            for count in args.node_counts:
                point = inprocess(strategy, count, args)
                points.append(point)
                print(row(point), flush=True)
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)

    title = "LB service over gRPC and over the lean wire (LB on CPU 0, client on CPU 1)"
    print(f"\n## {title}\n\n{HEADER}", flush=True)
    points += service("load", args.node_counts, args, cpus)
    mid = [c for c in args.node_counts if c == 10] or args.node_counts[:1]
    points += service("poll", mid, args, cpus)
    points += service("loadMini", mid, args, cpus)
    points += service("loadMini", mid, args, cpus, release=True)

    if args.json:
        doc = {"machine": info, "commit": loadgen.commit(), "points": [p.summary() for p in points]}
        args.json.write_text(json.dumps(doc, indent=2))
    return 0 if all(p.errors == 0 for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
