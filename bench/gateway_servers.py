"""The servers of the gateway benchmarks: the bare Starlette + uvicorn baseline, the cluster under
test (embedded config centre, a loader, the gateway), pinning and CPU accounting.

Shared by ``gateway_once.py`` and ``gateway_ws.py``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import itertools
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import loadgen

ROOT = loadgen.ROOT
ECHO = ROOT / "examples" / "echo"
STREAM_ECHO = ROOT / "examples" / "stream_echo"
ONCE_ROUTE = "/v1/private/echo"
SESSION_ROUTE = "/v1/private/stream_echo"
SERVER_CPU = 0
CLIENT_CPU = 1
_TICK = os.sysconf("SC_CLK_TCK")


# -- the body -------------------------------------------------------------------------------------
def text_bytes(n: int, seed: int = 0) -> bytes:
    """``n`` bytes of ASCII text (the echo wrappers take UTF-8 text only), the same every run."""
    rnd = random.Random(seed)
    return bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz      ") for _ in range(n))


def once_body(text: bytes, uid: str | None = None) -> bytes:
    """The public once request for the echo service, compact JSON (``header.uid`` when given)."""
    doc = {
        "header": {"app_id": "bench", **({"uid": uid} if uid is not None else {})},
        "payload": {"text": {"encoding": "utf8", "text": base64.b64encode(text).decode()}},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


# -- the baseline: a bare Starlette + uvicorn app -------------------------------------------------
def bare_app() -> Any:
    """POST /v1/private/echo and a WebSocket on /v1/private/stream_echo: parse the body (orjson, as
    the gateway does), base64-decode each payload text, answer the gateway's response layout with
    the text re-encoded. No schema check, no loader, no metrics."""
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    count = itertools.count(1)

    def echo(body: dict[str, Any], sid: str, status: int | None) -> bytes:
        out: dict[str, Any] = {}
        for entry in body["payload"].values():
            data = base64.b64decode(entry["text"], validate=True)
            item_status = 3 if status is None else status
            out["echo"] = {"encoding": "utf8", "status": item_status, "text": base64.b64encode(data).decode()}
        header: dict[str, Any] = {"code": 0, "message": "success", "sid": sid}
        if status is not None:
            header["status"] = status
        return orjson.dumps({"header": header, "payload": out})

    async def once(request: Request) -> Response:
        body = orjson.loads(await request.body())
        return Response(echo(body, f"bare{next(count):08x}", None), media_type="application/json")

    async def session(ws: WebSocket) -> None:
        await ws.accept()
        sid = f"bare{next(count):08x}"
        try:
            while True:
                body = orjson.loads(await ws.receive_text())
                status = 1 if body["header"].get("status", 1) == 0 else body["header"].get("status", 1)
                await ws.send_text(echo(body, sid, status).decode())
                if status == 2:
                    await ws.close(1000)
                    return
        except WebSocketDisconnect:
            return

    return Starlette(
        routes=[Route(ONCE_ROUTE, once, methods=["POST"]), WebSocketRoute(SESSION_ROUTE, session)]
    )


def serve_bare(host: str, port: int, loop: str) -> int:
    """Run the bare app like the gateway runs (uvicorn, one process, the same event loop, no access log)."""
    import uvicorn

    from ase_serving.addr import announce, url
    from ase_serving.gateway.server import WS_MAX_SIZE, bind

    sock = bind(host, port)
    announce("bare", url("http", host, sock.getsockname()[1]))
    config = uvicorn.Config(
        bare_app(),
        log_level="warning",
        access_log=False,
        server_header=False,
        ws_max_size=WS_MAX_SIZE,
        lifespan="off",
        loop=loop,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


# -- pinning, CPU accounting ----------------------------------------------------------------------
def can_pin() -> bool:
    return bool(shutil.which("taskset")) and loadgen.can_pin(2)


def taskset(cpu: int, pin: bool) -> list[str]:
    return ["taskset", "-c", str(cpu)] if pin else []


def cpu_busy_s() -> dict[int, float]:
    """CPU seconds each CPU has been busy (not idle or iowait) since boot, from /proc/stat."""
    out: dict[int, float] = {}
    with contextlib.suppress(OSError, ValueError), open("/proc/stat") as fh:
        for line in fh:
            name, *vals = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                f = [int(v) for v in vals]
                out[int(name[3:])] = (sum(f[:8]) - f[3] - f[4]) / _TICK
    return out


def tree_s(pid: int) -> float:
    return sum(loadgen.tree_cpu_s(pid))


@dataclass
class Window:
    """CPU used by the server processes and by each CPU between :meth:`start` and :meth:`stop`."""

    pids: dict[str, int]
    seconds: float = 0.0
    proc_s: dict[str, float] = field(default_factory=dict)
    cpu_pct: dict[int, float] = field(default_factory=dict)

    def start(self) -> Window:
        self._t = time.monotonic()
        self._p = {k: tree_s(p) for k, p in self.pids.items()}
        self._c = cpu_busy_s()
        return self

    def stop(self) -> Window:
        self.seconds = time.monotonic() - self._t
        self.proc_s = {k: tree_s(p) - self._p[k] for k, p in self.pids.items()}
        c = cpu_busy_s()
        self.cpu_pct = {k: 100 * (c[k] - self._c.get(k, 0.0)) / self.seconds for k in c}
        return self


# -- the servers ----------------------------------------------------------------------------------
class Cluster:
    """A config centre, loaders and one gateway, every process pinned to CPU 0 (when ``pin``) and in
    its own process group; :meth:`stop` ends them all. ``ASE_HOME`` and the ``ASE_CONFIG_*``
    settings of this process point at the cluster while it runs (the loaders read them)."""

    def __init__(self, loaders: list[tuple[Path, list[str]]], pin: bool, gateway_args: list[str]) -> None:
        self.loaders_wanted = loaders
        self.pin = pin
        self.gateway_args = gateway_args
        self.servers: list[loadgen.LoaderServer] = []
        self.tmp: str | None = None
        self.url = ""
        self.pids: dict[str, int] = {}
        self._env: dict[str, str | None] = {}
        self.config, self.password = "", ""

    def _start(self, cmd: list[str]) -> loadgen.LoaderServer:
        server = loadgen.LoaderServer(cmd, None)
        self.servers.append(server)
        server.start(timeout_s=90.0)
        assert server.proc is not None
        return server

    def _setenv(self, **values: str) -> None:
        for k, v in values.items():
            self._env.setdefault(k, os.environ.get(k))
            os.environ[k] = v

    def start(self) -> Cluster:
        self.tmp = tempfile.mkdtemp(prefix="ase-bench-gateway-")
        tmp = Path(self.tmp)
        py, pin0 = sys.executable, taskset(SERVER_CPU, self.pin)
        self._setenv(ASE_HOME=str(tmp / "home"))
        cfg = self._start(
            [*pin0, py, "-m", "ase_serving.store.embedded", "--port", "0", "--data", str(tmp / "cfg")]
        )
        password = (tmp / "cfg" / "admin.password").read_text().strip()
        self._setenv(ASE_CONFIG_ADDRESS=cfg.target, ASE_CONFIG_ACCOUNT="admin", ASE_CONFIG_PASSWORD=password)
        assert cfg.proc is not None
        self.pids["config"] = cfg.proc.pid
        for project, args in self.loaders_wanted:
            extra = ["--workers", "1", "--metrics-port", "0", "--log-level", "warning", *args]
            loader = self._start([*pin0, *loadgen.loader_cmd(project, extra)])
            assert loader.proc is not None
            self.pids[f"loader {project.name}"] = loader.proc.pid
        self.config, self.password = cfg.target, password
        gw = self.add_gateway(self.gateway_args)
        assert gw.proc is not None
        self.pids["gateway"] = gw.proc.pid
        self.url = gw.target
        return self

    def add_gateway(self, args: list[str]) -> loadgen.LoaderServer:
        """One more gateway on this cluster (one worker, pinned like the rest; ``--auth off`` unless
        ``args`` name an ``--auth``)."""
        cmd = [*taskset(SERVER_CPU, self.pin), sys.executable, "-m", "ase_serving.gateway", "--port", "0"]
        cmd += ["--workers", "1", "--config", self.config, "--account", "admin", "--password", self.password]
        return self._start([*cmd, *args, *([] if "--auth" in args else ["--auth", "off"])])

    def stop(self) -> None:
        for server in reversed(self.servers):  # the gateway first, the config centre last
            server.stop()
        self.servers.clear()
        for k, v in self._env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._env.clear()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def bare_server(pin: bool, loop: str) -> Iterator[loadgen.LoaderServer]:
    cmd = [
        *taskset(SERVER_CPU, pin),
        sys.executable,
        str(Path(__file__).resolve().with_name("gateway_once.py")),
        "--serve-bare",
    ]
    cmd += ["--loop", loop] if loop != "auto" else []
    with loadgen.serving(cmd, None) as server:
        yield server


def until(what: str, check: Callable[[], str | None], timeout_s: float = 60.0) -> None:
    """Call ``check`` until it returns None (fine); else fail after ``timeout_s`` with its last word."""
    deadline = time.monotonic() + timeout_s
    why = "?"
    while time.monotonic() < deadline:
        try:
            problem = check()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return
        why = problem
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready within {timeout_s:g} s: {why}")


def post_echo(
    url: str, body: bytes, text: bytes, headers: dict[str, str] | None = None, route: str = ONCE_ROUTE
) -> str | None:
    """POST the body once to ``route``; None if the answer is code 0 with the same text, else what is
    wrong."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("POST", route, body, {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        return f"HTTP {resp.status}: {raw[:200]!r}"
    doc = json.loads(raw)
    got = base64.b64decode(doc.get("payload", {}).get("echo", {}).get("text", ""))
    if doc.get("header", {}).get("code") != 0 or got != text:
        return f"wrong answer: {raw[:200]!r}"
    return None


# -- shared by both benches --------------------------------------------------------------------
def gateway_loop(wanted: str | None) -> tuple[str, list[str]]:
    """The event loop both servers run (the gateway's default unless ``wanted``) and the gateway's
    flags for it. A gateway without a loop setting runs uvicorn's default ("auto": uvloop when
    installed)."""
    from ase_serving.gateway.settings import GatewaySettings

    default = getattr(GatewaySettings(), "loop", None)
    if default is None:
        if wanted is not None:
            sys.exit("error: this gateway has no --loop setting; run without --loop")
        return "auto", []
    return wanted or default, ["--loop", wanted or default]


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP end the bench like Ctrl-C does: through the cleanup of every server."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    # Ctrl-C too, also where the bench was started with SIGINT ignored (a shell's background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)


def finish(out: dict[str, Any], path: Path | str | None) -> int:
    """Write the result document to ``path`` (when given) and say so; the bench's exit code."""
    if path:
        Path(path).write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nwrote {path}")
    return 0


def run_main(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s code; 130 after Ctrl-C (the servers are stopped by then)."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: every server stopped", file=sys.stderr)
        sys.exit(130)


def run_header(machine: dict[str, str]) -> dict[str, Any]:
    """What every result document starts with: when, the command, the commit, the machine."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([sys.executable, *sys.argv]),
        "commit": loadgen.commit(),
        "machine": machine,
    }
