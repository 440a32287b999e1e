"""The gateway with the in-process transport: the real app, router, checks and atom over an
EngineHost in this process (no loader process, no socket), through httpx's ASGI transport.

These are the fast checks of messages and codes; tests/gateway/test_gateway_once.py runs the
same paths with real processes.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ase_serving import errors
from ase_serving.gateway.app import GatewayApp
from ase_serving.gateway.atom import Atom, to_request
from ase_serving.gateway.runtime import Gateway
from ase_serving.gateway.settings import GatewaySettings
from ase_serving.gateway.transport import (
    InProcessTransport,
    TransportContext,
    make_transport,
    transport_names,
)
from ase_serving.loader.host import EngineHost
from ase_serving.loader.project import load_project
from ase_serving.loader.project_schemas import project_schemas
from ase_serving.protocol.items import DataItem, Status
from ase_serving.store import ConfigKey
from ase_serving.store.base import ConfigEvent, ConfigItem
from ase_serving.wrapper.plugin import load_plugin
from tests.gateway.support import asgi_websocket

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _gateway(*projects: str, lic: int = 2, **settings: Any) -> tuple[Gateway, dict[str, EngineHost]]:
    gw = Gateway(GatewaySettings(auth="off", **settings))
    hosts: dict[str, EngineHost] = {}
    for name in projects:
        proj = load_project(EXAMPLES / name)
        for item_name, content in project_schemas(proj):
            key = ConfigKey("default", "default", proj.service, proj.version, item_name)
            gw.table.apply([ConfigEvent("put", key, ConfigItem(key, content, 1, 1, 0.0), 1)])
        host = EngineHost(load_plugin(proj.project_dir))
        host.init({})
        address = f"mem:{name}"
        hosts[address] = host
        gw.picker.balancer.report(proj.service, proj.version, address, lic, lic, None, True)  # type: ignore[attr-defined]
    transport = make_transport("inprocess", TransportContext(hosts=hosts))
    gw.atom = Atom(gw.picker, gw.settings.once_timeout, transport)
    return gw, hosts


def _body(text: str) -> bytes:
    doc = {
        "header": {"app_id": "a1"},
        "payload": {"text": {"encoding": "utf8", "text": base64.b64encode(text.encode()).decode()}},
    }
    return orjson.dumps(doc)


def test_the_transports_are_registered_by_name() -> None:
    assert {"lean", "grpc", "inprocess"} <= set(transport_names())
    with pytest.raises(ValueError, match="unknown loader transport 'carrier-pigeon'"):
        make_transport("carrier-pigeon")


def test_once_through_the_app_in_process() -> None:
    gw, _hosts = _gateway("echo")

    async def main() -> list[httpx.Response]:
        app = GatewayApp(gw)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            # More requests than licences: they wait for one and all succeed.
            return list(
                await asyncio.gather(
                    *(client.post("/v1/private/echo", content=_body(f"hi {i}")) for i in range(6))
                )
            )

    answers = asyncio.run(main())
    assert [r.status_code for r in answers] == [200] * 6
    docs = [r.json() for r in answers]
    assert all(d["header"]["code"] == 0 for d in docs)
    texts = [base64.b64decode(d["payload"]["echo"]["text"]).decode() for d in docs]
    assert texts == [f"hi {i}" for i in range(6)]
    assert {n.avail for n in gw.picker.balancer.nodes()} == {2}  # type: ignore[attr-defined]  # all given back


def test_a_bad_body_is_refused_before_the_engine() -> None:
    gw, _hosts = _gateway("echo")

    async def main() -> httpx.Response:
        app = GatewayApp(gw)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            return await client.post(
                "/v1/private/echo", content=b'{"header": {"app_id": "a1"}, "payload": 7}'
            )

    resp = asyncio.run(main())
    assert resp.status_code == 400
    assert resp.json()["header"]["code"] != 0


def test_a_session_in_process() -> None:
    gw, _hosts = _gateway("stream_echo")
    svc = next(s for s in gw.table.live() if s.service_id == "stream_echo")

    async def main() -> list[Any]:
        first = to_request(svc, {"header": {"app_id": "a1"}}, [DataItem(key="audio", data=b"a")], "sid1", 0)
        first.status = Status.BEGIN
        session, address, _waited = await gw.atom.open_session(svc, first)
        try:
            await session.send(Status.END, [DataItem(key="audio", data=b"b", status=Status.END)])
            out = []
            while not session.ended:
                res = await session.recv()
                if res is None:
                    break
                out.append(res)
            return out
        finally:
            await session.close()
            await gw.atom.release(svc, address)

    results = asyncio.run(main())
    assert results and all(r.code == 0 for r in results)
    assert results[-1].status == Status.END


def test_no_engine_at_an_address_is_no_loader() -> None:
    gw, hosts = _gateway("echo")
    hosts.clear()

    async def main() -> httpx.Response:
        app = GatewayApp(gw)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            return await client.post("/v1/private/echo", content=_body("x"))

    resp = asyncio.run(main())
    assert resp.json()["header"]["code"] == errors.NO_LOADER


class _Broken(InProcessTransport):
    """A transport with a bug: every call raises what no code path expects."""

    async def once(self, address: str, req: Any, timeout: float | None) -> Any:
        raise RuntimeError("injected bug")

    def session(self, address: str, first: Any, timeout: float | None) -> Any:
        raise RuntimeError("injected bug")


def test_a_gateway_bug_is_answered_in_the_protocol_and_frees_the_licence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw, hosts = _gateway("echo", "stream_echo", lic=1)
    working = gw.atom.transport
    gw.atom.transport = _Broken(TransportContext(hosts=hosts))
    first = orjson.dumps(
        {
            "header": {"app_id": "a1", "status": 0},
            "payload": {"text": {"encoding": "utf8", "text": base64.b64encode(b"a").decode(), "status": 0}},
        }
    ).decode()

    async def main() -> tuple[list[httpx.Response], list[list[dict[str, Any]]], httpx.Response]:
        app = GatewayApp(gw)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            # More than the one licence: a licence kept by each failure would leave none.
            onces = [await client.post("/v1/private/echo", content=_body("x")) for _ in range(3)]
            sessions = [await asgi_websocket(app, "/v1/private/stream_echo", [first], 10) for _ in range(3)]
            gw.atom.transport = working
            return onces, sessions, await client.post("/v1/private/echo", content=_body("after"))

    onces, sessions, after = asyncio.run(main())
    for resp in onces:
        header = resp.json()["header"]
        assert resp.status_code == 500 and header["code"] == errors.SERVER_ERROR
        assert header["sid"] and header["sid"] in header["message"]
    for sent in sessions:
        assert sent[0]["type"] == "websocket.accept"
        error = orjson.loads(sent[-2]["text"])["header"]
        assert error["code"] == errors.SERVER_ERROR and error["status"] == 2
        assert sent[-1] == {"type": "websocket.close", "code": 1011}
    assert after.status_code == 200 and after.json()["header"]["code"] == 0  # the licence came back
    # Each failure logged once, with its traceback.
    logged = [r for r in caplog.records if "failed in the gateway" in r.getMessage()]
    assert len(logged) == 6 and all(r.exc_info for r in logged)


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 200),  # no Content-Type: taken as JSON
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/problem+json", 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),  # curl -d without -H
        ("multipart/form-data; boundary=x", 415),
    ],
)
def test_a_body_is_taken_as_json_only(content_type: str | None, status: int) -> None:
    gw, _hosts = _gateway("echo")

    async def main() -> httpx.Response:
        app = GatewayApp(gw)
        headers = {"content-type": content_type} if content_type else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            return await client.post("/v1/private/echo", content=_body("x"), headers=headers)

    resp = asyncio.run(main())
    assert resp.status_code == status, resp.text
    if status == 415:
        header = resp.json()["header"]
        assert header["code"] == errors.BAD_JSON and "Content-Type: application/json" in header["message"]


def test_a_wrapper_code_the_schema_declares_a_client_error_is_400() -> None:
    """examples/echo declares its 20002 (input not UTF-8) in client_errors: 400, not 500."""
    gw, _hosts = _gateway("echo")
    not_text = orjson.dumps(
        {
            "header": {"app_id": "a1"},
            "payload": {"text": {"encoding": "utf8", "text": base64.b64encode(b"\xff\xfe").decode()}},
        }
    )

    async def main() -> tuple[httpx.Response, httpx.Response]:
        app = GatewayApp(gw)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            return (
                await client.post("/v1/private/echo", content=not_text),
                await client.post("/v1/private/echo", content=_body("fine")),
            )

    bad, good = asyncio.run(main())
    assert bad.status_code == 400 and bad.json()["header"]["code"] == 20002, bad.text
    assert good.status_code == 200


@pytest.mark.parametrize("parameter", [None, {"echo": {"encoding": "utf8", "format": "plain"}, "speed": 2}])
def test_loader_test_builds_the_request_the_gateway_builds(parameter: dict[str, Any] | None) -> None:
    """One conversion (issue 17, point 4): `asectl loader test` (request_from_public with the
    project's schema outputs) and the gateway (to_request) make the same loader request."""
    from ase_serving.loader.project_schemas import read_project_api
    from ase_serving.protocol.public import decode_item, request_from_public

    gw, _hosts = _gateway("echo")
    svc = next(s for s in gw.table.live() if s.service_id == "echo")
    body: dict[str, Any] = {
        "header": {"app_id": "a1", "uid": "u1"},
        "payload": {"text": {"encoding": "utf8", "text": "aGk="}},
    }
    if parameter is not None:
        body["parameter"] = {"echo": parameter}
    items = [decode_item("text", body["payload"]["text"], Status.ONCE)]
    by_gateway = to_request(svc, body, items, "sid1", Status.ONCE)
    schema = read_project_api(load_project(EXAMPLES / "echo")).service
    assert schema is not None
    accepts = schema.accepts
    assert accepts == svc.schema.accepts
    by_loader_test = request_from_public(body, svc.service_id, svc.version, "sid1", accepts)
    assert by_loader_test == by_gateway
    assert by_gateway.expect and by_gateway.expect[0].key == "echo"
    if parameter is not None:
        assert by_gateway.expect[0].desc["format"] == "plain" and by_gateway.params == {"speed": "2"}


def test_docs_of_a_service_not_served_is_404_with_the_services_served() -> None:
    """/docs?service=nosuch used to answer 200 with a page that then failed in the browser."""
    gw, _hosts = _gateway("echo", "stream_echo")

    async def main() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        app = GatewayApp(gw)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            missing = await client.get("/docs", params={"service": "nosuch"})
            served = await client.get("/docs", params={"service": "echo"})
            every = await client.get("/docs")
        return missing, served, every

    missing, served, every = asyncio.run(main())
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert (
        "no live service &#x27;nosuch&#x27; on this gateway; services served: echo, stream_echo"
        in missing.text
    )
    assert '<a href="/docs?service=echo">echo</a>' in missing.text
    assert '<a href="/docs?service=stream_echo">stream_echo</a>' in missing.text
    assert served.status_code == 200 and '"/openapi/echo.json"' in served.text
    assert every.status_code == 200 and '"/openapi.json"' in every.text
    # With nothing served the page says so, and how to serve something.
    empty = Gateway(GatewaySettings(auth="off"))

    async def nothing() -> httpx.Response:
        app = GatewayApp(empty)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            return await client.get("/docs?service=echo")

    none = asyncio.run(nothing())
    assert none.status_code == 404
    assert "services served: none yet (push a service schema and start its loader)" in none.text
