"""Start a real ``asectl loader run`` process and talk to it (shared by tests, examples and the bench).

    with start_loader(WRAPPERS / "echo", "--workers", "2") as loader:
        result = loader.client().once(Request(...))

The loader runs in its own process group; ``stop()`` sends SIGTERM (drain) and waits,
``kill()``/leaving the ``with`` block kills the whole group (supervisor and workers) so nothing
outlives a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ase_serving.loader.client import LoaderClient

T = TypeVar("T")

WRAPPERS = Path(__file__).resolve().parent / "wrappers"
#: The CLI as a user runs it, without depending on the console script being on PATH.
ASECTL = [sys.executable, "-m", "ase_serving.cli.main"]


class LoaderProcess:
    """A running ``asectl loader run``: its address, metrics URL, stderr and clients."""

    def __init__(self, proc: subprocess.Popen[str], stderr_path: Path, line: str) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self.line = line
        # "loader NAME VERSION serving on HOST:PORT (...); grpc HOST:PORT; metrics URL"
        #: The data port (what the loader registers and gateways call).
        self.address = line.split(" serving on ", 1)[1].split(" ", 1)[0]
        #: The gRPC interop port (what LoaderClient and `asectl loader call` use).
        self.grpc = line.split("; grpc ", 1)[1].split(";", 1)[0].strip()
        self.metrics_url: str | None = (
            line.split("; metrics ", 1)[1].strip() if "; metrics " in line else None
        )
        self._clients: list[LoaderClient] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self, timeout: float | None = 30.0) -> LoaderClient:
        """A new client (closed when the loader is stopped)."""
        c = LoaderClient(self.grpc, timeout=timeout)
        self._clients.append(c)
        return c

    def http(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` on the metrics endpoint -> (status, body)."""
        assert self.metrics_url is not None, "this loader runs without a metrics endpoint"
        url = self.metrics_url.rsplit("/metrics", 1)[0] + path
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` to the supervisor and wait for its exit code (kills the group on timeout)."""
        self._close_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.proc.returncode

    def kill(self) -> None:
        """Kill the supervisor and every worker (its process group)."""
        self._close_clients()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def finish(self) -> None:
        """End it after a test: at once (:meth:`kill`), or, while coverage measures the processes
        tests start, by SIGTERM first, so that every process of it writes its coverage data."""
        if measured() and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(signal.SIGTERM, timeout=15.0)
        self.kill()

    def _close_clients(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()

    def __enter__(self) -> LoaderProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.finish()


def measured() -> bool:
    """Whether coverage measures the processes tests start (``scripts/test --cov``): then they
    are ended gracefully, since a process killed with SIGKILL writes no coverage data."""
    return bool(os.environ.get("COVERAGE_PROCESS_CONFIG") or os.environ.get("COVERAGE_PROCESS_START"))


#: The loader that ``asectl loader run`` becomes, started with the same argument and flags: the
#: command line tool's own start (Typer, the options' check) is not what these tests are about, and
#: costs a Python start each (tests/cli/test_loader_run_options.py starts it through asectl).
LOADER = [sys.executable, "-m", "ase_serving.cli.loader_serve"]


def start_loader(
    project: str | Path,
    *args: str,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    via_asectl: bool = False,
) -> LoaderProcess:
    """Run the loader of PROJECT with ARGS (port 0, a free metrics port) until its ready line:
    ``python -m ase_serving.cli.loader_serve``, or with ``via_asectl`` ``asectl loader run`` (which
    becomes it).

    Raises ``RuntimeError`` with the loader's stderr when it exits or is not ready within ``timeout``.
    """
    cmd = [*([*ASECTL, "loader", "run"] if via_asectl else LOADER), str(project), "--port", "0", *args]
    if "--metrics-port" not in args:
        cmd += ["--metrics-port", "0"]
    proc, err = spawn(cmd, "ase-loader-", env)
    try:
        line = read_ready_line(proc, lambda text: " serving on " in text, timeout)
    except RuntimeError as exc:
        LoaderProcess(proc, err, "- serving on ? ").kill()
        raise RuntimeError(f"loader not ready ({exc}): {err.read_text()}") from None
    return LoaderProcess(proc, err, line.strip())


def spawn(
    cmd: list[str], prefix: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], Path]:
    """Start ``cmd`` in its own process group: stdout piped (for its ready line), stderr to a new
    temp file ``prefix*.log`` (returned), no stdin, ``env`` over this environment."""
    err = Path(tempfile.mkstemp(prefix=prefix, suffix=".log")[1])
    with err.open("w") as err_fh:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err_fh,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return proc, err


def read_ready_line(proc: subprocess.Popen[str], is_ready: Any, timeout: float) -> str:
    """Read ``proc``'s stdout until a line for which ``is_ready(line)`` holds; return that line.

    ``RuntimeError`` (saying "exit N" or "no ready line in T s") when the process exits or the
    deadline passes first; the caller kills the process and adds its log."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no ready line in {timeout:g} s")
            if not sel.select(min(left, 0.1)):
                continue
            line = proc.stdout.readline()
            if is_ready(line):
                return line
            if not line:  # stdout closed: the process is exiting
                try:
                    code = proc.wait(10)
                except subprocess.TimeoutExpired:
                    code = None
                raise RuntimeError(f"exit {code}")


def stop_group(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
    """Send ``sig`` to ``proc``'s process group and wait; SIGKILL the group after ``timeout``.

    Returns the exit code (None if it never ran); safe to call on an ended process."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def project_copy(name: str, dest: Path, toml: str = "") -> Path:
    """Copy ``tests/wrappers/<name>`` to ``dest`` and append ``toml`` to its ase.toml."""
    target = dest / name
    shutil.copytree(WRAPPERS / name, target)
    if toml:
        with (target / "ase.toml").open("a") as fh:
            fh.write("\n" + toml + "\n")
    return target


def validate_openapi(doc: Any) -> None:
    """openapi-spec-validator's check of an OpenAPI document, imported on first use: its import
    takes 0.16 s, which every test worker would otherwise pay to collect the modules that use it."""
    from openapi_spec_validator import validate

    validate(doc)


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition", interval: float = 0.01) -> Any:
    """Poll ``predicate`` (every ``interval`` s) until it returns something truthy;
    ``AssertionError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def run(work: Awaitable[T] | Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    """Run a coroutine (or a function that makes one) to its end in a fresh event loop, with an
    overall deadline (``TimeoutError`` after ``timeout`` s, a generous bound) so that a hang fails
    the test instead of stalling the run."""

    async def main() -> T:
        return await asyncio.wait_for(work() if callable(work) else work, timeout)

    return asyncio.run(main())


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0, interval: float = 0.02) -> None:
    """Run the event loop until ``check()`` (sync, or a coroutine) holds; an assertion naming
    ``what`` after ``timeout`` s (a generous bound, never a measurement). ``interval`` 0 only
    lets every ready callback run between checks (nothing then waits on a timer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


#: Commands whose tests check what they print and exit with, not a process: ``asectl()`` runs them
#: in this process with Typer's CliRunner (a Python start and its imports saved each time). The
#: others run as a process: servers (``loader run``, ``config serve``, ``api web``...), ``loader
#: test`` (it imports the project's wrapper.py, a module of that name for every project), ``init``
#: and ``down`` (they start and stop background processes), ``config edit`` (its editor's
#: temporary file follows ``$TMPDIR``, which Python reads once), ``images`` and ``loader build``.
IN_PROCESS = (
    ("cluster",),
    ("loader", "new"),
    ("api", "create"),
    ("api", "gen"),
    ("config", "upload"),
    ("config", "list"),
    ("config", "show"),
    ("config", "history"),
    ("config", "rollback"),
    ("config", "delete"),
    ("consumer",),
    ("account",),
    ("setup",),
    ("call",),
)


def asectl(
    *args: str | Path,
    home: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    process: bool | None = None,
) -> subprocess.CompletedProcess[str]:
    """``asectl ARGS`` as a user runs it: no terminal (stdin closed), none of this environment's
    ``ASE_*`` settings but ``$ASE_HOME`` = ``home`` (when given) and ``env``. A command of
    :data:`IN_PROCESS` runs in this process unless ``process`` is True (then, and for the others,
    ``python -m ase_serving.cli.main``)."""
    argv = [str(a) for a in args]
    unset = [k for k in os.environ if k.startswith("ASE_")]
    given = {**({"ASE_HOME": str(home)} if home is not None else {}), **(env or {})}
    if process is None:
        process = not any(tuple(argv[: len(cmd)]) == cmd for cmd in IN_PROCESS)
    if not process:
        return _in_process(argv, {**dict.fromkeys(unset), **given}, cwd)
    full = {k: v for k, v in os.environ.items() if k not in unset}
    full.update(given)
    return subprocess.run(
        [*ASECTL, *argv],
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def _in_process(
    argv: list[str], env: dict[str, str | None], cwd: Path | None
) -> subprocess.CompletedProcess[str]:
    """``asectl ARGV`` through CliRunner, as a CompletedProcess: an exception that escapes the
    command is a traceback on stderr and exit status 1, as Python's own would be."""
    import traceback

    from typer.testing import CliRunner

    from ase_serving.cli.main import make_app

    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        result = CliRunner().invoke(make_app(argv), argv, env=env, prog_name="asectl")
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        info = result.exc_info
        assert info is not None
        stderr += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(*info))
        code = 1
    return subprocess.CompletedProcess([*ASECTL, *argv], code, result.stdout, stderr)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line of a failed command (no traceback, nothing else)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (openssl), as ``(cert.pem, key.pem)`` in ``folder``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def cli_tools_imported_by(*modules: str) -> list[str]:
    """Which of Typer, Click, Rich and pydantic a fresh Python has loaded after importing ``modules``
    (what a server that ``asectl`` becomes must not carry)."""
    tools = "{'typer', 'click', 'rich', 'pydantic'}"
    code = f"import sys, {', '.join(modules)}; "
    code += f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & {tools})))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    return proc.stdout.split()
