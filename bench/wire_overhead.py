"""What a loader costs per once call on the lean wire, over calling the wrapper in-process.

    python bench/wire_overhead.py                  # 8 s per point; about 1 minute
    python bench/wire_overhead.py --seconds 2      # a smoke run

Baseline: ``EngineHost.once(Request)`` on ``bench/wrappers/echo`` in this process (pinned to
CPU 0): the code a worker runs for a call, without the hop. Candidate: ``asectl loader run
bench/wrappers/echo --workers 1 --lic 64 --standalone`` with every process pinned to CPU 0, called
through its data port by :class:`~ase_serving.loader.wire_client.WireLoaderClient` (one asyncio
loop, ``c`` tasks calling back to back) pinned to CPU 1. "Loader CPU per call" is the user +
system CPU of the loader's front and worker in the window divided by the calls; "over
in-process" subtracts the baseline's CPU per call: the issue's "per-call cost over an in-process
EngineHost.once", whose aim is at most 40 µs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import loadgen

ECHO = loadgen.ROOT / "bench" / "wrappers" / "echo"


def _inprocess(req: Any, seconds: float) -> float:
    from ase_serving.loader.host import EngineHost
    from ase_serving.wrapper.plugin import load_plugin

    host = EngineHost(load_plugin(ECHO))
    host.init({})
    point = loadgen.time_inprocess("EngineHost.once", lambda: host.once(req), 1.0, seconds)
    host.fini()
    return point.server_cpu_s / len(point.lat_ns) * 1e6


async def _load(address: str, req: Any, conc: int, seconds: float, pid: int) -> dict[str, float]:
    from ase_serving.loader.wire_client import WireLoaderClient

    client = WireLoaderClient(address)
    try:
        for _ in range(200):
            res = await client.once(req, 10)
            if res.code != 0:
                raise RuntimeError(f"the loader answered {res.code}: {res.message}")
        calls = 0
        stop = time.monotonic() + seconds

        async def caller() -> None:
            nonlocal calls
            while time.monotonic() < stop:
                await client.once(req, 10)
                calls += 1

        own0, kids0 = loadgen.tree_cpu_s(pid)
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(caller() for _ in range(conc)))
        wall = time.monotonic() - t0
        own1, kids1 = loadgen.tree_cpu_s(pid)
        return {
            "calls_per_s": calls / wall,
            "front_us": (own1 - own0) / calls * 1e6,
            "worker_us": (kids1 - kids0) / calls * 1e6,
            "client_us": (time.process_time() - cpu0) / calls * 1e6,
        }
    finally:
        await client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--payload", type=int, default=1024)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    req = loadgen.make_request(args.payload)
    pin = loadgen.can_pin(2)
    before = os.sched_getaffinity(0) if pin else None
    if pin:
        loadgen.pin({0})
    base_us = _inprocess(req, args.seconds)
    if pin:
        loadgen.pin({1})
    print(f"machine: {loadgen.machine()}; commit {loadgen.commit()}")
    print(f"in-process EngineHost.once: {base_us:.1f} µs of CPU per call")
    print(
        "\n| conc. | called at | calls/s | loader CPU µs/call (front + worker) | over in-process "
        "| client CPU µs/call |"
    )
    print("|--:|---|--:|--:|--:|--:|")
    rows = []
    cmd = loadgen.loader_cmd(ECHO, ["--workers", "1", "--lic", "64", "--standalone", "--metrics-port", "-1"])
    with loadgen.serving(cmd, {0} if pin else None) as server:
        assert server.proc is not None
        # The worker's own socket, as a gateway on this host calls it (the front not on the way).
        folder = Path(tempfile.gettempdir()) / f"ase-{os.getuid()}"
        direct = sorted(folder.glob(f"*-{server.proc.pid}-w1.sock"))
        paths = [("data port", server.data_target)] + [("worker socket", f"unix:{p}") for p in direct]
        for c in [int(x) for x in args.concurrency.split(",")]:
            for path, address in paths:
                r = asyncio.run(_load(address, req, c, args.seconds, server.proc.pid))
                total = r["front_us"] + r["worker_us"]
                r.update(concurrency=c, path=path, loader_us=total, over_us=total - base_us)
                rows.append(r)
                print(
                    f"| {c} | {path} | {r['calls_per_s']:,.0f} | {total:.1f} ({r['front_us']:.1f} + "
                    f"{r['worker_us']:.1f}) | {total - base_us:.1f} | {r['client_us']:.1f} |",
                    flush=True,
                )
    if before is not None:
        os.sched_setaffinity(0, before)
    if args.json:
        args.json.write_text(
            json.dumps({"inprocess_us": base_us, "rows": rows, "commit": loadgen.commit()}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
