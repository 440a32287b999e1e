"""Helpers shared by the examples' tests (``from examples.support import ...``).

Each example is tested at three levels, as a plugin author works: the engine logic in-process
through ``EngineHost`` (what the loader's workers run), the project's own test cases through
``asectl loader test``, and a real ``asectl loader run`` process called through ``LoaderClient``
(``tests.support.start_loader``).
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase_serving.errors import AseError
from ase_serving.loader.host import EngineHost, EngineSession
from ase_serving.loader.project import load_project
from ase_serving.protocol.items import DataItem, DataType, Request, Status
from ase_serving.wrapper import load_plugin
from tests.support import LoaderProcess, start_loader

if TYPE_CHECKING:
    from tests.gateway.support import GatewayProcess

EXAMPLES = Path(__file__).resolve().parent
#: The console script a user runs; the module form where it is not installed next to python.
_SCRIPT = Path(sys.executable).with_name("asectl")
ASECTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ase_serving.cli.main"]


def example_dir(name: str) -> Path:
    return EXAMPLES / name


def start_host(name: str) -> EngineHost:
    """Load ``examples/<name>`` and run its wrapperInit with the [wrapper] table of its ase.toml."""
    settings = load_project(example_dir(name))
    host = EngineHost(load_plugin(settings.project_dir, settings.modes or None))
    host.init(settings.wrapper_config)
    return host


def text_item(key: str, text: str, status: int = Status.ONCE) -> DataItem:
    return DataItem(key=key, data=text.encode(), status=status, desc={"encoding": "utf8"})


def audio_item(data: bytes, status: int, key: str = "audio") -> DataItem:
    desc = {"encoding": "raw", "sample_rate": "16000", "channels": "1", "bit_depth": "16"}
    return DataItem(key=key, data=data, status=status, type=DataType.AUDIO, desc=desc)


@dataclass
class SessionRun:
    """What one in-process session produced: every result batch, in order, and how it ended."""

    batches: list[tuple[str, list[DataItem]]] = field(default_factory=list)  # ("read"|"push", items)
    code: int = 0
    message: str = "success"
    destroy_code: int = 0

    def texts(self, key: str) -> list[tuple[int, str]]:
        """(status, text) of every result item named ``key``."""
        return [(i.status, i.data.decode()) for _, items in self.batches for i in items if i.key == key]


def run_session(
    host: EngineHost,
    first: Request,
    frames: list[tuple[int, list[DataItem]]],
    results: str = "auto",
    timeout_s: float = 15.0,
) -> SessionRun:
    """Drive one session the way a loader worker does (EngineSession), waiting for async results.

    ``first`` opens the session (its items are the first frame's data); ``frames`` are the later
    (status, items). Every wait is bounded by ``timeout_s``.
    """
    pushes: queue.Queue[tuple[str, list[DataItem], int, str]] = queue.Queue()
    host.install_callback(lambda h, items, code, msg: pushes.put((h, items, code, msg)))
    run = SessionRun()
    handle = host.create(first)
    state = EngineSession(host, handle, results)

    def drain_pushes(block: bool) -> bool:
        """Move pushed results into ``run``; True when the session ended."""
        while True:
            try:
                h, items, code, msg = pushes.get(timeout=timeout_s) if block else pushes.get_nowait()
            except queue.Empty:
                if block:
                    run.code, run.message = 10114, "no async result before the deadline"
                    return True
                return False
            assert h == handle, f"callback for unknown handle {h!r}"
            if code != 0:
                run.code, run.message = code, msg
                return True
            run.batches.append(("push", items))
            if state.push(items):
                return True
            block = False

    try:
        all_frames = [(first.status, first.items), *frames]
        for status, items in all_frames:
            out, ended, wait = state.frame(status, items)
            if out:
                run.batches.append(("read", out))
            if drain_pushes(block=False) or ended:
                break
            if wait:
                while not drain_pushes(block=True):
                    pass
                break
    except AseError as exc:  # the wrapper failed: the session ends with its code
        run.code, run.message = exc.code, exc.message
    finally:
        run.destroy_code = state.destroy().code
        host.install_callback(lambda *a: None)
    return run


def loader_test(name: str) -> dict[str, Any]:
    """``asectl loader test examples/<name> --json`` as a user runs it -> the parsed report."""
    proc = subprocess.run(
        [*ASECTL, "loader", "test", str(example_dir(name)), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip(), f"no JSON on stdout (exit {proc.returncode}); stderr: {proc.stderr}"
    report: dict[str, Any] = json.loads(proc.stdout)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert (proc.returncode == 0) == report["ok"], (proc.returncode, report)
    return report


def failed_cases(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in report.get("cases", []) if not c.get("ok")]


def serve(name: str) -> Iterator[LoaderProcess]:
    """A real ``asectl loader run examples/<name>`` for a module-scoped fixture; killed after."""
    with start_loader(example_dir(name), timeout=60) as loader:
        loader.client().wait_ready(30)
        yield loader


@contextlib.contextmanager
def through_gateway(name: str, tmp: Path, *loader_args: str) -> Iterator[GatewayProcess]:
    """``examples/<name>`` behind a real gateway: an embedded config centre, the example's loader
    (which pushes its own schema) and a gateway, until the route answers with a loader behind it."""
    from tests.gateway.support import Cluster
    from tests.store.embedded_server import start_embedded

    with start_embedded(tmp / "configd") as centre:
        cluster = Cluster(centre, tmp / "ase-home")
        try:
            settings = load_project(example_dir(name))
            cluster.loader(example_dir(name), *loader_args)
            with cluster.gateway() as gw:
                gw.wait_route(f"/v1/private/{settings.service}", timeout=60)
                gw.wait_loaders(settings.service, 1, timeout=60)
                yield gw
        finally:
            cluster.close()
