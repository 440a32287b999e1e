"""Shared fixtures: factories that start real loaders and end them (and their workers) at teardown."""

from __future__ import annotations

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
