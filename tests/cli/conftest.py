"""Fixtures the asectl tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.store.embedded_server import EmbeddedServer, start_embedded


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A real embedded config centre, one per test module."""
    with start_embedded(tmp_path_factory.mktemp("centre") / "configd") as server:
        yield server
