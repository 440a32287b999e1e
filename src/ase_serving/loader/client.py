"""Clients of a loader's gRPC API: :class:`LoaderClient` (sync) and :class:`AsyncLoaderClient` (asyncio).

Used by the tests, the examples, the bench and the gateway. The calls are prebuilt multi-callables
with identity (de)serializers: a caller that already holds serialized bytes (``once_raw``) pays no
conversion at all. Transport failures become results with a protocol code (11503 loader
unreachable, 10114 deadline exceeded) rather than gRPC exceptions.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
import grpc.aio

from ase_serving import errors
from ase_serving.loader import convert
from ase_serving.loader.proto import loader_pb2 as pb
from ase_serving.protocol.items import DataItem, Request, Result, Status
from ase_serving.rpc import method_paths

#: The method paths (``/ase.loader.v1.Loader/Once``, ...), from loader.proto.
_PATHS = method_paths(pb.DESCRIPTOR.services_by_name["Loader"])
_ONCE, _SESSION, _INFO = _PATHS["Once"], _PATHS["Session"], _PATHS["Info"]
#: Largest message either way (gRPC's default of 4 MiB is too small for images and audio).
MAX_MESSAGE = 256 * 1024 * 1024
_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from the stubs


def _rpc_result(exc: grpc.RpcError) -> Result:
    """A transport failure as a result with a protocol code."""
    # grpc.aio's AioRpcError has code()/details() but is not a grpc.Call.
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = (exc.details() if callable(getattr(exc, "details", None)) else None) or str(exc)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Result(errors.TIMEOUT, "loader did not answer before the deadline", status=Status.END)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Result(errors.TOO_LARGE, f"message too large for the loader: {details}", status=Status.END)
    return Result(errors.NO_LOADER, f"loader unreachable: {details}", status=Status.END)


def _callable(channel: Any, kind: str, method: str) -> Any:
    factory = getattr(channel, kind)
    try:  # registered methods skip a per-call method lookup (grpcio >= 1.63)
        return factory(method, _registered_method=True)
    except TypeError:
        return factory(method)


def _timeout(req: Request, timeout: float | None) -> float | None:
    # meta.timeout_s travels as the gRPC deadline so the loader can enforce it without parsing the body.
    if req.timeout_s > 0 and (timeout is None or req.timeout_s < timeout):
        return req.timeout_s
    return timeout


class LoaderClient:
    """A synchronous client of one loader (``host:port``)."""

    def __init__(self, address: str, timeout: float | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.channel = grpc.insecure_channel(address, options=_OPTIONS)
        self._once = _callable(self.channel, "unary_unary", _ONCE)
        self._session = _callable(self.channel, "stream_stream", _SESSION)
        self._info = _callable(self.channel, "unary_unary", _INFO)

    def once_raw(self, body: bytes, timeout: float | None = None) -> bytes:
        """Serialized OnceRequest -> serialized OnceResponse (raises ``grpc.RpcError``)."""
        out: bytes = self._once(body, timeout=timeout)
        return out

    def once(self, req: Request, timeout: float | None = None) -> Result:
        """Run one once request; never raises for loader-side failures (see ``Result.code``)."""
        body = convert.once_request(req).SerializeToString()
        try:
            out = self._once(body, timeout=_timeout(req, timeout if timeout is not None else self.timeout))
        except grpc.RpcError as exc:
            return _rpc_result(exc)
        return convert.result_from_once(pb.OnceResponse.FromString(out))

    def session(self, first: Request, timeout: float | None = None) -> ClientSession:
        """Open a session; ``first`` carries the meta and the first frame (its status and items)."""
        return ClientSession(self._session, first, timeout if timeout is not None else self.timeout)

    def info(self, timeout: float = 5.0) -> pb.InfoResponse:
        return pb.InfoResponse.FromString(self._info(b"", timeout=timeout))

    def wait_ready(self, timeout: float = 30.0) -> pb.InfoResponse:
        """Poll Info until the loader is serving; raises ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = self.info(timeout=1.0)
                if info.state == "serving":
                    return info
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"loader at {self.address} not serving after {timeout:g} s")
            time.sleep(0.02)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> LoaderClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


_CLOSE = object()


class ClientSession:
    """One session stream: ``send`` frames, ``recv``/iterate results, ``close``.

    A result with status 2 or a non-zero code is the last one; ``send`` after it raises
    :class:`~ase_serving.errors.BadRequest` (10202).
    """

    def __init__(self, factory: Any, first: Request, timeout: float | None) -> None:
        self._out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._in: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.ended = False
        self._out.put(convert.session_request(first.status, first.items, first).SerializeToString())
        self._call = factory(self._frames(), timeout=timeout)
        self._reader = threading.Thread(target=self._read, name="ase-session-reader", daemon=True)
        self._reader.start()

    def _frames(self) -> Iterator[bytes]:
        while True:
            msg = self._out.get()
            if msg is _CLOSE:
                return
            yield msg

    def _read(self) -> None:
        try:
            for raw in self._call:
                res = convert.result_from_session(pb.SessionResponse.FromString(raw))
                self._in.put(res)  # queued first: whoever sees ``ended`` finds the last result queued
                if res.status == Status.END or res.code != 0:
                    self.ended = True
        except grpc.RpcError as exc:
            if not self.ended:
                self.ended = True
                if exc.code() != grpc.StatusCode.CANCELLED:
                    self._in.put(_rpc_result(exc))
        finally:
            self.ended = True
            self._out.put(_CLOSE)

    def send(self, status: int, items: Iterable[DataItem] = ()) -> None:
        """Send one frame (status 1 continue, 2 last)."""
        if self.ended:
            raise errors.frame_after_end()
        self._out.put(convert.session_request(status, items).SerializeToString())

    def recv(self, timeout: float | None = None) -> Result | None:
        """The next result; None when the stream ended; ``TimeoutError`` after ``timeout`` seconds."""
        if self.ended and self._in.empty():
            self._reader.join(timeout)
            if self._in.empty():
                return None
        try:
            return self._in.get(timeout=timeout)
        except queue.Empty:
            if self.ended and not self._reader.is_alive():
                return None
            raise TimeoutError(f"no session result within {timeout} s") from None

    def results(self, timeout: float | None = None) -> list[Result]:
        """Every result until the session ends (each wait bounded by ``timeout``)."""
        out: list[Result] = []
        while True:
            res = self.recv(timeout)
            if res is None:
                return out
            out.append(res)
            if res.status == Status.END or res.code != 0:
                return out

    def __iter__(self) -> Iterator[Result]:
        return iter(self.results())

    def close(self) -> None:
        """End the stream now (the loader runs ``wrapperDestroy`` and frees the licence)."""
        self._out.put(_CLOSE)
        self._call.cancel()
        self._reader.join(5.0)


class AsyncLoaderClient:
    """The asyncio client (for the gateway): once, info and sessions over one ``grpc.aio`` channel."""

    def __init__(self, address: str, timeout: float | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.channel = grpc.aio.insecure_channel(address, options=_OPTIONS)
        self._once = _callable(self.channel, "unary_unary", _ONCE)
        self._session = _callable(self.channel, "stream_stream", _SESSION)
        self._info = _callable(self.channel, "unary_unary", _INFO)

    async def once_raw(self, body: bytes, timeout: float | None = None) -> bytes:
        out: bytes = await self._once(body, timeout=timeout)
        return out

    async def once(self, req: Request, timeout: float | None = None) -> Result:
        body = convert.once_request(req).SerializeToString()
        try:
            out = await self._once(
                body, timeout=_timeout(req, timeout if timeout is not None else self.timeout)
            )
        except grpc.RpcError as exc:
            return _rpc_result(exc)
        return convert.result_from_once(pb.OnceResponse.FromString(out))

    async def info(self, timeout: float = 5.0) -> pb.InfoResponse:
        return pb.InfoResponse.FromString(await self._info(b"", timeout=timeout))

    def session(self, first: Request, timeout: float | None = None) -> AsyncClientSession:
        call = self._session(timeout=timeout if timeout is not None else self.timeout)
        return AsyncClientSession(call, first)

    async def close(self) -> None:
        await self.channel.close(None)


class AsyncClientSession:
    """One session on the asyncio client: ``await send(...)``, ``await recv()``, ``await close()``."""

    def __init__(self, call: Any, first: Request) -> None:
        self._call = call
        self._first: bytes | None = convert.session_request(
            first.status, first.items, first
        ).SerializeToString()
        self.ended = False

    async def open(self) -> None:
        """Send the first frame (``send``/``recv`` do it too; call it first when one task sends
        while another receives, since gRPC takes one write at a time)."""
        if self._first is not None:
            first, self._first = self._first, None
            await self._write(first)

    async def refused(self) -> int:
        """11503 when the stream failed at once (the loader unreachable); else 0: a refusal for
        lack of a licence comes as the first result, which gRPC does not tell apart here."""
        return errors.NO_LOADER if self.ended else 0

    async def _write(self, msg: bytes) -> None:
        try:
            await self._call.write(msg)
        except (grpc.RpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            # The stream failed (the loader went away): recv() returns why.
            self.ended = True

    async def send(self, status: int, items: Iterable[DataItem] = ()) -> None:
        if self.ended:
            raise errors.frame_after_end()
        await self.open()
        if not self.ended:
            await self._write(convert.session_request(status, items).SerializeToString())

    async def recv(self) -> Result | None:
        """The next result, None when the stream ended."""
        await self.open()
        try:
            raw = await self._call.read()
        except grpc.RpcError as exc:
            self.ended = True
            return _rpc_result(exc)
        if raw is _EOF:
            self.ended = True
            return None
        res = convert.result_from_session(pb.SessionResponse.FromString(raw))
        if res.status == Status.END or res.code != 0:
            self.ended = True
        return res

    async def close(self) -> None:
        self.ended = True
        self._call.cancel()
