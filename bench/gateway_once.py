"""What the gateway costs on a once request: echo through client -> gateway -> loader against a bare
Starlette + uvicorn app that does the same echo in-process, with the same client and the same body.

    python bench/gateway_once.py                    # 8 s per point after 2 s of warm-up; about 2 minutes
    python bench/gateway_once.py --seconds 2 --warmup 1 --concurrency 1,16    # a smoke run
    python bench/gateway_once.py --json out.json --py-spy auto    # + a py-spy profile of the gateway

Method (design/PERFORMANCE.md): a ~1.1 KB JSON body with 1 KiB of base64 text in one payload item;
every server process (the bare app; the config centre, the loader's front and worker, the gateway)
pinned to CPU 0 with ``taskset -c 0``, ``wrk`` (one thread, a Lua script that POSTs the body and
prints the latency percentiles) pinned to CPU 1; concurrency 1, 16 and 64; baseline and candidate
measured in the same run, one after the other at each concurrency. The gateway runs with one worker
and the echo loader with one worker and ``--lic 128`` (licences are never what a request waits for);
access logs are off everywhere.

Needs ``wrk`` (``scripts/system-deps --bench``). ``--serve-bare`` runs the baseline app alone (the
bench starts it that way, pinned; ``gateway_ws.py`` uses its WebSocket route).
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
from gateway_servers import (
    _TICK,
    CLIENT_CPU,
    ECHO,
    ONCE_ROUTE,
    SERVER_CPU,
    Cluster,
    Window,
    bare_server,
    can_pin,
    finish,
    gateway_loop,
    install_signal_handlers,
    once_body,
    post_echo,
    run_header,
    run_main,
    serve_bare,
    taskset,
    text_bytes,
    until,
)


# -- wrk ------------------------------------------------------------------------------------------
def require_wrk() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        sys.exit("error: wrk is not installed: run `scripts/system-deps --bench` (Debian package wrk)")
    return exe


LUA = """-- written by bench/gateway_once.py: POST the body, print the summary as one JSON line
wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%%d,"duration_us":%%d,"bytes":%%d,"mean_us":%%.1f,"max_us":%%d,' ..
    '"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"p999_us":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, summary.bytes, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def write_lua(path: Path, body: bytes, headers: dict[str, str] | None = None) -> Path:
    """The wrk script POSTing ``body`` with ``headers`` besides the content type."""
    text = body.decode()
    assert "]==]" not in text
    extra = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items())
    path.write_text((LUA % text).replace("\nfunction done", extra + "\nfunction done", 1))
    return path


def run_wrk(
    url: str, lua: Path, conc: int, seconds: int, pin: bool, threads: int = 1, route: str = ONCE_ROUTE
) -> dict[str, Any]:
    cmd = [*taskset(CLIENT_CPU, pin), "wrk", f"-t{min(threads, conc)}", f"-c{conc}", f"-d{seconds}s"]
    cmd += ["--timeout", "10s", "-s", str(lua), url + route]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRK "):
            doc: dict[str, Any] = json.loads(line[4:])
            return doc
    raise RuntimeError(f"wrk gave no summary (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


# -- a point --------------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    concurrency: int
    wrk: dict[str, Any]
    window: Window
    #: CPU seconds wrk used in the window
    wrk_cpu_s: float = 0.0

    @property
    def wrk_pct(self) -> float:
        return 100 * self.wrk_cpu_s / self.window.seconds if self.window.seconds else 0.0

    @property
    def other_pct(self) -> float:
        """% of a core that programs other than the servers and wrk used on the two CPUs."""
        busy = self.window.cpu_pct.get(SERVER_CPU, 0.0) + self.window.cpu_pct.get(CLIENT_CPU, 0.0)
        ours = 100 * sum(self.window.proc_s.values()) / self.window.seconds if self.window.seconds else 0.0
        return max(0.0, busy - ours - self.wrk_pct)

    @property
    def rps(self) -> float:
        return self.wrk["requests"] / (self.wrk["duration_us"] / 1e6)

    @property
    def non2xx(self) -> int:
        return int(self.wrk["status"])

    @property
    def socket_errors(self) -> int:
        return sum(int(self.wrk[k]) for k in ("connect", "read", "write", "timeout"))

    def cpu_us_per_req(self, key: str) -> float:
        n = self.wrk["requests"]
        return 1e6 * sum(v for k, v in self.window.proc_s.items() if k.startswith(key)) / n if n else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "concurrency": self.concurrency,
            "requests": self.wrk["requests"],
            "seconds": round(self.wrk["duration_us"] / 1e6, 3),
            "requests_per_s": round(self.rps, 1),
            "p50_us": self.wrk["p50_us"],
            "p90_us": self.wrk["p90_us"],
            "p99_us": self.wrk["p99_us"],
            "p999_us": self.wrk["p999_us"],
            "max_us": self.wrk["max_us"],
            "non_2xx": self.non2xx,
            "socket_errors": self.socket_errors,
            "server_cpu_s": {k: round(v, 3) for k, v in self.window.proc_s.items()},
            "server_cpu_us_per_request": {
                k: round(1e6 * v / self.wrk["requests"], 1) if self.wrk["requests"] else 0
                for k, v in self.window.proc_s.items()
            },
            "cpu_busy_pct": {str(k): round(v, 1) for k, v in self.window.cpu_pct.items()},
            "wrk_cpu_pct": round(self.wrk_pct, 1),
            "other_cpu_pct": round(self.other_pct, 1),
        }


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(
    name: str,
    url: str,
    pids: dict[str, int],
    lua: Path,
    c: int,
    args: argparse.Namespace,
    route: str = ONCE_ROUTE,
) -> Row:
    if args.warmup > 0:
        run_wrk(url, lua, c, args.warmup, args.pin, route=route)
    window = Window(pids).start()
    cpu0 = _children_cpu_s()
    res = run_wrk(url, lua, c, args.seconds, args.pin, route=route)
    return Row(name, c, res, window.stop(), _children_cpu_s() - cpu0)


def us(v: float) -> str:
    return f"{v:,.0f}"


HEADER = (
    "| server | conc. | req/s | p50 µs | p99 µs | non-2xx | socket errors | server CPU µs/req | "
    "CPU 0 busy | CPU 1 busy | wrk CPU | other CPU |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
)


def row_text(r: Row) -> str:
    if r.name == "bare":
        cpu = us(r.cpu_us_per_req("bare"))
    else:
        gw, ld = r.cpu_us_per_req("gateway"), r.cpu_us_per_req("loader")
        cpu = f"{us(gw + ld + r.cpu_us_per_req('config'))} ({us(gw)} gateway + {us(ld)} loader)"
    busy = r.window.cpu_pct
    return (
        f"| {r.name} | {r.concurrency} | {r.rps:,.0f} | {us(r.wrk['p50_us'])} | {us(r.wrk['p99_us'])} | "
        f"{r.non2xx} | {r.socket_errors} | {cpu} | {busy.get(SERVER_CPU, 0):.0f}% | "
        f"{busy.get(CLIENT_CPU, 0):.0f}% | {r.wrk_pct:.0f}% | {r.other_pct:.0f}% |"
    )


# -- a profile of the gateway ---------------------------------------------------------------------
AREAS = [  # (area, a substring of a frame that puts a sample there), first match from the leaf up
    ("prometheus metrics", "prometheus_client/"),
    ("schema check (jsonschema-rs)", "check (ase_serving/gateway/webgate.py"),
    ("schema check (jsonschema-rs)", "ase_serving/schema/validate.py"),
    ("request/result conversion", "ase_serving/loader/convert.py"),
    ("request/result conversion", "ase_serving/protocol/public.py"),
    ("request/result conversion", "to_request (ase_serving/gateway/atom.py"),
    ("request/result conversion", "_output_spec (ase_serving/gateway/atom.py"),
    ("gRPC client (grpc.aio)", "grpc/"),
    ("loader client", "ase_serving/loader/client.py"),
    ("LB pick/release", "ase_serving/lb/"),
    ("LB pick/release", "gateway/picking.py"),
    ("config watch (httpx)", "httpx/"),
    ("config watch (httpx)", "ase_serving/store/"),
    ("uvicorn HTTP", "uvicorn/protocols/"),
    ("gateway app", "ase_serving/gateway/"),
    ("uvicorn HTTP", "uvicorn/"),
]


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid`` (the main thread as ``main``, others by name)."""
    out: dict[str, float] = collections.defaultdict(float)
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                    stat = fh.read()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                rest = stat.rsplit(")", 1)[1].split()
                out["main" if int(tid) == pid else name] += (int(rest[11]) + int(rest[12])) / _TICK
    return out


def area_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for area, needle in AREAS:
            if needle in frame:
                return area
    return "event loop, other"


def profile(pyspy: str, url: str, gw_pid: int, lua: Path, args: argparse.Namespace) -> dict[str, Any]:
    """py-spy samples of the gateway process while wrk runs at ``--profile-concurrency``."""
    if args.profile_out:
        out = Path(args.profile_out)
    else:
        with tempfile.NamedTemporaryFile(prefix="gateway-profile-", suffix=".txt", delete=False) as fh:
            out = Path(fh.name)
    secs = max(4, args.seconds)
    load = [*taskset(CLIENT_CPU, args.pin), "wrk", "-t1", f"-c{args.profile_concurrency}", f"-d{secs + 2}s"]
    wrk = subprocess.Popen(
        [*load, "-s", str(lua), url + ONCE_ROUTE],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.0)
        # --gil: only the thread holding the GIL is sampled (grpc's poller thread, waiting in C,
        # otherwise shows up as busy); the per-thread CPU below covers what runs without the GIL.
        cmd = [*taskset(CLIENT_CPU, args.pin), pyspy, "record", "-p", str(gw_pid), "-d", str(secs)]
        cmd += ["-r", "100", "-f", "raw", "--gil", "-o", str(out)]
        t0, threads0 = time.monotonic(), thread_cpu_s(gw_pid)
        subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60, check=True)
        elapsed, threads1 = time.monotonic() - t0, thread_cpu_s(gw_pid)
        wrk_out, _ = wrk.communicate(timeout=secs + 60)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    total = 0
    leaf: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        total += int(n)
        leaf[frames[-1]] += int(n)
        areas[area_of(frames)] += int(n)
    rps = next((ln for ln in wrk_out.splitlines() if ln.startswith("Requests/sec")), "")
    threads = {k: threads1[k] - threads0.get(k, 0.0) for k in threads1}
    threads = {k: v for k, v in sorted(threads.items(), key=lambda kv: -kv[1]) if v > 0}
    print(f"\n## py-spy profile of the gateway at concurrency {args.profile_concurrency}: {total} samples")
    print(f"(wrk under the profiler: {rps.strip()}; raw stacks in {out})")
    print(
        "gateway CPU by thread meanwhile: "
        + ", ".join(f"{k} {100 * v / elapsed:.0f}%" for k, v in threads.items())
        + " of a core\n"
    )
    print("| area (innermost matching frame) | share of GIL samples |\n|---|--:|")
    for area, n in areas.most_common():
        print(f"| {area} | {100 * n / total:.1f}% |")
    print("\n| function (where the sample was) | share |\n|---|--:|")
    for fn, n in leaf.most_common(15):
        print(f"| `{fn}` | {100 * n / total:.1f}% |")
    return {
        "samples": total,
        "raw": str(out),
        "thread_cpu_pct": {k: round(100 * v / elapsed, 1) for k, v in threads.items()},
        "areas": {a: round(100 * n / total, 1) for a, n in areas.most_common()},
        "top": [[fn, round(100 * n / total, 1)] for fn, n in leaf.most_common(30)],
    }


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=int, default=8, help="measured seconds per point (default 8)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each point (default 2)")
    ap.add_argument("--concurrency", default="1,16,64", help="connections (default 1,16,64)")
    ap.add_argument("--payload", type=int, default=768, help="text bytes (default 768 = 1 KiB of base64)")
    ap.add_argument("--lic", type=int, default=128, help="licences of the echo loader (default 128)")
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin (default: pin)")
    ap.add_argument("--quiet-wait", type=float, default=60.0, help="wait up to this long for a quiet machine")
    ap.add_argument("--py-spy", help="after the points, profile the gateway with this py-spy ('auto': PATH)")
    ap.add_argument("--profile-concurrency", type=int, default=16)
    ap.add_argument("--profile-out", help="where py-spy's raw stacks go (default: a temp file)")
    ap.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        help="event loop of the gateway and of the bare app (default: the gateway's default)",
    )
    ap.add_argument("--serve-bare", action="store_true", help="run only the bare baseline app")
    ap.add_argument("--host", default="127.0.0.1", help="with --serve-bare")
    ap.add_argument("--port", type=int, default=0, help="with --serve-bare")
    args = ap.parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    return args


def find_pyspy(opt: str | None) -> str | None:
    if not opt:
        return None
    exe = shutil.which("py-spy") if opt == "auto" else opt
    if exe is None or not os.access(exe, os.X_OK):
        sys.exit(f"error: py-spy not found ({opt}): `pip install py-spy`, or give its path")
    return exe


def ratios(rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    by = {(r.name, r.concurrency): r for r in rows}
    for (name, c), full in by.items():
        bare = by.get(("bare", c))
        if name == "bare" or bare is None:
            continue
        out.append(
            {
                "concurrency": c,
                "bare_rps": round(bare.rps, 1),
                "full_rps": round(full.rps, 1),
                "full_pct_of_bare": round(100 * full.rps / bare.rps, 1) if bare.rps else None,
                "bare_p50_us": bare.wrk["p50_us"],
                "full_p50_us": full.wrk["p50_us"],
                "added_p50_us": full.wrk["p50_us"] - bare.wrk["p50_us"],
                "bare_p99_us": bare.wrk["p99_us"],
                "full_p99_us": full.wrk["p99_us"],
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        return serve_bare(args.host, args.port, args.loop or "auto")
    require_wrk()
    pyspy = find_pyspy(args.py_spy)
    install_signal_handlers()
    if args.pin and not can_pin():
        print("warning: taskset or a second CPU is missing: nothing is pinned", file=sys.stderr)
        args.pin = False
    loop, gw_args = gateway_loop(args.loop)
    info = loadgen.banner(args.quiet_wait)
    text = text_bytes(args.payload)
    body = once_body(text)
    print(
        f"body: {len(body)} bytes ({len(base64.b64encode(text))} of base64); servers on CPU {SERVER_CPU}, "
        f"wrk on CPU {CLIENT_CPU}" + ("" if args.pin else " (NOT pinned)") + f"; event loop {loop}",
        flush=True,
    )
    out: dict[str, Any] = {
        **run_header(info),
        "body_bytes": len(body),
        "seconds_per_point": args.seconds,
        "warmup_s": args.warmup,
        "pinned": args.pin,
        "loop": loop,
    }
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ase-bench-wrk-")))
        lua = write_lua(tmp / "post.lua", body)
        bare = stack.enter_context(bare_server(args.pin, loop))
        cluster = stack.enter_context(Cluster([(ECHO, ["--lic", str(args.lic)])], args.pin, gw_args))
        until("the bare app", lambda: post_echo(bare.target, body, text))
        until(f"the gateway's {ONCE_ROUTE}", lambda: post_echo(cluster.url, body, text))
        assert bare.proc is not None
        servers = [
            ("bare", bare.target, {"bare": bare.proc.pid}),
            ("gateway -> loader", cluster.url, cluster.pids),
        ]
        print(f"bare app {bare.target}; gateway {cluster.url} (pids {cluster.pids})\n", flush=True)
        print(HEADER, flush=True)
        for c in args.levels:
            for name, url, pids in servers:
                r = measure(name, url, pids, lua, c, args)
                rows.append(r)
                print(row_text(r), flush=True)
        out["points"] = [r.summary() for r in rows]
        out["ratios"] = ratios(rows)
        print("\n| conc. | full path req/s ÷ bare | added p50 (full - bare) | p99 bare → full |")
        print("|--:|--:|--:|--:|")
        for q in out["ratios"]:
            print(
                f"| {q['concurrency']} | {q['full_pct_of_bare']:.0f}% | {q['added_p50_us'] / 1000:.2f} ms | "
                f"{q['bare_p99_us'] / 1000:.2f} → {q['full_p99_us'] / 1000:.2f} ms |"
            )
        c1 = next((q for q in out["ratios"] if q["concurrency"] == 1), None)
        top = max(out["ratios"], key=lambda q: q["concurrency"], default=None)
        if c1 is not None and top is not None:
            ok_rps = all(q["full_pct_of_bare"] >= 40 for q in out["ratios"])
            ok_p50 = c1["added_p50_us"] <= 1000
            print(
                f"\naim: full path >= 40% of the bare app's req/s: {'met' if ok_rps else 'MISSED'}; "
                f"added p50 at c=1 <= 1 ms: {'met' if ok_p50 else 'MISSED'} "
                f"({c1['added_p50_us'] / 1000:.2f} ms)"
            )
        if pyspy:
            out["profile"] = profile(pyspy, cluster.url, cluster.pids["gateway"], lua, args)
    return finish(out, args.json)


if __name__ == "__main__":
    run_main(main)
