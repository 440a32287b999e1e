"""loader.proto messages <-> the transport-free request model (``protocol.items``).

Used by the worker (parse a request, serialize a result) and by :mod:`ase_serving.loader.client`
(the other direction). Nothing here knows about sockets or gRPC channels.
"""

from __future__ import annotations

from collections.abc import Iterable

from ase_serving.loader.proto import loader_pb2 as pb
from ase_serving.protocol.items import DataItem, OutputSpec, Request, Result, Status


def items_to_proto(items: Iterable[DataItem]) -> list[pb.DataItem]:
    return [
        pb.DataItem(key=i.key, data=i.data, status=i.status, type=i.type, desc=i.desc, seq=i.seq)
        for i in items
    ]


def items_from_proto(items: Iterable[pb.DataItem]) -> list[DataItem]:
    return [
        DataItem(key=i.key, data=i.data, status=i.status, type=i.type, desc=dict(i.desc), seq=i.seq)
        for i in items
    ]


def meta_to_proto(req: Request) -> pb.RequestMeta:
    return pb.RequestMeta(
        service_id=req.service_id,
        version=req.version,
        sid=req.sid,
        headers=req.headers,
        params=req.params,
        expect=[pb.OutputSpec(key=e.key, type=e.type, desc=e.desc) for e in req.expect],
        psr_ids=req.psr_ids,
        timeout_s=req.timeout_s,
    )


def request_from_meta(meta: pb.RequestMeta, items: list[DataItem], status: int) -> Request:
    return Request(
        service_id=meta.service_id,
        version=meta.version,
        sid=meta.sid,
        headers=dict(meta.headers),
        params=dict(meta.params),
        expect=[OutputSpec(key=e.key, type=e.type, desc=dict(e.desc)) for e in meta.expect],
        psr_ids=list(meta.psr_ids),
        items=items,
        status=status,
        timeout_s=meta.timeout_s,
    )


# -- once ------------------------------------------------------------------------------------
def once_request(req: Request) -> pb.OnceRequest:
    return pb.OnceRequest(meta=meta_to_proto(req), data=items_to_proto(req.items))


def request_from_once(msg: pb.OnceRequest) -> Request:
    return request_from_meta(msg.meta, items_from_proto(msg.data), Status.ONCE)


def once_response(result: Result) -> pb.OnceResponse:
    return pb.OnceResponse(
        code=result.code, message=result.message, sid=result.sid, data=items_to_proto(result.items)
    )


def result_from_once(msg: pb.OnceResponse) -> Result:
    return Result(
        code=msg.code, message=msg.message, items=items_from_proto(msg.data), status=Status.ONCE, sid=msg.sid
    )


# -- sessions --------------------------------------------------------------------------------
def session_request(
    status: int, items: Iterable[DataItem], first: Request | None = None
) -> pb.SessionRequest:
    """One session frame; the first one carries ``first``'s meta."""
    msg = pb.SessionRequest(status=status, data=items_to_proto(items))
    if first is not None:
        msg.meta.CopyFrom(meta_to_proto(first))
    return msg


def request_from_session(msg: pb.SessionRequest) -> Request:
    return request_from_meta(msg.meta, items_from_proto(msg.data), msg.status)


def session_response(result: Result) -> pb.SessionResponse:
    return pb.SessionResponse(
        code=result.code,
        message=result.message,
        sid=result.sid,
        status=result.status,
        data=items_to_proto(result.items),
    )


def result_from_session(msg: pb.SessionResponse) -> Result:
    return Result(
        code=msg.code, message=msg.message, items=items_from_proto(msg.data), status=msg.status, sid=msg.sid
    )


def once_error(code: int, message: str, sid: str = "") -> bytes:
    """A serialized OnceResponse carrying only an error."""
    return pb.OnceResponse(code=code, message=message, sid=sid).SerializeToString()


def session_error(code: int, message: str, sid: str = "") -> bytes:
    """A serialized last SessionResponse carrying only an error."""
    return pb.SessionResponse(code=code, message=message, sid=sid, status=Status.END).SerializeToString()
