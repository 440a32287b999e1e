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
from ase_serving.gateway.transport import TransportContext, make_transport, transport_names
from ase_serving.loader.host import EngineHost
from ase_serving.loader.project import load_project
from ase_serving.loader.registrar import project_schemas
from ase_serving.protocol.items import DataItem, Status
from ase_serving.store import ConfigKey
from ase_serving.store.base import ConfigEvent, ConfigItem
from ase_serving.wrapper.plugin import load_plugin

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
