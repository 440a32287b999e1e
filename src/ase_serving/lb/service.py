"""The LB as its own gRPC service (``ase.lb.v1.Balancer``), for several gateways sharing one view.

A :class:`~ase_serving.lb.balancer.Balancer` behind a ``grpc.aio`` server, fed from the registry
when a config centre is given (:class:`~ase_serving.lb.feed.RegistryFeed`) and/or from ``Report``
calls. Pick failures are answers (``code`` 11503/10110 with a message), not gRPC errors: the
client maps them back to :class:`~ase_serving.errors.NoLoader` / :class:`~ase_serving.errors.NoLicence`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from ase_serving.errors import AseError
from ase_serving.lb.balancer import Balancer
from ase_serving.lb.feed import RegistryFeed
from ase_serving.lb.proto import lb_pb2 as pb
from ase_serving.rpc import BindError, bind
from ase_serving.store import Backend, StoreError, open_backend

log = logging.getLogger("ase_serving.lb")

SERVICE = "ase.lb.v1.Balancer"
DEFAULT_PORT = 2391


class LbError(AseError):
    """The LB service cannot start (port taken, bad config centre address); the message says why."""

    code = 500


class LbService:
    """The RPC handlers around one Balancer."""

    def __init__(self, balancer: Balancer, feed: RegistryFeed | None = None, registry: str = "") -> None:
        self.balancer = balancer
        self.feed = feed
        self.registry = registry

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        def unary(func: Any, req: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                func, request_deserializer=req.FromString, response_serializer=_serialize
            )

        return {
            "Pick": unary(self.pick, pb.PickRequest),
            "Release": unary(self.release, pb.ReleaseRequest),
            "Report": unary(self.report, pb.ReportRequest),
            "Nodes": unary(self.nodes, pb.NodesRequest),
            "Health": unary(self.health, pb.HealthRequest),
        }

    async def pick(self, req: pb.PickRequest, _ctx: Any) -> pb.PickResponse:
        try:
            addresses = self.balancer.pick(req.service, req.version, req.n, req.exclude)
        except AseError as exc:
            return pb.PickResponse(code=exc.code, message=exc.message)
        return pb.PickResponse(addresses=addresses)

    async def release(self, req: pb.ReleaseRequest, _ctx: Any) -> pb.ReleaseResponse:
        self.balancer.release(req.service, req.version, req.address)
        return pb.ReleaseResponse()

    async def report(
        self, req: pb.ReportRequest, ctx: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReportResponse:
        if not (req.service and req.version and req.address):
            await ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "a report needs service, version and address")
        if req.remove:
            self.balancer.remove(req.service, req.version, req.address)
        else:
            live = req.live if req.HasField("live") else True
            self.balancer.report(
                req.service, req.version, req.address, req.total, req.idle, req.best or None, live
            )
        return pb.ReportResponse()

    async def nodes(self, req: pb.NodesRequest, _ctx: Any) -> pb.NodesResponse:
        found = self.balancer.nodes(req.service or None, req.version or None)
        return pb.NodesResponse(
            strategy=self.balancer.strategy_name,
            nodes=[
                pb.Node(
                    service=n.service,
                    version=n.version,
                    address=n.address,
                    total=n.total,
                    idle=n.idle,
                    best=n.best,
                    live=n.live,
                    avail=n.avail,
                    in_use=n.in_use,
                    age_s=n.age,
                )
                for n in found
            ],
        )

    async def health(self, _req: pb.HealthRequest, _ctx: Any) -> pb.HealthResponse:
        return pb.HealthResponse(
            status="ok",
            strategy=self.balancer.strategy_name,
            nodes=len(self.balancer.nodes()),
            registry=self.registry,
            registry_connected=self.feed is not None and self.feed.connected,
        )


def _serialize(msg: Any) -> bytes:
    out: bytes = msg.SerializeToString()
    return out


def add_to_server(server: grpc.aio.Server, service: LbService) -> None:
    handlers = service.handlers()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    with contextlib.suppress(AttributeError):  # registered methods skip the generic lookup (grpcio >= 1.63)
        server.add_registered_method_handlers(SERVICE, handlers)  # type: ignore[attr-defined]


@dataclass
class LbReady:
    """What a started LB service tells its caller."""

    host: str
    port: int
    strategy: str
    #: The config centre it is fed from, or None (Report calls only).
    registry: str | None
    stop: Callable[[], None]

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    strategy: str = "load",
    ttl: float = 10.0,
    backend: Backend | None = None,
    ready: Callable[[LbReady], None] | None = None,
) -> None:
    """Run the LB service until SIGTERM/SIGINT (or ``LbReady.stop()``); blocks.

    ``backend``: an opened config centre whose registry feeds the Balancer (None: Report calls
    only). Raises :class:`LbError` when it cannot start.
    """
    asyncio.run(_serve(host, port, strategy, ttl, backend, ready))


def open_registry(address: str, account: str | None, password: str | None) -> Backend:
    """The config centre backend at ``address``; :class:`LbError` if the address is not understood."""
    try:
        return open_backend(address, account, password)
    except StoreError as exc:
        raise LbError(str(exc)) from None


async def _serve(
    host: str,
    port: int,
    strategy: str,
    ttl: float,
    backend: Backend | None,
    ready: Callable[[LbReady], None] | None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        balancer = Balancer(strategy, ttl)
    except ValueError as exc:
        raise LbError(str(exc)) from None
    feed: RegistryFeed | None = None
    if backend is not None and backend.registry is not None:
        feed = RegistryFeed.from_registry(balancer, backend.registry)
    service = LbService(balancer, feed, backend.address if backend is not None else "")
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    add_to_server(server, service)
    try:
        bound = bind(server, host, port, "LB")
    except BindError as exc:
        raise LbError(str(exc)) from None
    await server.start()
    try:
        if feed is not None:
            # Returns after the first list, or after the wait while the view keeps retrying: the
            # LB serves Report-fed nodes meanwhile and catches up when the store answers.
            await feed.start(wait=3.0)
            if not feed.connected:
                log.warning(
                    "config centre %s unreachable (%s); retrying in the background",
                    service.registry,
                    getattr(feed.view, "last_error", None),
                )
        if ready is not None:
            ready(
                LbReady(
                    host,
                    bound,
                    strategy,
                    service.registry or None,
                    stop=lambda: _call_soon(loop, stop.set),
                )
            )
        await stop.wait()
    finally:
        await server.stop(grace=0.5)
        if feed is not None:
            await feed.close()
        if backend is not None:
            with contextlib.suppress(Exception):
                await backend.close()


def _call_soon(loop: asyncio.AbstractEventLoop, func: Callable[[], None]) -> None:
    loop.call_soon_threadsafe(func)
