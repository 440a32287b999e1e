"""The LB as its own service, for several gateways sharing one view: a gRPC port and a lean-wire port.

A :class:`~ase_serving.lb.balancer.Balancer` behind a ``grpc.aio`` server (``ase.lb.v1.Balancer``,
the documented interop port) and the lean wire (:mod:`ase_serving.lb.lean`, what gateways started
with ``--lb`` call: a pick costs ~5 µs of the LB's CPU there, against ~275 µs over gRPC), both
on one uvloop loop, fed from the registry when a config centre is given
(:class:`~ase_serving.lb.feed.RegistryFeed`) and/or from ``Report`` calls. Pick failures are
answers (``code`` 11503/10110 with a message), not transport errors: the clients map them back to
:class:`~ase_serving.errors.NoLoader` / :class:`~ase_serving.errors.NoLicence`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from ase_serving.addr import host_port
from ase_serving.errors import AseError, BadRequest, StartupError
from ase_serving.lb.balancer import Balancer
from ase_serving.lb.feed import RegistryFeed
from ase_serving.lb.lean import DEFAULT_WIRE_PORT, LbWireServer
from ase_serving.lb.proto import lb_pb2 as pb
from ase_serving.lb.settings import DEFAULT_PORT
from ase_serving.rpc import BindError, add_service, bind
from ase_serving.store import Backend, StoreError, open_backend

log = logging.getLogger("ase_serving.lb")

#: ``ase.lb.v1.Balancer``, as lb.proto defines it.
SERVICE = pb.DESCRIPTOR.services_by_name["Balancer"]


class LbError(StartupError):
    """The LB service cannot start (port taken, bad config centre address); the message says why."""


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
        live = req.live if req.HasField("live") else True
        try:
            self.apply_report(
                req.service, req.version, req.address, req.total, req.idle, req.best, live, req.remove
            )
        except BadRequest as exc:
            await ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        return pb.ReportResponse()

    def apply_report(
        self,
        service: str,
        version: str,
        address: str,
        total: int,
        idle: int,
        best: int,
        live: bool,
        remove: bool,
    ) -> None:
        """A Report call (either port): store it, or forget the node when ``remove``."""
        if not (service and version and address):
            raise BadRequest("a report needs service, version and address")
        if remove:
            self.balancer.remove(service, version, address)
        else:
            self.balancer.report(service, version, address, total, idle, best or None, live)

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
        return pb.HealthResponse(**self.health_doc())

    def health_doc(self) -> dict[str, Any]:
        """The Health answer's fields (either port)."""
        return {
            "status": "ok",
            "strategy": self.balancer.strategy_name,
            "nodes": len(self.balancer.nodes()),
            "registry": self.registry,
            "registry_connected": self.feed is not None and self.feed.connected,
        }


def _serialize(msg: Any) -> bytes:
    out: bytes = msg.SerializeToString()
    return out


def add_to_server(server: grpc.aio.Server, service: LbService) -> None:
    add_service(server, SERVICE, service.handlers())


@dataclass
class LbReady:
    """What a started LB service tells its caller."""

    host: str
    #: The gRPC port.
    port: int
    strategy: str
    #: The config centre it is fed from, or None (Report calls only).
    registry: str | None
    stop: Callable[[], None]
    #: The lean-wire port (what a gateway's ``--lb`` names).
    wire_port: int = 0

    @property
    def address(self) -> str:
        """The gRPC port's ``host:port``."""
        return host_port(self.host, self.port)

    @property
    def wire_address(self) -> str:
        """The lean-wire port's ``host:port``."""
        return host_port(self.host, self.wire_port)


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    strategy: str = "load",
    ttl: float = 10.0,
    backend: Backend | None = None,
    ready: Callable[[LbReady], None] | None = None,
    wire_port: int = DEFAULT_WIRE_PORT,
) -> None:
    """Run the LB service until SIGTERM/SIGINT (or ``LbReady.stop()``); blocks.

    ``port``: the gRPC port, ``wire_port``: the lean-wire port (0: a free one each). ``backend``:
    an opened config centre whose registry feeds the Balancer (None: Report calls only). Raises
    :class:`LbError` when it cannot start. The loop is uvloop's where it is installed.
    """
    _runner()(_serve(host, port, strategy, ttl, backend, ready, wire_port))


def _runner() -> Callable[[Any], None]:
    try:
        import uvloop
    except ImportError:  # Windows: asyncio's own loop
        return asyncio.run
    return uvloop.run


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
    wire_port: int,
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
    wire_server = LbWireServer(service, host, wire_port)
    try:
        await wire_server.start()
    except OSError as exc:
        raise LbError(
            f"cannot listen on {host_port(host, wire_port)} (lean wire): "
            f"{os.strerror(exc.errno) if exc.errno else exc}; "
            "choose another --wire-port"
        ) from None
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    add_to_server(server, service)
    try:
        bound = bind(server, host, port, "LB")
    except BindError as exc:
        await wire_server.close()
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
                    wire_port=wire_server.port,
                )
            )
        await stop.wait()
    finally:
        await wire_server.close()
        await server.stop(grace=0.5)
        if feed is not None:
            await feed.close()
        if backend is not None:
            with contextlib.suppress(Exception):
                await backend.close()


def _call_soon(loop: asyncio.AbstractEventLoop, func: Callable[[], None]) -> None:
    loop.call_soon_threadsafe(func)
