"""Fixtures of the gateway tests: a real embedded config centre per module, a cluster per module,
and the module's gateway (``gw``: what the module's ``SERVING`` declares)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.support import Cluster, GatewayProcess, Serving
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


@pytest.fixture(scope="module")
def gw(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[GatewayProcess]:
    """The gateway of a test module, on its cluster: the schemas, loaders and gateway that the
    module's ``SERVING`` (a :class:`~tests.gateway.support.Serving`) declares, started once for
    the module (the loaders stay until the cluster closes)."""
    serving = getattr(request.module, "SERVING", None)
    if not isinstance(serving, Serving):
        pytest.fail(
            f"{request.module.__name__} uses the gw fixture but declares no SERVING = Serving(...): "
            "declare what its gateway serves (tests/gateway/support.py)"
        )
    with cluster.start(serving) as gateway:
        yield gateway
