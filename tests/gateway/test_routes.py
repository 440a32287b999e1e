"""The route table and webgate without a server: schemas compiled from config events, conflicts,
relaxed checks of later session frames, and the messages of refused bodies."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from ase_serving.errors import AseError
from ase_serving.gateway import webgate
from ase_serving.gateway.routes import RouteTable, frame_schema
from ase_serving.gateway.settings import GatewaySettings
from ase_serving.schema import from_yaml
from ase_serving.store import ConfigKey
from ase_serving.store.base import ConfigEvent, ConfigItem


def schema(service: str, version: str, route: str | None = None, **limits: float) -> bytes:
    """A compiled ApiSchema: parameter n (integer, at most 3) and a required text input."""
    extra = "".join(f"  {k}: {v}\n" for k, v in limits.items()) + (f"  route: {route}\n" if route else "")
    text = f"""
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {{serviceName: {service}, version: "{version}"}}
spec:
{extra}  request:
    parameters:
      properties:
        n: {{type: integer, maximum: 3}}
    payload:
      properties:
        text: {{type: text}}
      required: [text]
  response:
    payload:
      properties:
        text: {{type: text}}
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ai_api.yml"
        path.write_text(text)
        return from_yaml(path).content()


def put(table: RouteTable, name: str, content: bytes, revision: int = 1) -> ConfigKey:
    key = ConfigKey("p", "g", name, "v", f"{name}.json")
    item = ConfigItem(key, content, revision, revision, time.time())
    table.apply([ConfigEvent("put", key, item, revision)])
    return key


def delete(table: RouteTable, key: ConfigKey) -> None:
    table.apply([ConfigEvent("delete", key, None, 99)])


def test_a_schema_becomes_a_route_with_its_limits() -> None:
    table = RouteTable(GatewaySettings(queue_timeout=7))
    put(table, "a", schema("a", "1.0", max_body=100, read_timeout=2))
    svc = table.lookup("/v1/private/a")
    assert svc is not None and svc.service_id == "a"
    assert (svc.max_body, svc.read_timeout, svc.queue_timeout) == (100, 2, 7)
    assert table.lookup("/v1/private/a/") is svc
    assert table.lookup("/v1/private/b") is None


def test_two_schemas_on_one_route_the_higher_version_wins_and_the_other_is_reported() -> None:
    table = RouteTable(GatewaySettings())
    old = put(table, "old", schema("svc", "1.9.0", "/x"))
    new = put(table, "new", schema("svc", "1.10.0", "/x"))
    svc = table.lookup("/x")
    assert svc is not None and svc.version == "1.10.0"
    assert "is served by p/g/new" in table.problems[old.path]
    delete(table, new)
    svc = table.lookup("/x")
    assert svc is not None and svc.version == "1.9.0"
    assert table.problems == {}


def test_items_that_are_not_service_schemas_are_ignored_and_broken_ones_reported() -> None:
    table = RouteTable(GatewaySettings())
    put(table, "notes", b"just text")
    assert table.routes == {} and table.problems == {}
    bad = put(table, "bad", b'{"meta": {"serviceId": "bad", "version": "1"}, "schemainput": {"type": 5}}')
    assert table.routes == {} and "schemainput" in table.problems[bad.path]
    put(table, "bad", schema("bad", "1"), revision=2)  # fixed: served, and no longer a problem
    assert table.lookup("/v1/private/bad") is not None and table.problems == {}


def test_later_frames_need_no_header_fields_nor_payload_entries() -> None:
    table = RouteTable(GatewaySettings())
    put(table, "a", schema("a", "1"))
    svc = table.lookup("/v1/private/a")
    assert svc is not None
    webgate.check(svc, {"header": {"status": 1}}, first=False)
    webgate.check(svc, {"header": {"status": 2}, "payload": {}}, first=False)
    with pytest.raises(AseError) as info:
        webgate.check(svc, {"header": {"status": 1}, "payload": {"other": {}}}, first=False)
    assert info.value.code == 10163 and "'other' was unexpected" in info.value.message
    relaxed = frame_schema(svc.schema.schemainput)
    assert "required" not in relaxed and "parameter" not in relaxed["properties"]


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"payload": {"text": {"text": "aGk="}}}, 10313, "header.app_id is required"),
        ({"header": {"app_id": "x"}}, 10163, "payload is required"),
        ({"header": {"app_id": "x"}, "payload": {}}, 10163, "payload.text is required"),
        (
            {"header": {"app_id": "x"}, "payload": {"text": {"text": "@@"}}},
            10161,
            "payload.text.text is not valid base64",
        ),
        (
            {"header": {"app_id": "x"}, "parameter": {"a": {"n": 9}}, "payload": {"text": {"text": "aGk="}}},
            10163,
            "parameter.a.n: 9 is greater than the maximum of 3",
        ),
        (
            {"header": {"app_id": "x"}, "payload": {"text": {"text": "aGk=" * 200, "status": "x" * 500}}},
            10163,
            "...",
        ),
    ],
)
def test_refused_bodies_name_the_field_and_the_rule(body: dict[str, object], code: int, message: str) -> None:
    table = RouteTable(GatewaySettings())
    put(table, "a", schema("a", "1"))
    svc = table.lookup("/v1/private/a")
    assert svc is not None
    with pytest.raises(AseError) as info:
        webgate.check(svc, body)
    assert info.value.code == code
    assert message in info.value.message
    assert len(info.value.message) <= 400  # a huge value is not echoed back whole


def test_the_documents_describe_only_the_routes_a_schema_serves() -> None:
    from ase_serving.schema.openapi import openapi_document

    table = RouteTable(GatewaySettings())
    put(table, "a", schema("a", "1.0.0", "[/x, /y]"))
    put(table, "b", schema("b", "2.0.0", "/x"))  # another service takes /x
    served = {s.service_id: s.routes for s in table.served_schemas()}
    assert served == {"a": ["/y"], "b": ["/x"]}
    assert sorted(openapi_document(table.served_schemas())["paths"]) == ["/x", "/y"]
