"""The loader's gRPC adapter (``ase.loader.v1.Loader``): the interop port, off the gateway's path.

Other languages and ``asectl loader call`` use it; its proto (``loader.proto``) is the source of
truth for this port. Calls are converted between protobuf and the workers' MessagePack here and
then run by the same :class:`~ase_serving.loader.front.Front` as the data port's, so admission,
timeouts, session limits and metrics are the same on both ports.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from ase_serving import errors, wire
from ase_serving.loader import convert
from ase_serving.loader.front import DRAINING, SERVING, STARTING, Front
from ase_serving.loader.proto import loader_pb2 as pb
from ase_serving.protocol.items import Frame
from ase_serving.rpc import add_service

log = logging.getLogger("ase_serving.loader")

#: ``ase.loader.v1.Loader``, as loader.proto defines it.
SERVICE = pb.DESCRIPTOR.services_by_name["Loader"]
__all__ = ["DRAINING", "SERVING", "STARTING", "LoaderService", "add_to_server"]
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from the stubs


def _once_response(out: bytes) -> bytes:
    return convert.once_response(wire.decode_result(out)).SerializeToString()


def _session_response(out: bytes) -> bytes:
    return convert.session_response(wire.decode_result(out)).SerializeToString()


class LoaderService:
    """Once, Session and Info over the front's pool."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.pool = front.pool
        self.settings = front.settings

    @property
    def state(self) -> str:
        return self.front.state

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        return {
            "Once": grpc.unary_unary_rpc_method_handler(self.once),
            "Session": grpc.stream_stream_rpc_method_handler(self.session),
            "Info": grpc.unary_unary_rpc_method_handler(self.info),
        }

    # -- once -------------------------------------------------------------------------------
    async def once(self, body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        try:
            req = convert.request_from_once(pb.OnceRequest.FromString(body))
        except Exception as exc:  # protobuf's DecodeError
            return convert.once_error(errors.SCHEMA_MISMATCH, f"not a OnceRequest: {exc}")
        left = context.time_remaining()
        answer = self.front.once(wire.encode(req), left if left is not None else 0.0)
        if not isinstance(answer, tuple):
            answer = await answer
        return _once_response(answer[1])

    # -- sessions ---------------------------------------------------------------------------
    async def session(self, _requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        first = await context.read()
        if first is _EOF:
            return
        assert isinstance(first, bytes)
        try:
            req = convert.request_from_session(pb.SessionRequest.FromString(first))
        except Exception as exc:
            await context.write(convert.session_error(errors.SCHEMA_MISMATCH, f"not a SessionRequest: {exc}"))
            return
        inbox: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def emit(_code: int, payload: bytes, _end: bool) -> None:
            await context.write(_session_response(payload))

        reader = asyncio.get_running_loop().create_task(_read_frames(context, inbox))
        try:
            left = context.time_remaining()
            await self.front.session(wire.encode(req), inbox, emit, left if left is not None else 0.0)
        finally:
            reader.cancel()

    # -- info -------------------------------------------------------------------------------
    def info_message(self) -> pb.InfoResponse:
        p = self.pool
        return pb.InfoResponse(
            service_id=self.settings.service,
            version=self.settings.version,
            healthy=self.state == SERVING and p.healthy(),
            state=self.state,
            lic_total=p.lic_total(),
            lic_busy=p.busy(),
            sessions=p.sessions(),
            workers=[pb.WorkerInfo(**w) for w in p.snapshot()],
            modes=",".join(p.modes),
        )

    async def info(self, _body: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return self.info_message().SerializeToString()

    def health(self) -> dict[str, Any]:
        """The /health document: status ok | starting | draining | degraded (no worker ready)."""
        p = self.pool
        status = ("ok" if p.healthy() else "degraded") if self.state == SERVING else self.state
        return {
            "status": status,
            "service": self.settings.service,
            "version": self.settings.version,
            "lic_total": p.lic_total(),
            "lic_busy": p.busy(),
            "sessions": p.sessions(),
            "workers": [
                {**snap, "direct_callers": w.direct_callers}
                for snap, w in zip(p.snapshot(), p.workers, strict=True)
            ],
        }


async def _read_frames(
    context: grpc.aio.ServicerContext[Any, Any], inbox: asyncio.Queue[bytes | None]
) -> None:
    """The caller's later SessionRequests -> encoded Frames in ``inbox`` (None at its end)."""
    try:
        while True:
            msg = await context.read()
            if msg is _EOF:
                return
            assert isinstance(msg, bytes)
            frame = pb.SessionRequest.FromString(msg)
            inbox.put_nowait(wire.encode(Frame(frame.status, convert.items_from_proto(frame.data))))
    finally:
        inbox.put_nowait(None)


def add_to_server(server: grpc.aio.Server, service: LoaderService) -> None:
    add_service(server, SERVICE, service.handlers())
