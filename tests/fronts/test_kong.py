"""The Kong example (examples/fronts/kong/kong.yml), checked for structure only: Kong does not
install on this project's machines, so it is never run. What is checked is what would break in
front of this gateway: the service URL, one route per route the example services serve (full
path kept, Host preserved), key-auth with the gateway's key names, consumers whose custom_id is
an app_id, and the gateway command naming the header Kong sets."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ase_serving.envflags import values
from ase_serving.gateway.__main__ import parse_args
from ase_serving.gateway.settings import DEFAULT_PORT, GatewaySettings
from ase_serving.loader.project import load_project
from ase_serving.loader.project_schemas import project_schemas
from ase_serving.schema.loaded import load_service_schema
from ase_serving.schema.openapi import openapi_document
from examples.support import EXAMPLES

KONG = EXAMPLES / "fronts" / "kong"
#: The header Kong's auth plugins set to the consumer's custom_id (fixed by Kong).
KONG_CONSUMER_HEADER = "X-Consumer-Custom-ID"


@pytest.fixture(scope="module")
def kong() -> dict[str, Any]:
    doc = yaml.safe_load((KONG / "kong.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def example_routes() -> set[str]:
    """Every route the example services serve: the schemas their loaders push, made as they make them."""
    routes: set[str] = set()
    for toml in sorted(EXAMPLES.glob("*/ase.toml")):
        for _name, content in project_schemas(load_project(toml.parent)):
            routes.update(load_service_schema(content).routes)
    return routes


def route_path(path: str) -> str:
    """A Kong route path as the literal path it matches: ``~/a/b$`` (regex, exact) -> ``/a/b``."""
    if path.startswith("~"):
        literal = path[1:].removesuffix("$")
        assert path.endswith("$") and not re.search(r"[\\^$.*+?()\[\]{}|]", literal), (
            f"{path}: a regex route should match one exact path"
        )
        return literal
    return path


def test_it_is_a_kong_3_declarative_config_with_one_service(kong: dict[str, Any]) -> None:
    assert kong["_format_version"] == "3.0"
    assert len(kong["services"]) == 1


def test_the_service_points_at_the_gateway_port_with_session_long_timeouts(kong: dict[str, Any]) -> None:
    svc = kong["services"][0]
    url = urlsplit(svc["url"])
    assert url.scheme == "http" and url.port == DEFAULT_PORT and url.path in ("", "/")
    d = GatewaySettings()
    for name in ("read_timeout", "write_timeout"):
        assert svc[name] / 1000 > max(d.session_timeout, d.queue_timeout + d.once_timeout), name


def test_one_route_per_example_service_route_keeping_path_and_host(kong: dict[str, Any]) -> None:
    routes = kong["services"][0]["routes"]
    paths = [route_path(p) for r in routes for p in r["paths"]]
    assert len(paths) == len(set(paths))
    assert set(paths) == example_routes()
    for r in routes:
        assert set(r["protocols"]) <= {"http", "https"}, r  # these carry WebSocket upgrades too
        assert r["strip_path"] is False and r["preserve_host"] is True, r
        assert "methods" not in r, f"{r['name']}: POST (once) and GET (WebSocket session) both needed"


def test_key_auth_uses_the_gateways_key_names(kong: dict[str, Any]) -> None:
    plugins = {p["name"]: p for p in kong["services"][0]["plugins"]}
    config = plugins["key-auth"]["config"]
    header = openapi_document([])["components"]["securitySchemes"]["apiKey"]["name"]
    assert config["key_names"] == [header, "apikey"]
    assert config["key_in_header"] and config["key_in_query"] and config["hide_credentials"]
    assert plugins["request-size-limiting"]["config"] == {
        "allowed_payload_size": 16,
        "size_unit": "megabytes",
    }


def test_every_consumer_has_a_custom_id_and_a_key(kong: dict[str, Any]) -> None:
    consumers = kong["consumers"]
    assert consumers
    ids = [c["custom_id"] for c in consumers]
    assert all(isinstance(i, str) and i for i in ids) and len(ids) == len(set(ids))
    for c in consumers:
        assert [k["key"] for k in c["keyauth_credentials"]], c


def gateway_command(text: str) -> list[str]:
    """The arguments of the one ``python -m ase_serving.gateway ...`` command in ``text`` (lines
    continued with a backslash, comment marks of kong.yml dropped)."""
    lines = [re.sub(r"^\s*#?\s*", "", line) for line in text.splitlines()]
    starts = [n for n, line in enumerate(lines) if line.startswith("python -m ase_serving.gateway")]
    assert len(starts) == 1, starts
    words, n = "", starts[0]
    while True:
        line = lines[n]
        words += " " + line.removesuffix("\\")
        if not line.endswith("\\"):
            return shlex.split(words)[3:]
        n += 1


@pytest.mark.parametrize("doc", [KONG / "kong.yml", KONG / "README.md"], ids=lambda p: Path(p).name)
def test_the_gateway_command_trusts_the_header_kong_sets(doc: Path) -> None:
    given = values(GatewaySettings, parse_args(gateway_command(doc.read_text())))
    assert given["auth"] == "proxy" and given["trusted_proxies"]
    assert given["consumer_header"] == KONG_CONSUMER_HEADER == GatewaySettings().consumer_header
    settings = GatewaySettings(
        auth=given["auth"], trusted_proxies=given["trusted_proxies"], consumer_header=given["consumer_header"]
    )
    assert settings.check() == []
