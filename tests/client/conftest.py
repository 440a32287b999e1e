"""One real cluster for every client test: embedded config centre, echo and stream_echo loaders, a
gateway. Package-scoped, since each start costs seconds of a small machine's CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.support import example_dir
from tests.gateway.support import Cluster, GatewayProcess, once_body
from tests.store.embedded_server import start_embedded
from tests.support import WRAPPERS, wait_for

#: binecho: the test echo wrapper with bounded parameters and a binary input beside the text one
#: (it sends every input back under its own name and type). The README's example calls the
#: examples' echo and stream_echo, so they run here as they are.
ECHO_YAML = """
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {serviceName: binecho, version: "1.0.0", name: binecho}
spec:
  interface: once
  request:
    parameters:
      properties:
        upper: {type: integer, enum: [0, 1]}
        speed: {type: integer, minimum: 0, maximum: 100}
    payload:
      properties:
        text: {type: text, encoding: [utf8, raw]}
        audio: {type: audio, encoding: [raw]}
  response:
    payload:
      properties:
        text: {type: text, encoding: utf8}
        audio: {type: audio, encoding: raw}
"""


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_embedded(tmp_path_factory.mktemp("centre") / "configd") as centre:
        c = Cluster(centre, Path(tmp_path_factory.mktemp("ase-home")))
        c.put_schema(ECHO_YAML)
        c.loader(WRAPPERS / "echo", "--service", "binecho")
        # The examples push the schemas of their own ai_api.yml.
        c.loader(example_dir("echo"))
        c.loader(example_dir("stream_echo"), "--lic", "4")
        try:
            yield c
        finally:
            c.close()


@pytest.fixture(scope="package")
def gw(cluster: Cluster) -> Iterator[GatewayProcess]:
    """The gateway with authentication on (``--auth gateway``): every test signs or sends a key.

    Not the shared ``gw`` of tests/gateway/conftest.py: this one is package-scoped (one gateway
    for every client test module) on the package's own cluster, whose loaders that fixture starts."""
    with cluster.gateway(auth=True) as gateway:
        yield gateway


@pytest.fixture(scope="package")
def consumer(cluster: Cluster, gw: GatewayProcess) -> dict[str, str]:
    """A consumer of the cluster (``{"app_id", "api_key", "api_secret"}``), known to ``gw`` and
    with every loader reachable through it."""
    creds = cluster.consumer(name="client-tests")
    wait_ready(gw, creds)
    return creds


def wait_ready(gateway: GatewayProcess, creds: dict[str, str]) -> None:
    """Every route live, ``creds`` accepted and every loader reachable through ``gateway``."""
    for route in ("/v1/private/binecho", "/v1/private/echo", "/v1/private/stream_echo"):
        gateway.wait_route(route)
    body = once_body(app_id=creds["app_id"])
    key = {"X-Api-Key": creds["api_key"]}
    for service in ("binecho", "echo"):
        wait_for(
            lambda s=service: gateway.post(f"/v1/private/{s}", body, headers=key).status_code == 200,
            20,
            f"the consumer accepted and the {service} loader reachable through the gateway",
        )
    gateway.wait_loaders("stream_echo", 1)
