"""Memory of a local cluster with one echo loader, after load: RSS and PSS of every process.

    python bench/rss.py                         # about 15 s
    python bench/rss.py --requests 20000 --json out.json
    python bench/rss.py --src /tmp/old/src      # another tree's code (e.g. a commit to compare with)
    python bench/rss.py --env MALLOC_ARENA_MAX=2    # an environment variable for every process
    python bench/rss.py --lb                    # asectl init --lb: with the LB service

Brings the cluster up as a user does, in a temporary ``$ASE_HOME`` on free ports: ``asectl init``
(config centre and gateway; ``--lb``: the LB service too), then ``asectl loader run
examples/echo`` (the loader front is that CLI process; its ``ase.toml`` asks for 1 worker). Then
``--requests`` once requests through the gateway with the first consumer's API key at
``--concurrency`` (wrk when installed, else an asyncio loop over httpx), and reads, for every
process of the cluster (children included):

- RSS: ``VmRSS`` of ``/proc/PID/status``, what ``ps`` and ``top`` show. Pages of shared libraries
  (libpython, grpc's ``cygrpc``, ...) count in every process that maps them.
- PSS: ``Pss`` of ``/proc/PID/smaps_rollup``: a shared page counts 1/n in each of the n processes
  mapping it, so the PSS sum is what the cluster takes from the machine.
- USS: private pages (``Private_Clean + Private_Dirty``), what stopping that process alone frees.
- The cluster's memory: every page that any of its processes maps, counted once (physical frame
  numbers from ``/proc/PID/pagemap``; needs root, else not shown). Unlike the PSS sum, it does not
  depend on what else runs on the machine (other Pythons share libpython's pages, and lower PSS).

It reads them once after the cluster is up (before load) and once after the load. At the end the
loader gets SIGTERM and ``asectl down`` stops the rest. The processes run the code of ``--src``
(default: this checkout's ``src``) with the Python that runs this script.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "echo"
ROUTE = "/v1/private/echo"
#: mosec serving the same echo (its main process and one worker), as measured before the rewrite.
MOSEC_MB = 123
TARGET_MB = 150
KB = 1024

LUA = """-- written by bench/rss.py: POST the body until `limit` answers came, then print one JSON line
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = "%(key)s"
local n = 0
local limit = %(limit)d

-- wrk runs for its -d whatever a thread does: at the limit, say so in a file; bench/rss.py then
-- sends SIGINT, which makes wrk stop and print its summary.
function response(status, headers, body)
  n = n + 1
  if n == limit then
    local f = io.open("%(flag)s", "w")
    f:close()
  end
end

function done(summary, latency, requests)
  io.write(string.format('WRK {"requests":%%d,"duration_us":%%d,"status":%%d,"errors":%%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


# -- the cluster ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def asectl_argv() -> list[str]:
    """How a user starts asectl: its console script next to this Python, else ``-m``."""
    script = Path(sys.executable).with_name("asectl")
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "ase_serving.cli.main"]


def cluster_env(home: Path, src: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "ASE_HOME": str(home), **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])])
    for name in ("ASE_CONFIG_ADDRESS", "ASE_CONFIG_ACCOUNT", "ASE_CONFIG_PASSWORD"):
        env.pop(name, None)
    return env


def asectl(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    proc = subprocess.run([*asectl_argv(), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"error: asectl {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


@contextlib.contextmanager
def local_cluster(
    home: Path, env: dict[str, str], lb: bool = False
) -> Iterator[tuple[str, dict[str, int], Path]]:
    """(gateway URL, {component: pid}, credentials file) of ``asectl init`` (``--lb``: with the LB
    service) + the echo loader."""
    loader: subprocess.Popen[str] | None = None
    try:
        ports = [str(free_port()) for _ in range(3)]
        doc = json.loads(
            asectl(
                env,
                "init",
                "--config-port",
                ports[0],
                *(["--lb", "--lb-port", ports[1]] if lb else []),
                "--gateway-port",
                ports[2],
                "--json",
            )
        )
        pids = {c["name"]: int(c["pid"]) for c in doc["components"]}
        urls = {c["name"]: c["url"] for c in doc["components"]}
        loader = subprocess.Popen(
            [*asectl_argv(), "loader", "run", str(ECHO), "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert loader.stdout is not None
        line = loader.stdout.readline()
        if "serving on" not in line:
            raise SystemExit(f"error: the loader did not start (exit {loader.wait(30)}): {line!r}")
        pids["loader"] = loader.pid
        yield urls["gateway"], pids, home / "credentials.json"
    finally:
        if loader is not None:
            loader.send_signal(signal.SIGTERM)
            try:
                loader.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(loader.pid, signal.SIGKILL)
                loader.wait(10)
        asectl(env, "down")


# -- the load -------------------------------------------------------------------------------------
def request(creds: Path) -> tuple[bytes, dict[str, str], bytes]:
    """The echo body under the first consumer's app id, its API key header, and the text sent."""
    doc = json.loads(creds.read_text())
    text = b"the quick brown fox jumps over the lazy dog " * 24  # ~1 KiB
    body = {
        "header": {"app_id": doc["app_id"]},
        "payload": {"text": {"encoding": "utf8", "text": base64.b64encode(text).decode()}},
    }
    return json.dumps(body, separators=(",", ":")).encode(), {"X-Api-Key": str(doc["api_key"])}, text


def post_once(url: str, body: bytes, headers: dict[str, str], text: bytes) -> str | None:
    """None when the gateway echoes ``text`` with code 0, else what went wrong."""
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", ROUTE, body, {"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if resp.status != 200:
        return f"HTTP {resp.status}: {raw[:200]!r}"
    doc = json.loads(raw)
    if doc.get("header", {}).get("code") != 0 or base64.b64decode(doc["payload"]["echo"]["text"]) != text:
        return f"wrong answer: {raw[:200]!r}"
    return None


def wait_routed(url: str, body: bytes, headers: dict[str, str], text: bytes, timeout: float = 60) -> None:
    """Until the gateway has seen the loader's registration and the schema (it watches for both)."""
    deadline = time.monotonic() + timeout
    while (why := post_once(url, body, headers, text)) is not None:
        if time.monotonic() > deadline:
            raise SystemExit(f"error: the gateway does not answer the echo within {timeout:g} s: {why}")
        time.sleep(0.2)


def load_wrk(url: str, body: bytes, headers: dict[str, str], n: int, conc: int, tmp: Path) -> dict[str, Any]:
    lua = tmp / "rss.lua"
    text = body.decode()
    assert "]==]" not in text
    flag = tmp / "rss.done"
    lua.write_text(LUA % {"body": text, "key": headers["X-Api-Key"], "limit": n, "flag": flag})
    cmd = ["wrk", "-t1", f"-c{conc}", "-d600s", "--timeout", "10s", "-s", str(lua), url + ROUTE]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not flag.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    for line in stdout.splitlines():
        if line.startswith("WRK "):
            doc = json.loads(line[4:])
            return {
                "tool": "wrk",
                "requests": doc["requests"],
                "seconds": doc["duration_us"] / 1e6,
                "failed": doc["status"] + doc["errors"],
            }
    raise SystemExit(f"error: wrk gave no summary (exit {proc.returncode}):\n{stdout}\n{stderr}")


def load_httpx(url: str, body: bytes, headers: dict[str, str], n: int, conc: int) -> dict[str, Any]:
    import httpx

    async def run() -> dict[str, Any]:
        left, failed = [n], [0]
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

            async def one_client() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    resp = await client.post(
                        ROUTE, content=body, headers={"Content-Type": "application/json", **headers}
                    )
                    failed[0] += resp.status_code != 200

            t0 = time.perf_counter()
            await asyncio.gather(*(one_client() for _ in range(conc)))
            return {"tool": "httpx", "requests": n, "seconds": time.perf_counter() - t0, "failed": failed[0]}

    return asyncio.run(run())


# -- memory ---------------------------------------------------------------------------------------
def children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(roots: dict[str, int]) -> list[tuple[str, int]]:
    """(label, pid) of every process of the cluster: each component and its descendants."""
    kids = children()
    out: list[tuple[str, int]] = []

    def walk(label: str, pid: int) -> None:
        out.append((label, pid))
        for i, kid in enumerate(sorted(kids.get(pid, [])), 1):
            cmd = cmdline(kid)
            if "ase_serving.loader.worker" in cmd:
                walk(f"loader worker {i}", kid)
            else:
                walk(f"{label} child {i}", kid)

    names = {"config": "config centre", "lb": "LB service", "gateway": "gateway", "loader": "loader front"}
    for name, pid in roots.items():
        walk(names.get(name, name), pid)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def memory(pid: int) -> dict[str, int]:
    """kB: rss, hwm (peak RSS), pss, uss, anon (RSS of anonymous memory: the heap), and threads."""
    status: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    rollup: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        rollup[key] = int(value.split()[0])
    return {
        "rss": int(status["VmRSS"].split()[0]),
        "hwm": int(status["VmHWM"].split()[0]),
        "pss": rollup["Pss"],
        "uss": rollup["Private_Clean"] + rollup["Private_Dirty"],
        "anon": int(status["RssAnon"].split()[0]),
        "threads": int(status["Threads"]),
    }


def frames(pid: int) -> set[int]:
    """Physical frame numbers of the pages ``pid`` has in memory (empty without the right to see them)."""
    found: set[int] = set()
    page = os.sysconf("SC_PAGE_SIZE")
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            if fields[-1] == "[vsyscall]":
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            pagemap.seek(lo // page * 8)
            for (entry,) in struct.iter_unpack("<Q", pagemap.read((hi - lo) // page * 8)):
                if entry >> 63:  # present (not swapped); the frame number is bits 0-54
                    found.add(entry & ((1 << 55) - 1))
    found.discard(0)  # frame numbers read as 0 without CAP_SYS_ADMIN
    return found


def cluster_kb(rows: list[dict[str, Any]]) -> int | None:
    """kB in memory for the processes of ``rows``, a page shared between them counted once."""
    every: set[int] = set()
    try:
        for r in rows:
            every |= frames(r["pid"])
    except OSError:
        return None
    return len(every) * os.sysconf("SC_PAGE_SIZE") // KB or None


def snapshot(roots: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    for label, pid in tree(roots):
        with contextlib.suppress(OSError, KeyError):
            rows.append({"process": label, "pid": pid, **memory(pid)})
    return rows


def mb(kb: float) -> str:
    return f"{kb / KB:.1f}"


def table(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    idle = {r["pid"]: r for r in before}
    lines = [
        "| process | pid | threads | RSS MB idle | RSS MB | peak RSS MB | PSS MB | USS MB | anon MB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in after:
        rss_idle = mb(idle[r["pid"]]["rss"]) if r["pid"] in idle else "-"
        cells = [r["process"], r["pid"], r["threads"], rss_idle]
        cells += [mb(r[k]) for k in ("rss", "hwm", "pss", "uss", "anon")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    s = {k: sum(r[k] for r in after) for k in ("rss", "hwm", "pss", "uss", "anon")}
    lines.append(
        f"| **sum** | | | {mb(sum(r['rss'] for r in before))} | **{mb(s['rss'])}** | {mb(s['hwm'])} | "
        f"**{mb(s['pss'])}** | {mb(s['uss'])} | {mb(s['anon'])} |"
    )
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=5000, help="once requests through the gateway")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--src", type=Path, default=ROOT / "src", help="the ase_serving source tree to run")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set in the environment of every process of the cluster (repeatable)",
    )
    p.add_argument("--lb", action="store_true", help="asectl init --lb: the LB service as well")
    p.add_argument("--no-wrk", action="store_true", help="load with httpx even when wrk is installed")
    p.add_argument("--settle", type=float, default=1.0, help="seconds between the load and the reading")
    p.add_argument("--json", type=Path, help="write every number to this file")
    return p.parse_args(argv)


def commit(src: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "?"
    return rev + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", ".") else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.env)
    src = args.src.resolve()
    wrk = None if args.no_wrk else shutil.which("wrk")
    out: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([sys.executable, *sys.argv]),
        "src": str(src),
        "commit": commit(src),
        "machine": {
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "cores": os.cpu_count(),
        },
        "env": extra,
    }
    with tempfile.TemporaryDirectory(prefix="ase-bench-rss-") as tmp:
        home = Path(tmp) / "home"
        env = cluster_env(home, src, extra)
        with local_cluster(home, env, args.lb) as (url, pids, creds):
            body, headers, text = request(creds)
            wait_routed(url, body, headers, text)
            time.sleep(args.settle)
            before = snapshot(pids)
            if wrk:
                load = load_wrk(url, body, headers, args.requests, args.concurrency, Path(tmp))
            else:
                load = load_httpx(url, body, headers, args.requests, args.concurrency)
            time.sleep(args.settle)
            after = snapshot(pids)
            unique = cluster_kb(after)
            # asectl init's gateway balances in its own process: nothing in a local cluster calls the LB.
            unique_rest = cluster_kb([r for r in after if r["process"] != "LB service"])
    rate = load["requests"] / load["seconds"] if load["seconds"] else 0.0
    print(f"src {src} ({out['commit']}); env {extra or '-'}")
    print(
        f"load: {load['requests']} once requests at concurrency {args.concurrency} with {load['tool']} "
        f"in {load['seconds']:.1f} s ({rate:,.0f}/s), {load['failed']} failed"
    )
    print()
    print(table(before, after))
    rss = sum(r["rss"] for r in after) / KB
    pss = sum(r["pss"] for r in after) / KB
    print()
    once = f", {unique / KB:.1f} MB with shared pages counted once" if unique else ""
    print(
        f"after load: RSS sum {rss:.1f} MB, PSS sum {pss:.1f} MB{once} (target <= {TARGET_MB} MB; "
        f"mosec serving the same echo: ~{MOSEC_MB} MB RSS in all)"
    )
    rest = [r for r in after if r["process"] != "LB service"]
    rss_rest, pss_rest = sum(r["rss"] for r in rest) / KB, sum(r["pss"] for r in rest) / KB
    once = f", {unique_rest / KB:.1f} MB with shared pages counted once" if unique_rest else ""
    if len(rest) < len(after):
        print(f"without the LB service: RSS sum {rss_rest:.1f} MB, PSS sum {pss_rest:.1f} MB{once}")
    out.update(
        {
            "load": {**load, "concurrency": args.concurrency},
            "idle": before,
            "after_load": after,
            "rss_sum_mb": round(rss, 1),
            "pss_sum_mb": round(pss, 1),
            "once_mb": round(unique / KB, 1) if unique else None,
            "without_lb": {
                "rss_sum_mb": round(rss_rest, 1),
                "pss_sum_mb": round(pss_rest, 1),
                "once_mb": round(unique_rest / KB, 1) if unique_rest else None,
            },
        }
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if load["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
