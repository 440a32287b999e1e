"""The loader's gRPC adapter (``ase.loader.v1.Loader``): forwards bytes to the pool, never parses bodies.

The methods are registered with identity (de)serializers: a OnceRequest goes to a worker as the
bytes that came off the wire and the worker's serialized OnceResponse goes back the same way. The
only things decided here are admission (state, free slot -> 10110 at once), timeouts, the life of
a session stream, and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import grpc

from ase_serving import errors
from ase_serving.loader import convert
from ase_serving.loader.metrics import LoaderMetrics
from ase_serving.loader.pool import OnceAnswer, Pool, PoolSession
from ase_serving.loader.proto import loader_pb2 as pb
from ase_serving.loader.settings import LoaderSettings

log = logging.getLogger("ase_serving.loader")

SERVICE = "ase.loader.v1.Loader"
STARTING, SERVING, DRAINING = "starting", "serving", "draining"
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from the stubs


class LoaderService:
    """Once, Session and Info over the worker pool."""

    def __init__(self, pool: Pool, settings: LoaderSettings, metrics: LoaderMetrics) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.state = STARTING
        self._no_lic = convert.once_error(errors.NO_LICENCE, "every engine licence of this loader is busy")
        self._not_serving = {
            STARTING: convert.once_error(errors.NO_LOADER, "loader is starting"),
            DRAINING: convert.once_error(errors.NO_LOADER, "loader is draining"),
        }
        self._no_once = convert.once_error(
            errors.UNSUPPORTED_MODE, "this service takes sessions only (no wrapperOnceExec)"
        )
        self._once_ok = self._session_ok = False

    def serving(self) -> None:
        """Start taking calls (every worker has run wrapperInit; the modes are known)."""
        modes = self.pool.modes
        self._once_ok, self._session_ok = "once" in modes, "session" in modes
        self.state = SERVING

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        return {
            "Once": grpc.unary_unary_rpc_method_handler(self.once),
            "Session": grpc.stream_stream_rpc_method_handler(self.session),
            "Info": grpc.unary_unary_rpc_method_handler(self.info),
        }

    # -- once -------------------------------------------------------------------------------
    async def once(self, body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        t0 = time.perf_counter()
        if self.state != SERVING:
            self.metrics.count("once", errors.NO_LOADER)
            return self._not_serving[self.state]
        if not self._once_ok:
            self.metrics.count("once", errors.UNSUPPORTED_MODE)
            return self._no_once
        fut = self.pool.submit_once(body)
        if fut is None:
            self.metrics.count("once", errors.NO_LICENCE)
            return self._no_lic
        timeout = self.settings.once_timeout_s
        left = context.time_remaining()
        if left is not None and left < timeout:
            timeout = max(left, 0.0)
        timer = self.pool.loop.call_later(timeout, _expire, fut, timeout)
        try:
            code, out = await fut
        finally:
            timer.cancel()
        self.metrics.count("once", code)
        self.metrics.observe_once(time.perf_counter() - t0)
        return out

    # -- sessions ---------------------------------------------------------------------------
    async def session(self, _requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        first = await context.read()
        if first is _EOF:
            return
        assert isinstance(first, bytes)
        if self.state != SERVING:
            self.metrics.count("session", errors.NO_LOADER)
            await context.write(convert.session_error(errors.NO_LOADER, f"loader is {self.state}"))
            return
        if not self._session_ok:
            self.metrics.count("session", errors.UNSUPPORTED_MODE)
            msg = "this service takes once requests only (no wrapperCreate)"
            await context.write(convert.session_error(errors.UNSUPPORTED_MODE, msg))
            return
        sess = self.pool.open_session(first)
        if sess is None:
            self.metrics.count("session", errors.NO_LICENCE)
            await context.write(convert.session_error(errors.NO_LICENCE, "every engine licence is busy"))
            return
        loop = self.pool.loop
        s = self.settings
        started = loop.time()
        activity = [started]  # last frame from the caller or result from the engine
        pump = loop.create_task(self._pump(sess, context, activity))
        code = 0
        try:
            while True:
                now = loop.time()
                idle_left = activity[0] + s.read_timeout_s - now
                total_left = started + s.session_timeout_s - now
                if idle_left <= 0 or total_left <= 0:
                    code = errors.TIMEOUT
                    if total_left <= 0:
                        why = f"session longer than {s.session_timeout_s:g} s (session_timeout)"
                    else:
                        why = f"no frame for {s.read_timeout_s:g} s (read_timeout)"
                    await context.write(convert.session_error(code, f"timeout: {why}"))
                    break
                try:
                    payload, end = await asyncio.wait_for(sess.results.get(), min(idle_left, total_left))
                except asyncio.TimeoutError:
                    continue
                activity[0] = loop.time()
                if payload:
                    if end:
                        code = pb.SessionResponse.FromString(payload).code
                    await context.write(payload)
                if end:
                    break
        finally:
            pump.cancel()
            sess.close()
            self.metrics.count("session", code)

    async def _pump(
        self, sess: PoolSession, context: grpc.aio.ServicerContext[Any, Any], activity: list[float]
    ) -> None:
        """Caller frames -> the worker, one at a time (the next is read when the last one ran)."""
        assert sess.ack is not None
        if await sess.ack or sess.ended:
            return
        loop = self.pool.loop
        while not sess.ended:
            msg = await context.read()
            if msg is _EOF:
                return
            assert isinstance(msg, bytes)
            activity[0] = loop.time()
            if await sess.frame(msg):
                return

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
            "workers": p.snapshot(),
        }


def _expire(fut: asyncio.Future[OnceAnswer], timeout: float) -> None:
    if fut.done():
        return
    log.warning(
        "a once call got no answer within %g s; its licence stays busy until the engine returns", timeout
    )
    fut.set_result(
        (errors.TIMEOUT, convert.once_error(errors.TIMEOUT, f"engine did not answer within {timeout:g} s"))
    )


def add_to_server(server: grpc.aio.Server, service: LoaderService) -> None:
    handlers = service.handlers()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    with contextlib.suppress(AttributeError):  # registered methods skip the generic lookup (grpcio >= 1.63)
        server.add_registered_method_handlers(SERVICE, handlers)  # type: ignore[attr-defined]
