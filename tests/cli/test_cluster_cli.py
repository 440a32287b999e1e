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
from tests.gateway.support import Cluster
from tests.store.embedded_server import EmbeddedServer
from tests.store.etcd_server import free_port
from tests.support import WRAPPERS, LoaderProcess, asectl, one_line_error, start_loader, wait_for

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


def test_status_text_shows_api_and_docs_urls_and_what_the_gateway_does_not_serve(
    tmp_path: Path, centre: EmbeddedServer
) -> None:
    """Two schemas claim one route: the gateway serves the higher version and says so in its
    /health; `cluster status` shows it in text, with each service's API and docs URL."""
    project = "status-text"
    schema = {**SCHEMA, "meta": {"serviceId": "echo", "version": "1.0", "route": "/v1/private/echo"}}
    older = {**SCHEMA, "meta": {"serviceId": "old-echo", "version": "0.5", "route": "/v1/private/echo"}}
    cluster = Cluster(centre, tmp_path / "gateway-home")
    cluster.put(ConfigKey(project, "default", "echo", "1.0", "echo.json"), json.dumps(schema).encode())
    cluster.put(ConfigKey(project, "default", "old-echo", "0.5", "old.json"), json.dumps(older).encode())
    with cluster.gateway("--project", project) as gw:
        wait_for(lambda: gw.health()["problems"], 10, "the conflict in the gateway's /health")
        home = tmp_path / "home"
        set_up(home, centre.url, "admin", centre.password)
        settings = json.loads((home / "cluster.json").read_text())
        settings["regions"]["default"]["project"] = project
        settings["regions"]["default"]["components"] = {"gateway": gw.url}
        (home / "cluster.json").write_text(json.dumps(settings))

        doc = json.loads(asectl("cluster", "status", "--json", home=home).stdout)
        gateway = {c["name"]: c for c in doc["components"]}["gateway"]
        why = (
            f"route /v1/private/echo is served by {project}/default/echo/1.0/echo.json (version 1.0); "
            "this schema (version 0.5) is not served there"
        )
        assert gateway["healthy"] is True
        assert gateway["problems"] == {f"{project}/default/old-echo/0.5/old.json": why}
        services = {s["serviceId"]: s for s in doc["services"]}
        assert services["echo"]["served"] is True and services["old-echo"]["served"] is False
        assert services["echo"]["docs"] == f"{gw.url}/docs?service=echo"

        text = asectl("cluster", "status", home=home)
        assert text.returncode == 0, text.stderr
        out = " ".join(text.stdout.split())  # the table may wrap long cells
        assert f"{gw.url}/v1/private/echo {gw.url}/docs?service=echo" in out
        assert "gateway: problems it reports" in out
        assert f"{project}/default/old-echo/0.5/old.json {why}" in out
        assert "(not served: see above)" in out


def test_config_centre_addresses_compare_by_endpoint() -> None:
    """How `cluster status` tells whether a gateway serves this cluster's config centre."""
    from ase_serving.cluster.status import same_centre

    assert same_centre("http://127.0.0.1:2390", "http://localhost:2390")
    assert same_centre("etcd://10.0.0.5:2379,10.0.0.6:2379", "etcd://10.0.0.6:2379")
    assert same_centre("http://[::1]:2390", "http://127.0.0.1:2390")
    assert not same_centre("http://127.0.0.1:2390", "http://127.0.0.1:2490")
    assert not same_centre("etcd://127.0.0.1:2379", "http://127.0.0.1:2379")
    assert not same_centre("etcd://10.0.0.5:2379", "etcd://10.0.0.7:2379")


def test_a_gateway_of_another_local_centre_is_not_ours_a_remote_name_cannot_be_told(tmp_path: Path) -> None:
    from ase_serving.cluster.status import not_ours
    from ase_serving.cluster_settings import ClusterSettings

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the pid reported is named
    ours = ClusterSettings("http://127.0.0.1:2390")
    other = {"pid": 4242, "config": {"address": "http://127.0.0.1:2490"}}
    assert not_ours("gateway", url, other, ours, tmp_path) == (
        f"what answers at {url} serves the config centre http://127.0.0.1:2490, not this cluster's "
        "(http://127.0.0.1:2390): pid 4242; stop that one, or `asectl down` and `asectl init` this "
        "cluster with another port"
    )
    same = {"pid": 4242, "config": {"address": "http://localhost:2390"}}
    assert not_ours("gateway", url, same, ours, tmp_path) is None
    # A compose or Kubernetes gateway names etcd inside its network: nothing to compare.
    inside = {"pid": 1, "config": {"address": "etcd://etcd:2379"}}
    assert not_ours("gateway", url, inside, ClusterSettings("etcd://127.0.0.1:2379"), tmp_path) is None
