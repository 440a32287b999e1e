"""What the gateway costs on sessions: 100 concurrent WebSocket sessions x 50 frames of stream echo
through client -> gateway -> loader (examples/stream_echo), against the bare Starlette + uvicorn app
of ``gateway_once.py`` echoing the same frames in-process, with the same client.

    python bench/gateway_ws.py                  # rounds of 100 x 50 frames for 8 s per server
    python bench/gateway_ws.py --seconds 2 --sessions 20     # a smoke run
    python bench/gateway_ws.py --json out.json --client-procs 2

Each session: connect, send the first frame (header status 0, ``parameter.stream_echo``, 1 KiB of
base64 text), wait for its result, then the next frame (status 1) and so on; the 50th has status 2,
and after its result the server must close with 1000. A frame's round trip is from its send to its
result; the first frame's includes opening the session on a loader. A round is ``--sessions``
sessions started together; rounds run back to back until ``--seconds`` have passed (after one
warm-up round); frames/s = frames answered / the time the rounds took.

Server processes are pinned to CPU 0 (``taskset -c 0``), the client processes (asyncio,
``websockets``; ``--client-procs``, default 1, the sessions split between them) to CPU 1.
WebSocket compression is off on the client (``--deflate`` to offer permessage-deflate).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import gateway_servers as servers
import loadgen

ROUTE = servers.SESSION_ROUTE


# -- the client -----------------------------------------------------------------------------------
def frames_of(text: bytes, n: int) -> list[str]:
    """The ``n`` frames of one session, as JSON text."""
    b64 = base64.b64encode(text).decode()
    first = {
        "header": {"app_id": "bench", "status": 0},
        "parameter": {"stream_echo": {}},
        "payload": {"text": {"encoding": "utf8", "status": 0, "text": b64}},
    }
    out = [json.dumps(first, separators=(",", ":"))]
    for i in range(1, n):
        status = 2 if i == n - 1 else 1
        frame = {
            "header": {"status": status},
            "payload": {"text": {"encoding": "utf8", "status": status, "text": b64}},
        }
        out.append(json.dumps(frame, separators=(",", ":")))
    return out


@dataclass
class Tally:
    """What one client process saw: latencies in ns, counts, the first problem."""

    rtt: array = field(default_factory=lambda: array("q"))  # frames after the first
    first: array = field(default_factory=lambda: array("q"))  # the first frame (opens the session)
    connect: array = field(default_factory=lambda: array("q"))  # the WebSocket handshake
    sessions: int = 0
    failed: int = 0
    why: str = ""
    started: float = 0.0
    ended: float = 0.0
    rounds: int = 0
    cpu_s: float = 0.0

    def fail(self, why: str) -> None:
        self.failed += 1
        self.why = self.why or why


async def one_session(url: str, frames: list[str], b64: str, deflate: bool, tally: Tally | None) -> None:
    import orjson
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    clock = time.perf_counter_ns
    a = clock()
    try:
        async with connect(
            url,
            compression="deflate" if deflate else None,
            max_size=None,
            ping_interval=None,
            open_timeout=30,
            close_timeout=10,
        ) as ws:
            b = clock()
            lat: list[int] = []
            for i, frame in enumerate(frames):
                t0 = clock()
                await ws.send(frame)
                raw = await asyncio.wait_for(ws.recv(), 30)
                lat.append(clock() - t0)
                doc = orjson.loads(raw)
                header = doc.get("header", {})
                if header.get("code") != 0:
                    raise RuntimeError(f"frame {i}: code {header.get('code')}: {header.get('message')}")
                if doc.get("payload", {}).get("echo", {}).get("text") != b64:
                    raise RuntimeError(f"frame {i}: the echo is not the text sent: {str(raw)[:120]}")
            try:
                extra = await asyncio.wait_for(ws.recv(), 10)
                raise RuntimeError(f"a frame after the last result: {str(extra)[:120]}")
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code != 1000:
                    raise RuntimeError(f"closed with {code}, not 1000") from None
    except Exception as exc:
        if tally is not None:
            tally.fail(f"{type(exc).__name__}: {exc}"[:300])
        return
    if tally is not None:
        tally.connect.append(b - a)
        tally.first.append(lat[0])
        tally.rtt.extend(lat[1:])
        tally.sessions += 1


async def rounds(url: str, n: int, frames: list[str], b64: str, deflate: bool, conn: Any) -> Tally:
    await asyncio.gather(*[one_session(url, frames, b64, deflate, None) for _ in range(n)])  # warm-up
    conn.send("ready")
    start_at, seconds = conn.recv()
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    tally = Tally(started=time.monotonic())
    cpu0 = time.process_time()
    while True:
        await asyncio.gather(*[one_session(url, frames, b64, deflate, tally) for _ in range(n)])
        tally.rounds += 1
        if time.monotonic() - tally.started >= seconds:
            break
    tally.ended = time.monotonic()
    tally.cpu_s = time.process_time() - cpu0
    return tally


def _client_main(url: str, n: int, frames: list[str], b64: str, deflate: bool, cpus: Any, conn: Any) -> None:
    loadgen.pin(cpus)
    run: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    tally = run(rounds(url, n, frames, b64, deflate, conn))
    conn.send(vars(tally))  # a dict: the class is __mp_main__'s here, __main__'s in the parent
    conn.close()


# -- one server -----------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    tallies: list[Tally]
    window: servers.Window
    frames_per_session: int

    @property
    def rtt(self) -> list[int]:
        return sorted(v for t in self.tallies for v in (*t.first, *t.rtt))

    def pct_us(self, values: list[int], q: float) -> float:
        return values[min(len(values) - 1, int(q / 100 * len(values)))] / 1000 if values else float("nan")

    @property
    def frames(self) -> int:
        return sum(len(t.first) + len(t.rtt) for t in self.tallies)

    @property
    def seconds(self) -> float:
        return max(t.ended for t in self.tallies) - min(t.started for t in self.tallies)

    def summary(self) -> dict[str, Any]:
        all_rtt = self.rtt
        later = sorted(v for t in self.tallies for v in t.rtt)
        first = sorted(v for t in self.tallies for v in t.first)
        connect = sorted(v for t in self.tallies for v in t.connect)
        n = self.frames
        return {
            "name": self.name,
            "sessions": sum(t.sessions for t in self.tallies),
            "failed_sessions": sum(t.failed for t in self.tallies),
            "first_failure": next((t.why for t in self.tallies if t.why), ""),
            "rounds": [t.rounds for t in self.tallies],
            "frames": n,
            "seconds": round(self.seconds, 3),
            "frames_per_s": round(n / self.seconds, 1) if self.seconds else 0,
            "rtt_p50_us": round(self.pct_us(all_rtt, 50), 1),
            "rtt_p99_us": round(self.pct_us(all_rtt, 99), 1),
            "later_p50_us": round(self.pct_us(later, 50), 1),
            "later_p99_us": round(self.pct_us(later, 99), 1),
            "first_p50_us": round(self.pct_us(first, 50), 1),
            "first_p99_us": round(self.pct_us(first, 99), 1),
            "connect_p50_us": round(self.pct_us(connect, 50), 1),
            "connect_p99_us": round(self.pct_us(connect, 99), 1),
            "client_cpu_pct": round(100 * sum(t.cpu_s for t in self.tallies) / self.seconds, 1),
            "server_cpu_s": {k: round(v, 3) for k, v in self.window.proc_s.items()},
            "server_cpu_us_per_frame": {
                k: round(1e6 * v / n, 1) if n else 0 for k, v in self.window.proc_s.items()
            },
            "cpu_busy_pct": {str(k): round(v, 1) for k, v in self.window.cpu_pct.items()},
            "other_cpu_pct": round(self.other_pct, 1),
        }

    @property
    def other_pct(self) -> float:
        """% of a core that programs other than the servers and the clients used on the two CPUs."""
        w = self.window
        if not w.seconds:
            return 0.0
        busy = w.cpu_pct.get(servers.SERVER_CPU, 0.0) + w.cpu_pct.get(servers.CLIENT_CPU, 0.0)
        ours = 100 * (sum(w.proc_s.values()) + sum(t.cpu_s for t in self.tallies)) / w.seconds
        return max(0.0, busy - ours)


def run_server(name: str, base_url: str, pids: dict[str, int], args: argparse.Namespace) -> Result:
    url = base_url.replace("http://", "ws://", 1) + ROUTE
    text = servers.text_bytes(args.payload)
    frames = frames_of(text, args.frames)
    b64 = base64.b64encode(text).decode()
    procs = max(1, min(args.client_procs, args.sessions))
    per = [args.sessions // procs + (1 if i < args.sessions % procs else 0) for i in range(procs)]
    cpus = {servers.CLIENT_CPU} if args.pin else None
    ctx = mp.get_context("spawn")
    pipes, children = [], []
    done = False
    try:
        for n in per:
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(
                target=_client_main, args=(url, n, frames, b64, args.deflate, cpus, child_end), daemon=True
            )
            p.start()
            child_end.close()
            pipes.append(parent_end)
            children.append(p)
        for conn in pipes:
            if not conn.poll(120) or conn.recv() != "ready":
                raise RuntimeError(f"{name}: a client process did not finish its warm-up round within 120 s")
        start_at = time.monotonic() + 0.2
        for conn in pipes:
            conn.send((start_at, float(args.seconds)))
        time.sleep(max(0.0, start_at - time.monotonic()))
        window = servers.Window(pids).start()
        tallies = []
        for conn in pipes:
            if not conn.poll(args.seconds + 120):
                raise RuntimeError(f"{name}: a client process did not report")
            tallies.append(Tally(**conn.recv()))
        window.stop()
        done = True
    finally:
        for p in children:
            if not done:  # interrupted or failed: no need to wait for the rounds to end
                p.kill()
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    return Result(name, tallies, window, args.frames)


def session_check(base_url: str, args: argparse.Namespace) -> str | None:
    """One short session through ``base_url``: None when it works, else what went wrong."""
    url = base_url.replace("http://", "ws://", 1) + ROUTE
    text = servers.text_bytes(args.payload)
    tally = Tally()
    asyncio.run(one_session(url, frames_of(text, 3), base64.b64encode(text).decode(), args.deflate, tally))
    return tally.why or None


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--sessions", type=int, default=100, help="concurrent sessions (default 100)")
    ap.add_argument("--frames", type=int, default=50, help="frames per session (default 50)")
    ap.add_argument(
        "--seconds", type=float, default=8.0, help="run rounds for at least this long (default 8)"
    )
    ap.add_argument("--client-procs", type=int, default=1, help="client processes on CPU 1 (default 1)")
    ap.add_argument("--payload", type=int, default=768, help="text bytes per frame (default 768 = 1 KiB b64)")
    ap.add_argument("--lic", type=int, default=128, help="licences of the stream_echo loader (default 128)")
    ap.add_argument("--deflate", action="store_true", help="offer permessage-deflate (default: off)")
    ap.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        help="event loop of the gateway and of the bare app (default: the gateway's default)",
    )
    ap.add_argument("--json", help="also write every number to this file")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin (default: pin)")
    ap.add_argument("--quiet-wait", type=float, default=60.0, help="wait up to this long for a quiet machine")
    args = ap.parse_args(argv)
    if args.lic < args.sessions:
        ap.error(f"--lic {args.lic} < --sessions {args.sessions}: sessions would wait for licences")
    if args.frames < 2:
        ap.error("--frames must be >= 2 (a first frame and a last)")
    return args


def us(v: float) -> str:
    return f"{v:,.0f}"


HEADER = (
    "| server | sessions x frames | frames/s | frame RTT p50 µs | p99 µs | later frames p50 / p99 µs | "
    "first frame p50 µs | handshake p50 µs | failed sessions | server CPU µs/frame | client CPU | "
    "CPU 0 busy | CPU 1 busy | other CPU |\n|---|--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
)


def row_text(r: Result, args: argparse.Namespace) -> str:
    s = r.summary()
    per = s["server_cpu_us_per_frame"]
    if r.name == "bare":
        cpu = us(per.get("bare", 0))
    else:
        gw = per.get("gateway", 0)
        ld = sum(v for k, v in per.items() if k.startswith("loader"))
        cpu = f"{us(sum(per.values()))} ({us(gw)} gateway + {us(ld)} loader)"
    busy = s["cpu_busy_pct"]
    fail = f"{s['failed_sessions']}" + (f" ({s['first_failure'][:80]})" if s["failed_sessions"] else "")
    cells = [
        r.name,
        f"{args.sessions} x {args.frames} ({s['sessions']} sessions)",
        f"{s['frames_per_s']:,.0f}",
        us(s["rtt_p50_us"]),
        us(s["rtt_p99_us"]),
        f"{us(s['later_p50_us'])} / {us(s['later_p99_us'])}",
        us(s["first_p50_us"]),
        us(s["connect_p50_us"]),
        fail,
        cpu,
        f"{s['client_cpu_pct']:.0f}%",
        f"{busy.get(str(servers.SERVER_CPU), 0):.0f}%",
        f"{busy.get(str(servers.CLIENT_CPU), 0):.0f}%",
        f"{s['other_cpu_pct']:.0f}%",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    servers.install_signal_handlers()
    if args.pin and not servers.can_pin():
        print("warning: taskset or a second CPU is missing: nothing is pinned", file=sys.stderr)
        args.pin = False
    loop, gw_args = servers.gateway_loop(args.loop)
    info = loadgen.banner(args.quiet_wait)
    frame_len = len(frames_of(servers.text_bytes(args.payload), 3)[1])
    print(
        f"{args.sessions} sessions x {args.frames} frames, {frame_len}-byte frames, "
        f"{args.client_procs} client process(es) on CPU {servers.CLIENT_CPU}, "
        f"servers on CPU {servers.SERVER_CPU}"
        + ("" if args.pin else " (NOT pinned)")
        + f", compression {'offered' if args.deflate else 'off'}, event loop {loop}",
        flush=True,
    )
    out: dict[str, Any] = {
        **servers.run_header(info),
        "sessions": args.sessions,
        "frames": args.frames,
        "frame_bytes": frame_len,
        "client_procs": args.client_procs,
        "deflate": args.deflate,
        "pinned": args.pin,
        "loop": loop,
    }
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        bare = stack.enter_context(servers.bare_server(args.pin, loop))
        loaders = [(servers.STREAM_ECHO, ["--lic", str(args.lic)])]
        cluster = stack.enter_context(servers.Cluster(loaders, args.pin, gw_args))
        servers.until("the bare app's WebSocket", lambda: session_check(bare.target, args))
        servers.until(f"the gateway's {ROUTE}", lambda: session_check(cluster.url, args))
        assert bare.proc is not None
        print(f"bare app {bare.target}; gateway {cluster.url} (pids {cluster.pids})\n", flush=True)
        print(HEADER, flush=True)
        for name, url, pids in (
            ("bare", bare.target, {"bare": bare.proc.pid}),
            ("gateway -> loader", cluster.url, cluster.pids),
        ):
            r = run_server(name, url, pids, args)
            results.append(r)
            print(row_text(r, args), flush=True)
    out["points"] = [r.summary() for r in results]
    b, f = out["points"]
    if b["frames_per_s"] and f["frames_per_s"]:
        out["ratio"] = {
            "full_pct_of_bare_frames_per_s": round(100 * f["frames_per_s"] / b["frames_per_s"], 1),
            "added_rtt_p50_us": round(f["rtt_p50_us"] - b["rtt_p50_us"], 1),
        }
        print(
            f"\nfull path frames/s = {out['ratio']['full_pct_of_bare_frames_per_s']:.0f}% of the bare app's; "
            f"frame round trip p50 {b['rtt_p50_us'] / 1000:.2f} -> {f['rtt_p50_us'] / 1000:.2f} ms"
        )
    return servers.finish(out, args.json)


if __name__ == "__main__":
    servers.run_main(main)
