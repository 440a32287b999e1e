"""A gateway in this process for the fuzz: the real app, routes, checks and atom in front of the
examples' engines (echo, stream_echo, and a parameterised service served by echo's wrapper), with
no loader process and no socket, so that thousands of examples run in seconds.

Every request and frame is still written in the lean wire's MessagePack and read back before the
engine gets it, as a loader would, so that a value the wire cannot carry fails here too.
"""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ase_serving import wire
from ase_serving.gateway.app import GatewayApp
from ase_serving.gateway.atom import Atom
from ase_serving.gateway.runtime import Gateway
from ase_serving.gateway.settings import GatewaySettings
from ase_serving.gateway.transport import InProcessTransport, LoaderSession, TransportContext
from ase_serving.loader.host import EngineHost
from ase_serving.loader.project import load_project
from ase_serving.loader.project_schemas import project_schemas
from ase_serving.protocol.items import DataItem, Frame, Request, Result
from ase_serving.schema import from_yaml
from ase_serving.store import ConfigKey
from ase_serving.store.base import ConfigEvent, ConfigItem
from ase_serving.wrapper.plugin import load_plugin
from tests.reliability.strategies import TYPED_YAML

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class WiredTransport(InProcessTransport):
    """The in-process transport, with each request and frame through the lean wire's encoding."""

    async def once(self, address: str, req: Request, timeout: float | None) -> Result:
        return await super().once(address, wire.decode_request(wire.encode(req)), timeout)

    def session(self, address: str, first: Request, timeout: float | None) -> LoaderSession:
        inner = super().session(address, wire.decode_request(wire.encode(first)), timeout)
        return _WiredSession(inner)


class _WiredSession:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def ended(self) -> bool:
        return bool(self.inner.ended)

    async def open(self) -> None:
        await self.inner.open()

    async def send(self, status: int, items: Iterable[DataItem] = ()) -> None:
        frame = wire.decode_frame(wire.encode(Frame(status, list(items))))
        await self.inner.send(frame.status, frame.items)

    async def recv(self) -> Result | None:
        res = await self.inner.recv()
        return None if res is None else wire.decode_result(wire.encode(res))

    async def refused(self) -> int:
        return int(await self.inner.refused())

    async def close(self) -> None:
        await self.inner.close()


def _schema(gw: Gateway, service: str, version: str, name: str, content: bytes) -> None:
    key = ConfigKey("default", "default", service, version, name)
    gw.table.apply([ConfigEvent("put", key, ConfigItem(key, content, 1, 1, 0.0), 1)])


def fuzz_gateway(lic: int = 2, **settings: Any) -> tuple[Gateway, GatewayApp]:
    """examples/echo and examples/stream_echo, and ``typed`` (:data:`TYPED_YAML`) on echo's
    wrapper, each with ``lic`` licences (reported once, so known for a day rather than ``lb_ttl``)."""
    gw = Gateway(GatewaySettings(**{"auth": "off", "lb_ttl": 86400.0, **settings}))
    hosts: dict[str, EngineHost] = {}
    served: list[tuple[str, str, Path]] = []
    for name in ("echo", "stream_echo"):
        proj = load_project(EXAMPLES / name)
        for item_name, content in project_schemas(proj):
            _schema(gw, proj.service, proj.version, item_name, content)
        served.append((proj.service, proj.version, proj.project_dir))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ai_api.yml"
        path.write_text(textwrap.dedent(TYPED_YAML))
        compiled = from_yaml(path)
    _schema(gw, "typed", compiled.spec.version, compiled.item_name, compiled.content())
    served.append(("typed", compiled.spec.version, EXAMPLES / "echo"))
    for service, version, project_dir in served:
        host = EngineHost(load_plugin(project_dir))
        host.init({})
        address = f"mem:{service}"
        hosts[address] = host
        gw.picker.balancer.report(service, version, address, lic, lic, None, True)  # type: ignore[attr-defined]
    gw.atom = Atom(gw.picker, gw.settings.once_timeout, WiredTransport(TransportContext(hosts=hosts)))
    return gw, GatewayApp(gw)


def licences_free(gw: Gateway, lic: int = 2) -> bool:
    return {n.avail for n in gw.picker.balancer.nodes()} == {lic}  # type: ignore[attr-defined]
