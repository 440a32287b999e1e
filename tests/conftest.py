"""Shared fixtures: factories that start real loaders and end them (and their workers) at teardown."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import LoaderProcess, start_loader

StartLoader = Callable[..., LoaderProcess]


def _factory() -> Iterator[StartLoader]:
    started: list[LoaderProcess] = []

    def start(project: str | Path, *args: str, **kwargs: object) -> LoaderProcess:
        loader = start_loader(project, *args, **kwargs)  # type: ignore[arg-type]
        started.append(loader)
        return loader

    yield start
    for loader in started:
        loader.finish()


@pytest.fixture
def loaders() -> Iterator[StartLoader]:
    """``loaders(project, *flags)`` -> a running loader, killed after the test."""
    yield from _factory()


@pytest.fixture(scope="module")
def module_loaders() -> Iterator[StartLoader]:
    """Like ``loaders`` but shared by a test module (a loader start costs about a second)."""
    yield from _factory()


# -- markers: what a test needs (pyproject.toml declares them; --strict-markers) ---------------

#: Source text that means a module starts real processes (a loader, a config centre, a gateway,
#: etcd, asectl) or reaches the network of this machine.
_PROCESS_SIGNS = (
    "subprocess",
    "start_loader",
    "start_embedded",
    "start_etcd",
    "spawn(",
    "Popen",
    "asectl(",
    "Cluster",
    "GatewayProcess",
    "LoaderProcess",
    "loaders",
    "etcd",
    "embedded",
    "centre",
    "uvicorn",
    "socket",
)


#: Top-level tests that run a user's whole path (the Quick start, one's first engine).
_E2E_FILES = ("test_quickstart.py", "test_first_engine.py")


def _kind(path: Path) -> str:
    text = path.read_text()
    if "playwright" in text:
        return "browser"
    if path.name in ("test_docker_e2e.py",) or "docker_engine" in text:
        return "docker"
    if path.name in _E2E_FILES or path.parent.name == "examples" or "examples" in path.parts[-3:-1]:
        return "e2e"
    return "process" if any(sign in text for sign in _PROCESS_SIGNS) else "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test gets one of ``unit``, ``process``, ``e2e``, ``docker``, ``browser`` from what its
    module does (``pytest -m unit`` is the quick in-process part; ``-m "not docker"``...)."""
    kinds: dict[Path, str] = {}
    for item in items:
        path = Path(str(item.fspath))
        kind = kinds.get(path)
        if kind is None:
            kind = kinds[path] = _kind(path)
        item.add_marker(getattr(pytest.mark, kind))
    # Long modules first, short ones last: under pytest-xdist (scripts/test runs `--dist
    # loadfile`, a module to a worker as one frees up) the short ones then fill the gaps at the
    # end instead of a long module starting last and running alone while the other workers are
    # idle. The Docker module (image builds: minutes) goes first of all; then by the seconds each
    # module took in a recent run (tests/module_seconds.json, from bench/module_seconds), a module
    # not in it by its kind's guess. The sort is stable: modules of equal weight keep pytest's order.
    seconds = _module_seconds()
    weight = {
        path: (kind != "docker", -seconds.get(_relative(path), _GUESS[kind])) for path, kind in kinds.items()
    }
    items.sort(key=lambda item: weight[Path(str(item.fspath))])


#: Seconds a module not in tests/module_seconds.json is taken to last, by its kind.
_GUESS = {"docker": 300.0, "e2e": 20.0, "browser": 15.0, "process": 8.0, "unit": 1.0}
_ROOT = Path(__file__).resolve().parent.parent


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(_ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _module_seconds() -> dict[str, float]:
    """tests/module_seconds.json (module path -> seconds); empty when absent or unreadable."""
    try:
        doc = json.loads((_ROOT / "tests" / "module_seconds.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
