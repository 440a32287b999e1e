"""Fixtures of the gateway tests: a real embedded config centre per module, a cluster per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.support import Cluster
from tests.store.embedded_server import EmbeddedServer, start_embedded


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with start_embedded(tmp_path_factory.mktemp("centre") / "configd") as server:
        yield server


@pytest.fixture(scope="module")
def cluster(centre: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(centre, Path(tmp_path_factory.mktemp("ase-home")))
    yield c
    c.close()
