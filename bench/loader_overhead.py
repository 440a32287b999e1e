"""What the loader's gRPC hop costs: once echo calls through ``asectl loader run`` against the same
wrapper function called in-process, in one run, and how a CPU-bound wrapper scales with --workers.

    python bench/loader_overhead.py            # 8 s per point (about 2 minutes in all)
    python bench/loader_overhead.py --quick    # 2 s per point, for a smoke run

Part 1 (overhead): the echo wrapper (bench/wrappers/echo) answers a ~1 KiB text item with itself.
Baselines: the bare ``wrapperOnceExec`` call, and ``EngineHost.once`` (the same path a loader worker
runs, minus the process hop and gRPC), both in this process on CPU 0. Candidate: the loader with
one worker pinned to CPU 0, clients pinned to CPU 1, at concurrency 1, 16 and 64.

Part 2 (scaling): the busy wrapper (bench/wrappers/busy) spins ~5 ms of pure Python per call; the
loader with --workers 1 and then --workers 2, both unpinned (the server may use both cores; the
client uses a few percent of one), at concurrency 8.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import loadgen
from loadgen import Point

from ase_serving.loader.host import EngineHost
from ase_serving.wrapper import load_plugin
from ase_serving.wrapper.items import to_wrapper

ECHO = loadgen.ROOT / "bench" / "wrappers" / "echo"
BUSY = loadgen.ROOT / "bench" / "wrappers" / "busy"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="2 s per point and 0.5 s warm-up")
    ap.add_argument("--seconds", type=float, help="measured seconds per point (default 8, quick 2)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per point (default 2, quick 0.5)")
    ap.add_argument("--concurrency", default="1,16,64", help="part 1 concurrency levels (default 1,16,64)")
    ap.add_argument("--client-procs", type=int, default=4, help="client processes at most (default 4)")
    ap.add_argument("--payload", type=int, default=1024, help="payload bytes per request (default 1024)")
    ap.add_argument("--busy-ms", type=float, default=5.0, help="CPU per call of the busy wrapper (ms)")
    ap.add_argument("--busy-concurrency", type=int, default=8, help="part 2 concurrency (default 8)")
    ap.add_argument("--part", choices=("all", "overhead", "scaling"), default="all")
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="wait up to this many seconds for other programs to go quiet before starting (default 60)",
    )
    args = ap.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    return args


def us(v: float) -> str:
    """Microseconds: one decimal below 10 µs (the in-process rows), whole numbers above."""
    return f"{v:.1f}" if abs(v) < 10 else f"{v:,.0f}"


def row(p: Point, base_p50: float | None = None, base_rate: float | None = None) -> str:
    s = p.summary()
    over = us(s["p50_us"] - base_p50) if base_p50 is not None else "-"
    ratio = f"{base_rate / s['calls_per_s']:,.0f}x" if base_rate and s["calls_per_s"] else "-"
    cpu = us(s["server_cpu_us_per_call"])
    if s["worker_cpu_us_per_call"]:
        front = s["server_cpu_us_per_call"] - s["worker_cpu_us_per_call"]
        cpu += f" ({us(front)} + {us(s['worker_cpu_us_per_call'])})"
    err = f"{s['errors']}" + (f" ({s['first_error'][:60]})" if s["errors"] else "")
    return (
        f"| {s['name']} | {s['concurrency']} | {s['calls_per_s']:,.0f} | {us(s['p50_us'])} | "
        f"{us(s['p99_us'])} | {over} | {ratio} | {cpu} | "
        f"{s['server_cpu_pct']:.0f}% | {s['client_cpu_pct']:.0f}% | {s['other_cpu_pct']:.0f}% | {err} |"
    )


HEADER = (
    "| path | conc. | calls/s | p50 µs | p99 µs | p50 overhead µs | in-process calls/s ÷ this | "
    "server CPU µs/call (front + workers) | server CPU | client CPU | other CPU | errors |\n"
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--|"
)


def part_overhead(args: argparse.Namespace, out: dict[str, Any]) -> None:
    pinned = loadgen.can_pin(2)
    server_cpus, client_cpus = ({0}, {1}) if pinned else (None, None)
    req = loadgen.make_request(args.payload)
    out["request_bytes"] = loadgen.wire_size(req)
    size = out["request_bytes"]
    print(f"\n## Part 1: once echo, {size} B request, {args.seconds:g} s per point", flush=True)
    if not pinned:
        print("(fewer than 2 CPUs usable: nothing pinned)")

    # Baselines in this process, on the server's CPU.
    before = os.sched_getaffinity(0) if pinned else None
    loadgen.pin(server_cpus)
    plugin = load_plugin(ECHO)
    host = EngineHost(plugin)
    host.init({})
    func = plugin.funcs["wrapperOnceExec"]
    items = [to_wrapper(i) for i in req.items]
    params = dict(req.params)

    def bare() -> None:
        func(req.sid, params, items, [], [], 0)

    points = [
        loadgen.time_inprocess("in-process wrapperOnceExec", bare, args.warmup, args.seconds),
        loadgen.time_inprocess(
            "in-process EngineHost.once", lambda: host.once(req), args.warmup, args.seconds
        ),
    ]
    host.fini()
    if before is not None:
        os.sched_setaffinity(0, before)
    base = points[1]
    print(HEADER)
    for p in points:
        print(row(p), flush=True)

    def load(server: loadgen.LoaderServer, name: str, c: int, raw: bool = False) -> None:
        assert server.proc is not None
        p = loadgen.run_load(
            name,
            server.target,
            req,
            c,
            args.client_procs,
            client_cpus,
            server.proc.pid,
            args.warmup,
            args.seconds,
            raw=raw,
        )
        points.append(p)
        print(row(p, base.pct_us(50), base.rate), flush=True)

    # The floor: the same gRPC method answered in one process, no worker hop.
    floor_cmd = [sys.executable, str(loadgen.ROOT / "bench" / "grpc_floor.py")]
    with loadgen.serving(floor_cmd, server_cpus) as server:
        loadgen.wait_ready(server.target, req)
        load(server, "floor: bare grpc.aio echo, no worker", 1)

    lic = max(args.levels)
    with loadgen.serving(
        loadgen.loader_cmd(ECHO, ["--workers", "1", "--lic", str(lic)]), server_cpus
    ) as server:
        loadgen.wait_ready(server.target, req)
        load(server, "loader, client once_raw (no conversion)", 1, raw=True)
        for c in args.levels:
            load(server, "loader gRPC (1 worker)", c)
    out["overhead"] = {"server_cpus": sorted(server_cpus or []), "client_cpus": sorted(client_cpus or [])}
    out["overhead"]["points"] = [p.summary() for p in points]


def calibrate(ms: float) -> int:
    """Loop steps of the busy wrapper that take ``ms`` of CPU here."""
    plugin = load_plugin(BUSY)
    spin = plugin.module.spin
    n = 20_000
    while True:
        t = time.process_time()
        spin(n)
        took = time.process_time() - t
        if took > 0.05:
            return max(1, int(n * ms / 1000 / took))
        n *= 2


def part_scaling(args: argparse.Namespace, out: dict[str, Any]) -> None:
    iters = calibrate(args.busy_ms)
    req = loadgen.make_request(args.payload, {"iters": str(iters)})
    plugin = load_plugin(BUSY)
    host = EngineHost(plugin)
    host.init({})
    base = loadgen.time_inprocess("in-process EngineHost.once", lambda: host.once(req), 0.2, args.seconds / 2)
    c = args.busy_concurrency
    print(
        f"\n## Part 2: CPU-bound wrapper ({base.pct_us(50) / 1000:.1f} ms per call in-process), "
        f"concurrency {c}, server unpinned",
        flush=True,
    )
    print(HEADER)
    print(row(base), flush=True)
    points = [base]
    # No overhead/ratio columns here: at concurrency 8 the latency is mostly queueing, by design.
    for workers in (1, 2):
        cmd = loadgen.loader_cmd(BUSY, ["--workers", str(workers), "--lic", str(c)])
        with loadgen.serving(cmd, None) as server:
            loadgen.wait_ready(server.target, req)
            assert server.proc is not None
            p = loadgen.run_load(
                f"loader gRPC ({workers} worker{'s' if workers > 1 else ''})",
                server.target,
                req,
                c,
                min(args.client_procs, 2),
                None,
                server.proc.pid,
                args.warmup,
                args.seconds,
            )
        points.append(p)
        print(row(p), flush=True)
    speedup = points[2].rate / points[1].rate if points[1].rate else float("nan")
    print(f"\n--workers 2 / --workers 1 throughput: {speedup:.2f}x", flush=True)
    out["scaling"] = {"iters": iters, "points": [p.summary() for p in points], "speedup": round(speedup, 3)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python " + shlex.join(["bench/loader_overhead.py", *(argv or sys.argv[1:])]),
        "commit": loadgen.commit(),
        "machine": loadgen.machine(),
        "seconds_per_point": args.seconds,
    }
    m = out["machine"]
    print(f"# loader overhead, {out['date']}, commit {out['commit']}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['os']}, Python {m['python']}, grpcio {m['grpcio']}")
    if args.quiet_wait > 0:
        busy = loadgen.wait_quiet(10.0, args.quiet_wait)
        print(f"other programs used {busy:.0f}% of one CPU in the second before the start")
    if args.part in ("all", "overhead"):
        part_overhead(args, out)
    if args.part in ("all", "scaling"):
        part_scaling(args, out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
