"""Shared parts of the benchmarks: a loader server under test, client processes, CPU accounting, stats.

Clients run in separate processes (spawned, each optionally pinned to one CPU) so that at high
concurrency the client side is not one GIL-bound process; each reports its latencies and the CPU it
used, so a reader can tell when the client was the bottleneck.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing as mp
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase_serving.protocol.items import DataItem, Request

ROOT = Path(__file__).resolve().parent.parent
_SERVING = re.compile(r"serving on (\S+):(\d+)")
_GRPC = re.compile(r"; grpc (\S+:\d+)")
_TICK = os.sysconf("SC_CLK_TCK")


# -- machine --------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, str]:
    """What a reader needs to compare numbers: CPU model, cores, OS, Python, grpc."""
    import grpc

    model = platform.processor() or "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
    }


def commit() -> str:
    """The checked-out commit (``+dirty`` when the work tree has changes), or ``?``."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (rev or "?") + ("+dirty" if dirty else "")


def pin(cpus: set[int] | None) -> None:
    """Pin the calling process (and what it starts later) to ``cpus``; None = leave as is."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)


def can_pin(n: int) -> bool:
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= n


# -- the request ----------------------------------------------------------------------------------
def make_request(payload: int, params: dict[str, str] | None = None) -> Request:
    """A once request like the gateway would send: headers, params, one ``payload``-byte text item."""
    data = random.Random(0).randbytes(payload)
    return Request(
        service_id="bench",
        version="1.0.0",
        sid="bench-0001",
        headers={"app_id": "bench-app", "uid": "bench-user", "request_id": "0123456789abcdef"},
        params=dict(params or {}),
        items=[DataItem(key="text", data=data, desc={"encoding": "utf8"})],
    )


def wire_size(req: Request) -> int:
    """Bytes of the serialised OnceRequest (what crosses the socket, before HTTP/2 framing)."""
    from ase_serving.loader.proto import loader_pb2 as pb

    msg = pb.OnceRequest(
        meta=pb.RequestMeta(
            service_id=req.service_id,
            version=req.version,
            sid=req.sid,
            headers=req.headers,
            params=req.params,
        ),
        data=[
            pb.DataItem(key=i.key, data=i.data, status=i.status, type=i.type, desc=i.desc) for i in req.items
        ],
    )
    return msg.ByteSize()


# -- stats ----------------------------------------------------------------------------------------
@dataclass
class Point:
    """One measured point: latencies in ns, calls that failed, CPU seconds used."""

    name: str
    concurrency: int
    seconds: float
    lat_ns: list[int] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    #: the part of server_cpu_s spent in worker processes (the rest is the gRPC front process)
    worker_cpu_s: float = 0.0
    #: CPU the whole machine was busy in the window: what is not ours is noise from other programs
    machine_busy_s: float = 0.0

    @property
    def other_cpu_s(self) -> float:
        return max(0.0, self.machine_busy_s - self.server_cpu_s - self.client_cpu_s)

    @property
    def calls(self) -> int:
        return len(self.lat_ns)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def pct_us(self, q: float) -> float:
        if not self.lat_ns:
            return float("nan")
        s = sorted(self.lat_ns)
        return s[min(len(s) - 1, int(q / 100 * len(s)))] / 1000

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "calls": self.calls,
            "calls_per_s": round(self.rate, 1),
            "p50_us": round(self.pct_us(50), 1),
            "p99_us": round(self.pct_us(99), 1),
            "errors": self.errors,
            "first_error": self.first_error,
            "client_cpu_pct": round(100 * self.client_cpu_s / self.seconds, 1) if self.seconds else 0,
            "server_cpu_pct": round(100 * self.server_cpu_s / self.seconds, 1) if self.seconds else 0,
            "server_cpu_us_per_call": round(1e6 * self.server_cpu_s / self.calls, 1) if self.calls else 0,
            "worker_cpu_us_per_call": round(1e6 * self.worker_cpu_s / self.calls, 1) if self.calls else 0,
            "other_cpu_pct": round(100 * self.other_cpu_s / self.seconds, 1) if self.seconds else 0,
        }


def time_inprocess(name: str, call: Callable[[], object], warmup_s: float, seconds: float) -> Point:
    """Call ``call`` back to back in this thread; the in-process floor the loader is compared with."""
    end_warm = time.monotonic() + warmup_s
    while time.monotonic() < end_warm:
        call()
    lat: list[int] = []
    busy0, cpu0, t0 = machine_busy_s(), time.process_time(), time.monotonic()
    end = t0 + seconds
    clock = time.perf_counter_ns
    while True:
        a = clock()
        call()
        lat.append(clock() - a)
        if time.monotonic() >= end:
            break
    point = Point(name, 1, time.monotonic() - t0, lat)
    point.server_cpu_s = time.process_time() - cpu0
    point.machine_busy_s = machine_busy_s() - busy0
    return point


# -- CPU accounting -------------------------------------------------------------------------------
def machine_busy_s() -> float:
    """CPU seconds all CPUs have spent not idle since boot (from /proc/stat), 0.0 where unknown."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK


def tree_cpu_s(root_pid: int) -> tuple[float, float]:
    """User + system CPU seconds of ``root_pid`` itself and of its live descendants (from /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        pid = int(entry)
        parents[pid] = int(rest[1])
        times[pid] = (int(rest[11]) + int(rest[12])) / _TICK
    children, todo = 0.0, [p for p, pp in parents.items() if pp == root_pid]
    while todo:
        pid = todo.pop()
        children += times.get(pid, 0.0)
        todo.extend(p for p, pp in parents.items() if pp == pid)
    return times.get(root_pid, 0.0), children


# -- the server under test ------------------------------------------------------------------------
def loader_cmd(project: Path, args: Sequence[str]) -> list[str]:
    """``asectl loader run PROJECT --port 0 ARGS`` with this interpreter's asectl."""
    exe = shutil.which("asectl", path=str(Path(sys.executable).parent)) or shutil.which("asectl")
    if exe is None:
        raise RuntimeError("asectl not found: run scripts/install")
    return [exe, "loader", "run", str(project), "--port", "0", *args]


class LoaderServer:
    """A server command (a loader, or the floor) in its own process group; ``target`` once its
    output says ``serving on HOST:PORT``."""

    def __init__(self, cmd: list[str], cpus: set[int] | None) -> None:
        self.cmd = cmd
        self.cpus = cpus
        self.target = ""
        self.data_target = ""
        #: The ready line (the one that said ``serving on``).
        self.line = ""
        self._lines: list[str] = []
        self._found = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._lines.append(line.rstrip())
            del self._lines[:-50]  # keep a tail for error messages only
            m = _SERVING.search(line)
            if m and not self._found.is_set():
                self.target = f"{m.group(1)}:{m.group(2)}"
                # A loader: "serving on DATA (...); grpc HOST:PORT". The gRPC clients here
                # call the gRPC port; data_target is the lean wire's port.
                g = _GRPC.search(line)
                if g:
                    self.data_target, self.target = self.target, g.group(1)
                self.line = line.rstrip()
                self._found.set()

    def start(self, timeout_s: float = 60.0) -> str:
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=(lambda: pin(self.cpus)) if self.cpus else None,
        )
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not self._found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self._lines[-20:])
                self.stop()
                raise RuntimeError(f"{' '.join(self.cmd)} did not start serving:\n{tail}")
        return self.target

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        # Workers too, whatever the loader did with them.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def serving(cmd: list[str], cpus: set[int] | None) -> Iterator[LoaderServer]:
    server = LoaderServer(cmd, cpus)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_ready(target: str, req: Request, timeout_s: float = 60.0) -> None:
    """Until one once call succeeds: "serving on" may come before every worker has loaded."""
    from ase_serving.loader.client import LoaderClient

    deadline = time.monotonic() + timeout_s
    last = ""
    with LoaderClient(target) as client:
        while time.monotonic() < deadline:
            try:
                res = client.once(req)
            except Exception as exc:  # the loader may not accept connections for a moment
                last = f"{type(exc).__name__}: {exc}"
            else:
                if res.code == 0:
                    return
                last = f"code {res.code}: {res.message}"
            time.sleep(0.05)
    raise RuntimeError(f"loader at {target} not ready within {timeout_s:g}s: {last}")


# -- client processes -----------------------------------------------------------------------------
def _client_main(
    target: str, req: Request, threads: int, cpus: set[int] | None, raw: bool, conn: Any
) -> None:
    """One client process: connect, say ready, get the measuring window, run ``threads`` callers in a
    loop, send back (latencies of successful calls in the window, failures, first failure, CPU s)."""
    from ase_serving.loader import convert
    from ase_serving.loader.client import LoaderClient
    from ase_serving.loader.proto import loader_pb2 as pb

    pin(cpus)
    body = convert.once_request(req).SerializeToString()
    lat = array("q")
    lock = threading.Lock()
    errors = [0]
    first_error = [""]

    def caller(client: LoaderClient, measure_from: float, measure_to: float) -> None:
        mine = array("q")
        bad = 0
        why = ""
        clock = time.perf_counter_ns
        while True:
            started = time.monotonic()
            if started >= measure_to:
                break
            a = clock()
            try:
                if raw:  # pre-serialised request, only the code read back: the transport alone
                    out = pb.OnceResponse.FromString(client.once_raw(body, timeout=30))
                    code, message = out.code, out.message
                else:
                    res = client.once(req)
                    code, message = res.code, res.message
                ok = code == 0
                if not ok:
                    why = why or f"code {code}: {message}"
            except Exception as exc:
                ok = False
                why = why or f"{type(exc).__name__}: {exc}"
            b = clock()
            if started >= measure_from:
                if ok:
                    mine.append(b - a)
                else:
                    bad += 1
        with lock:
            lat.extend(mine)
            errors[0] += bad
            first_error[0] = first_error[0] or why

    with LoaderClient(target) as client:
        client.once(req)  # connected, and the first call's setup paid, before saying ready
        conn.send("ready")
        measure_from, measure_to = conn.recv()
        workers = [
            threading.Thread(target=caller, args=(client, measure_from, measure_to)) for _ in range(threads)
        ]
        for w in workers:
            w.start()
        time.sleep(max(0.0, measure_from - time.monotonic()))
        cpu0 = time.process_time()
        time.sleep(max(0.0, measure_to - time.monotonic()))
        cpu1 = time.process_time()
        for w in workers:
            w.join()
    conn.send((lat.tobytes(), errors[0], first_error[0], cpu1 - cpu0))
    conn.close()


def run_load(
    name: str,
    target: str,
    req: Request,
    concurrency: int,
    procs: int,
    client_cpus: set[int] | None,
    server_pid: int,
    warmup_s: float,
    seconds: float,
    raw: bool = False,
) -> Point:
    """``concurrency`` callers spread over ``procs`` client processes: ``warmup_s``, then ``seconds``
    measured, the same window in every process."""
    procs = max(1, min(procs, concurrency))
    per = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    ctx = mp.get_context("spawn")  # never fork a process that may hold grpc threads
    pipes, children = [], []
    try:
        for n in per:
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(
                target=_client_main, args=(target, req, n, client_cpus, raw, child_end), daemon=True
            )
            p.start()
            child_end.close()
            pipes.append(parent_end)
            children.append(p)
        for conn in pipes:
            if not conn.poll(60) or conn.recv() != "ready":
                raise RuntimeError(f"{name}: a client process did not get ready within 60 s")
        measure_from = time.monotonic() + warmup_s
        measure_to = measure_from + seconds
        for conn in pipes:
            conn.send((measure_from, measure_to))
        time.sleep(max(0.0, measure_from - time.monotonic()))
        srv0, busy0 = tree_cpu_s(server_pid), machine_busy_s()
        time.sleep(max(0.0, measure_to - time.monotonic()))
        srv1, busy1 = tree_cpu_s(server_pid), machine_busy_s()
        point = Point(name, concurrency, seconds)
        point.server_cpu_s = sum(srv1) - sum(srv0)
        point.worker_cpu_s = srv1[1] - srv0[1]
        point.machine_busy_s = busy1 - busy0
        for conn in pipes:
            if not conn.poll(60):
                raise RuntimeError(f"{name}: a client process did not report within 60 s")
            lat_bytes, bad, why, cpu = conn.recv()
            point.lat_ns.extend(array("q", bytes(lat_bytes)))
            point.errors += bad
            point.first_error = point.first_error or why
            point.client_cpu_s += cpu
    finally:
        for p in children:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    return point


def banner(quiet_wait_s: float) -> dict[str, str]:
    """Print the machine, commit, command and time a result belongs to; wait for a quiet machine."""
    info = machine()
    print(f"machine: {info}; commit {commit()}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", flush=True)
    if quiet_wait_s > 0:
        pct = wait_quiet(10.0, quiet_wait_s)
        print(f"other programs: {pct:.0f}% of a CPU before the start", flush=True)
    return info


def wait_quiet(max_pct: float, timeout_s: float) -> float:
    """Wait (up to ``timeout_s``) for a second in which other programs use < ``max_pct`` % of one CPU;
    returns the last second's busy %. Shared machines are noisy: numbers taken under load mislead."""
    deadline = time.monotonic() + timeout_s
    while True:
        b0 = machine_busy_s()
        time.sleep(1.0)
        pct = 100 * (machine_busy_s() - b0)
        if pct < max_pct or time.monotonic() > deadline:
            return pct
