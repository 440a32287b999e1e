"""A soak: mixed once requests and sessions against a local cluster for N minutes, then the checks
of what must hold after any amount of traffic (issue 16, docs/reliability.md).

    python bench/soak.py                       # 10 minutes, 32 clients
    python bench/soak.py --minutes 1 --clients 16 --json out.json

The cluster: the embedded config centre, `examples/echo` (once, 4 licences) and
`examples/stream_echo` (sessions, 8 licences) loaders, one gateway (auth off). Each client loops:
a once request (70 %), a session of 2-20 frames (20 %), or a session dropped right after its first
frame without a close (10 %); every request has a 30 s deadline, after which it counts as hung.

Reported: requests and frames per second, errors by kind and code, hangs, the RSS of every
server process at the start (after warm-up) and the end, and after the load has stopped: licences
still taken (the gateway's view of every loader: free == total), sessions still open (the
gateway's and the loaders' gauges), each waited for up to 30 s. Exit 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import gateway_servers as servers
import httpx
import loadgen
import websockets
from websockets.asyncio.client import connect

DEADLINE_S = 30.0
SETTLE_S = 30.0


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` and its live descendants, MB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        for task in os.listdir(f"/proc/{p}/task"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
    return total / 1024


class Tally:
    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.frames = 0

    def add(self, what: str) -> None:
        self.counts[what] += 1


def once_body(rng: random.Random) -> bytes:
    text = base64.b64encode(rng.randbytes(rng.randint(1, 64)).hex().encode()).decode()
    return json.dumps(
        {"header": {"app_id": "soak"}, "payload": {"text": {"encoding": "utf8", "text": text}}}
    ).encode()


def frame(status: int, rng: random.Random, first: bool = False) -> str:
    text = base64.b64encode(rng.randbytes(rng.randint(1, 32)).hex().encode()).decode()
    doc: dict[str, Any] = {
        "header": {"status": status, **({"app_id": "soak"} if first else {})},
        "payload": {"text": {"encoding": "utf8", "status": status, "text": text}},
    }
    if first:
        doc["parameter"] = {"stream_echo": {}}
    return json.dumps(doc)


async def one_once(http: httpx.AsyncClient, url: str, rng: random.Random, tally: Tally) -> None:
    resp = await http.post(
        url + servers.ONCE_ROUTE, content=once_body(rng), headers={"content-type": "application/json"}
    )
    code = (
        resp.json()["header"]["code"]
        if resp.headers.get("content-type", "").startswith("application/json")
        else -2
    )
    tally.add("once ok" if code == 0 else f"once code {code} (HTTP {resp.status_code})")


async def one_session(ws_url: str, rng: random.Random, tally: Tally, drop: bool) -> None:
    n = rng.randint(2, 20)
    ws = await connect(ws_url + servers.SESSION_ROUTE, compression=None)
    try:
        await ws.send(frame(0, rng, first=True))
        if drop:
            ws.transport.abort()  # gone at once: no close handshake
            tally.add("session dropped")
            return
        results = 0
        for i in range(1, n):
            await ws.send(frame(2 if i == n - 1 else 1, rng))
        async for msg in ws:
            header = json.loads(msg)["header"]
            if header["code"] != 0:
                tally.add(f"session code {header['code']}")
                return
            results += 1
            tally.frames += 1
        tally.add("session ok" if ws.close_code == 1000 else f"session closed {ws.close_code}")
    except websockets.ConnectionClosed as exc:
        tally.add(f"session lost ({exc.rcvd.code if exc.rcvd else 'no close frame'})")
    finally:
        if not drop:
            await ws.close()


async def client(url: str, stop_at: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    ws_url = "ws" + url[len("http") :]
    async with httpx.AsyncClient(timeout=DEADLINE_S, trust_env=False) as http:
        while time.monotonic() < stop_at:
            pick = rng.random()
            try:
                if pick < 0.7:
                    job = one_once(http, url, rng, tally)
                else:
                    job = one_session(ws_url, rng, tally, drop=pick >= 0.9)
                await asyncio.wait_for(job, DEADLINE_S)
            except (asyncio.TimeoutError, httpx.TimeoutException):
                tally.add("hung (no answer within 30 s)")
            except (httpx.HTTPError, OSError, websockets.WebSocketException) as exc:
                tally.add(f"transport error {type(exc).__name__}")


def metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def settled(cluster: servers.Cluster) -> dict[str, Any]:
    """What is still taken after the load: licences not free (the gateway's view of every
    loader), sessions open in the gateway and in the loaders (their own gauges)."""
    with httpx.Client(timeout=10, trust_env=False) as http:
        health = http.get(cluster.url + "/health").json()
        gateway_open = metric(http.get(cluster.url + "/metrics").text, "ase_gateway_sessions_open")
        loaders_open, read = 0.0, 0
        for server in cluster.servers:
            if "; metrics " in server.line:
                url = server.line.split("; metrics ", 1)[1].strip()
                loaders_open += metric(http.get(url).text, "ase_loader_sessions")
                read += 1
    taken = {
        n["address"]: n["lic_total"] - n["lic_free"]
        for n in health["loaders"]
        if n["lic_free"] != n["lic_total"]
    }
    return {
        "licences_taken": taken,
        "gateway_sessions_open": gateway_open,
        "loader_sessions_open": loaders_open,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the first RSS sample")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    servers.install_signal_handlers()
    _loop_name, gw_args = servers.gateway_loop(None)
    loaders = [(servers.ECHO, ["--lic", "4"]), (servers.STREAM_ECHO, ["--lic", "8"])]
    out: dict[str, Any] = {"command": " ".join([sys.executable, *sys.argv]), "machine": loadgen.machine()}
    with servers.Cluster(loaders, False, [*gw_args, "--auth", "off"]) as cluster:
        text = servers.text_bytes(32)
        servers.until(
            "the echo route", lambda: servers.post_echo(cluster.url, servers.once_body(text), text), 60
        )
        tally = Tally()

        async def run() -> dict[str, float]:
            start = time.monotonic()
            stop_at = start + args.warmup + args.minutes * 60
            tasks = [
                asyncio.create_task(client(cluster.url, stop_at, seed, tally)) for seed in range(args.clients)
            ]
            await asyncio.sleep(args.warmup)
            before = {name: rss_mb(pid) for name, pid in cluster.pids.items()}
            await asyncio.gather(*tasks)
            out["seconds"] = time.monotonic() - start
            return before

        before = asyncio.run(run())
        after = {name: rss_mb(pid) for name, pid in cluster.pids.items()}
        deadline = time.monotonic() + SETTLE_S
        while True:
            left = settled(cluster)
            clean = (
                not left["licences_taken"]
                and not left["gateway_sessions_open"]
                and not left["loader_sessions_open"]
            )
            if clean or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    total = sum(tally.counts.values())
    bad = {k: v for k, v in tally.counts.items() if not (k.endswith(" ok") or k == "session dropped")}
    out.update(
        {
            "clients": args.clients,
            "requests": total,
            "per_second": total / out["seconds"],
            "session_frames": tally.frames,
            "outcomes": dict(tally.counts.most_common()),
            "rss_mb_start": before,
            "rss_mb_end": after,
            "after_the_load": left,
            "passed": not bad and clean,
        }
    )
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    servers.run_main(main)
