"""The asyncio client of the LB service: the same pick/release as an in-process Balancer.

    lb = LbClient("127.0.0.1:2391")
    addr = (await lb.pick("asr", "1.0"))[0]     # NoLoader / NoLicence as from a Balancer
    await lb.release("asr", "1.0", addr)

An LB that cannot be reached is a :class:`~ase_serving.errors.NoLoader` (11503) too: for the
caller, no address is no address. :func:`lb_healthy` is the check ``asectl cluster status`` uses.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import grpc
import grpc.aio

from ase_serving.errors import NoLoader, error_for
from ase_serving.lb.balancer import NodeInfo
from ase_serving.lb.proto import lb_pb2 as pb
from ase_serving.rpc import method_paths

#: The method paths (``/ase.lb.v1.Balancer/Pick``, ...), from lb.proto.
_PATHS = method_paths(pb.DESCRIPTOR.services_by_name["Balancer"])


def _callable(channel: grpc.aio.Channel, method: str, resp: Any) -> Any:
    kwargs: dict[str, Any] = {"request_serializer": _serialize, "response_deserializer": resp.FromString}
    try:  # registered methods skip a per-call method lookup (grpcio >= 1.63)
        return channel.unary_unary(_PATHS[method], _registered_method=True, **kwargs)  # type: ignore[call-arg]
    except TypeError:
        return channel.unary_unary(_PATHS[method], **kwargs)


def _serialize(msg: Any) -> bytes:
    out: bytes = msg.SerializeToString()
    return out


class LbClient:
    """A client of one LB service (``host:port``); ``timeout`` bounds every call (seconds)."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout
        self.channel = grpc.aio.insecure_channel(address)
        self._pick = _callable(self.channel, "Pick", pb.PickResponse)
        self._release = _callable(self.channel, "Release", pb.ReleaseResponse)
        self._report = _callable(self.channel, "Report", pb.ReportResponse)
        self._nodes = _callable(self.channel, "Nodes", pb.NodesResponse)
        self._health = _callable(self.channel, "Health", pb.HealthResponse)

    async def _call(self, func: Any, req: Any, timeout: float | None = None) -> Any:
        try:
            return await func(req, timeout=timeout if timeout is not None else self.timeout)
        except grpc.RpcError as exc:
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            raise NoLoader(f"LB service at {self.address} unreachable: {details}") from None

    async def pick(self, service: str, version: str, n: int = 1, exclude: Collection[str] = ()) -> list[str]:
        """As :meth:`Balancer.pick <ase_serving.lb.balancer.Balancer.pick>`, over the network."""
        req = pb.PickRequest(service=service, version=version, n=n, exclude=list(exclude))
        resp = await self._call(self._pick, req)
        if resp.code:
            raise error_for(resp.code, resp.message)
        return list(resp.addresses)

    async def release(self, service: str, version: str, address: str) -> None:
        await self._call(self._release, pb.ReleaseRequest(service=service, version=version, address=address))

    async def report(
        self,
        service: str,
        version: str,
        address: str,
        total: int,
        idle: int,
        best: int | None = None,
        live: bool = True,
    ) -> None:
        """As :meth:`Balancer.report <ase_serving.lb.balancer.Balancer.report>`."""
        req = pb.ReportRequest(
            service=service,
            version=version,
            address=address,
            total=total,
            idle=idle,
            best=best or 0,
            live=live,
        )
        await self._call(self._report, req)

    async def remove(self, service: str, version: str, address: str) -> None:
        req = pb.ReportRequest(service=service, version=version, address=address, remove=True)
        await self._call(self._report, req)

    async def nodes(self, service: str | None = None, version: str | None = None) -> list[NodeInfo]:
        resp = await self._call(self._nodes, pb.NodesRequest(service=service or "", version=version or ""))
        return [
            NodeInfo(
                n.service, n.version, n.address, n.total, n.idle, n.best, n.live, n.avail, n.in_use, n.age_s
            )
            for n in resp.nodes
        ]

    async def health(self, timeout: float | None = None) -> pb.HealthResponse:
        """The service's Health answer; :class:`NoLoader` when it cannot be reached."""
        resp: pb.HealthResponse = await self._call(self._health, pb.HealthRequest(), timeout)
        return resp

    async def close(self) -> None:
        await self.channel.close(None)

    async def __aenter__(self) -> LbClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


async def lb_healthy(address: str, timeout: float = 2.0) -> bool:
    """True when an LB service answers Health with status ok at ``address`` within ``timeout`` s."""
    client = LbClient(address, timeout=timeout)
    try:
        return (await client.health()).status == "ok"
    except NoLoader:
        return False
    finally:
        await client.close()
