"""Fixtures for the store tests: real servers, and one object per backend for the contract suite.

``config_backend`` runs a test once per backend (embedded, etcd, configmap); ``registry_backend``
once per backend that has a registry (embedded, etcd). Each test gets its own project name
(``case.project``), so tests can share a server without seeing each other's items.

Tests drive async code with ``case.run(body)``: it runs ``body()`` in a fresh event loop and
closes the clients opened in it (a client belongs to the loop that opened it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ase_serving.store import Backend, ConfigItem, ConfigKey, ConfigStore, NotFound, Registry
from tests.store.etcd_server import EtcdServer, start_etcd

T = TypeVar("T")

CONFIG_BACKENDS = ["embedded", "etcd", "configmap"]
REGISTRY_BACKENDS = ["embedded", "etcd"]
#: How long a configmap store may take to notice a file change.
RELOAD_DEADLINE = 10.0

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test of this session uses (servers are shared within a module)."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running embedded config centre (shared by the tests of a module)."""
    from tests.store.embedded_server import start_embedded

    server = start_embedded(tmp_path_factory.mktemp("embedded"))
    try:
        yield server
    finally:
        server.finish()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """A running etcd (shared by the tests of a module)."""
    server = start_etcd(tmp_path_factory.mktemp("etcd") / "data")
    try:
        yield server
    finally:
        server.kill()


async def take(events: AsyncIterator[T], n: int, timeout: float = 15.0) -> list[T]:
    """The next ``n`` events, or an assertion error naming what did arrive."""
    got: list[T] = []
    if n == 0:
        return got

    async def collect() -> None:
        async for event in events:
            got.append(event)
            if len(got) == n:
                return

    try:
        await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"expected {n} events within {timeout:g} s, got {len(got)}: {got}") from None
    return got


class Case:
    """One backend under test: opens clients inside the running loop, closes them after ``run``."""

    def __init__(self, kind: str, opener: Callable[[], Backend]) -> None:
        self.kind = kind
        self.project = unique("p")
        self._opener = opener
        self._opened: list[Backend] = []
        self._current: Backend | None = None

    def open(self) -> Backend:
        """A new client of the same store (a second connection); closed at the end of ``run``."""
        backend = self._opener()
        self._opened.append(backend)
        return backend

    @property
    def backend(self) -> Backend:
        if self._current is None:
            self._current = self.open()
        return self._current

    def run(self, body: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
        """Run ``body()`` in a new event loop (with a deadline); close every client it opened."""

        async def main() -> T:
            try:
                return await asyncio.wait_for(body(), timeout)
            finally:
                opened, self._opened, self._current = self._opened, [], None
                for backend in opened:
                    await backend.close()

        return asyncio.run(main())


class ConfigCase(Case):
    """``.store`` and the way a user changes this backend: the store's API, or files (configmap)."""

    def __init__(self, kind: str, opener: Callable[[], Backend], directory: Path | None = None) -> None:
        super().__init__(kind, opener)
        self.directory = directory

    @property
    def store(self) -> ConfigStore:
        return self.backend.config

    def second_store(self) -> ConfigStore:
        """Another client of the same store, to resume a watch on. A configmap store counts its
        revisions in memory, so there it is the same store (a new watch on it)."""
        return self.store if self.directory is not None else self.open().config

    def key(self, name: str, service: str = "svc", version: str = "1", group: str = "default") -> ConfigKey:
        return ConfigKey(self.project, group, service, version, name)

    async def write(self, key: ConfigKey, content: bytes) -> ConfigItem:
        """Change an item the way a user would; returns the new revision as the store reports it."""
        if self.directory is None:
            return await self.store.put(key, content)
        before = await _revision_or_zero(self.store, key)
        write_file(self.directory, key, content)
        return await _until(lambda: _newer(self.store, key, before), f"configmap to load {key.path}")

    async def remove(self, key: ConfigKey) -> int:
        """Delete an item the way a user would; returns the store revision of the delete."""
        if self.directory is None:
            return await self.store.delete(key)
        remove_file(self.directory, key)

        async def gone() -> int | None:
            try:
                await self.store.get(key)
            except NotFound:
                _, revision = await self.store.list()
                return revision
            return None

        return await _until(gone, f"configmap to drop {key.path}")


def write_file(directory: Path, key: ConfigKey, content: bytes) -> None:
    """Change one item in a ConfigMap-style directory (atomically, as kubelet does)."""
    path = directory / key.path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def remove_file(directory: Path, key: ConfigKey) -> None:
    (directory / key.path).unlink()


class RegistryCase(Case):
    @property
    def registry(self) -> Registry:
        registry = self.backend.registry
        assert registry is not None, f"{self.kind} has no registry"
        return registry

    def service(self) -> str:
        return unique("svc")


async def _revision_or_zero(store: ConfigStore, key: ConfigKey) -> int:
    try:
        return (await store.get(key)).revision
    except NotFound:
        history: list[ConfigItem] = []
        with contextlib.suppress(NotFound):
            history = await store.history(key)
        return max((i.revision for i in history), default=0)


async def _newer(store: ConfigStore, key: ConfigKey, before: int) -> ConfigItem | None:
    try:
        item = await store.get(key)
    except NotFound:
        return None
    return item if item.revision > before else None


async def _until(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    deadline = time.monotonic() + RELOAD_DEADLINE
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {RELOAD_DEADLINE:g} s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture(params=CONFIG_BACKENDS)
def config_backend(request: pytest.FixtureRequest, tmp_path: Path) -> ConfigCase:
    """The contract suite's config store, once per backend."""
    kind: str = request.param
    if kind == "configmap":
        from ase_serving.store.configmap import DirConfigStore

        directory = tmp_path / "configmap"
        directory.mkdir()

        def opener() -> Backend:
            # Polled 10x more often than by default, so that the many writes of the suite stay fast.
            store = DirConfigStore(directory, poll_interval=0.05)
            return Backend("configmap", f"configmap://{directory}", store, None)

        return ConfigCase(kind, opener, directory)
    server = request.getfixturevalue(kind)
    return ConfigCase(kind, server.backend)


@pytest.fixture(params=REGISTRY_BACKENDS)
def registry_backend(request: pytest.FixtureRequest) -> RegistryCase:
    """The contract suite's registry, once per backend that has one."""
    server = request.getfixturevalue(request.param)
    return RegistryCase(request.param, server.backend)
