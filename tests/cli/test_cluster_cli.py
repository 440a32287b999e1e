"""`asectl cluster status` against a real config centre, registry and loader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ase_serving.store import ConfigKey, Instance
from tests.cli.cluster_support import set_up
from tests.store.embedded_server import EmbeddedServer
from tests.store.etcd_server import free_port
from tests.support import WRAPPERS, LoaderProcess, asectl, one_line_error, start_loader

pytestmark = pytest.mark.timeout(90)

SCHEMA = {
    "meta": {"serviceId": "echo", "version": "1.0", "route": ["/v1/echo", "/v2/echo"]},
    "schemainput": {"type": "object"},
    "schemaoutput": {"type": "object"},
}


@pytest.fixture(scope="module")
def loader() -> Iterator[LoaderProcess]:
    with start_loader(WRAPPERS / "echo") as proc:
        yield proc


def populate(centre: EmbeddedServer, instances: list[Instance]) -> None:
    async def run() -> None:
        backend = centre.backend()
        try:
            await backend.config.put(
                ConfigKey("default", "default", "echo", "1.0", "echo.json"), json.dumps(SCHEMA).encode()
            )
            # Not a service schema: not a service either.
            await backend.config.put(ConfigKey("default", "default", "echo", "1.0", "notes.txt"), b"hi")
            assert backend.registry is not None
            for inst in instances:
                await backend.registry.register(inst, ttl=120)
        finally:
            await backend.close()

    asyncio.run(run())


def test_status_lists_components_services_and_instances(
    tmp_path: Path, centre: EmbeddedServer, loader: LoaderProcess
) -> None:
    assert loader.metrics_url is not None
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    lic = {"lic_total": 2, "lic_idle": 1, "live": True}
    populate(
        centre,
        [
            Instance("echo", "1.0", loader.address, {**lic, "metrics_url": loader.metrics_url}),
            Instance("echo", "1.0", "127.0.0.1:1", {**lic, "metrics_url": dead}),
            Instance("ocr", "2", "127.0.0.1:2", {"lic_total": 4, "lic_idle": 4, "live": False}),
            # A name only a compose or Kubernetes network resolves (.invalid never resolves).
            Instance(
                "ocr", "2", "ocr.invalid:50051", {**lic, "metrics_url": "http://ocr.invalid:9100/metrics"}
            ),
        ],
    )
    home = tmp_path / "home"
    set_up(home, centre.url, "admin", centre.password)
    proc = asectl("cluster", "status", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    dead_inst = doc["services"][0]["instances"][0]
    assert dead_inst.pop("error").startswith("ConnectError")
    assert doc == {
        "components": [{"name": "config", "url": centre.url, "healthy": True}],
        "problems": {},
        "services": [
            {
                "serviceId": "echo",
                "version": "1.0",
                "routes": ["/v1/echo", "/v2/echo"],
                "schema": True,
                "instances": [
                    {"address": "127.0.0.1:1", "lic_total": 2, "lic_idle": 1, "healthy": False},
                    {"address": loader.address, "lic_total": 2, "lic_idle": 1, "healthy": True},
                ],
            },
            {
                "serviceId": "ocr",
                "version": "2",
                "routes": [],
                "schema": False,
                "instances": [
                    {
                        "address": "127.0.0.1:2",
                        "lic_total": 4,
                        "lic_idle": 4,
                        "healthy": False,
                        "error": "not live (draining or not ready)",
                    },
                    {
                        "address": "ocr.invalid:50051",
                        "lic_total": 2,
                        "lic_idle": 1,
                        "healthy": None,
                        "error": "live; its /health host 'ocr.invalid' does not resolve from this machine",
                    },
                ],
            },
        ],
    }
    table = asectl("cluster", "status", home=home)
    assert table.returncode == 0, table.stderr
    for text in ("config", centre.url, "echo", "/v1/echo, /v2/echo", loader.address, "1/2", "ocr", "4/4"):
        assert text in table.stdout
    assert "unknown" in table.stdout and "does not resolve from this machine" in table.stdout


def test_unhealthy_components_exit_1_with_the_document(tmp_path: Path, centre: EmbeddedServer) -> None:
    home = tmp_path / "home"
    set_up(home, centre.url, "admin", centre.password)
    settings = json.loads((home / "cluster.json").read_text())
    lb = f"127.0.0.1:{free_port()}"
    settings["regions"]["default"]["lb"] = lb
    (home / "cluster.json").write_text(json.dumps(settings))
    proc = asectl("cluster", "status", "--json", home=home)
    assert proc.returncode == 1
    assert one_line_error(proc) == "error: not healthy: lb; `asectl init` starts a local cluster"
    comps: list[dict[str, Any]] = json.loads(proc.stdout)["components"]
    assert [(c["name"], c["url"], c["healthy"]) for c in comps] == [
        ("config", centre.url, True),
        ("lb", lb, False),
    ]

    # The config centre down: reported, not a crash; no services can be listed then.
    down = tmp_path / "down"
    url = f"http://127.0.0.1:{free_port()}"
    set_up(down, url, "admin", "x")
    proc = asectl("cluster", "status", "--json", home=down)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["services"] == []
    [config] = doc["components"]
    assert (config["name"], config["url"], config["healthy"]) == ("config", url, False)
    assert config["error"].startswith(f"cannot reach the config centre at {url}")
    assert one_line_error(proc) == "error: not healthy: config; `asectl init` starts a local cluster"

    proc = asectl("cluster", "status", home=tmp_path / "empty")
    assert proc.returncode == 1
    assert one_line_error(proc) == "error: no cluster set up: run `asectl init` or `asectl setup`"
