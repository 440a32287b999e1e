"""Sessions over WebSocket (docs/protocol.md): frames in, result frames out, one loader a session.

The first text (or binary) frame carries ``header`` (status 0, ``app_id``), ``parameter`` and the
first ``payload``; it is checked like a once request, converted by the atom, and opens a session
on a loader with a free licence. Later frames need only ``header.status`` (1, or 2 for the last)
and ``payload``. Results go back as they come, each with ``header.status`` and ``header.sid``;
after the result with status 2 the socket is closed normally (1000).

Every way a session can end, and what the client sees:

* an error (a bad frame, the loader's code, no licence, 10114 for no frame within
  ``read_timeout`` or a session longer than ``session_timeout``, 10202 for a frame after the
  last one): one frame ``{"header": {"code", "message", "sid", "status": 2}}``, then a close
  with 1008 (the request's fault), 1013 (10110: try again later) or 1011 (the server's);
* the client goes away: the loader's stream is cancelled at once, so the wrapper's
  ``wrapperDestroy`` runs and the licence is free again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ase_serving import errors
from ase_serving.clock import Expired, SessionClock
from ase_serving.errors import AseError, BadRequest, Timeout, TooLarge
from ase_serving.gateway import webgate
from ase_serving.gateway.admission import SESSION, admit, loader_request
from ase_serving.gateway.answers import close_code, deny, error_frame
from ase_serving.gateway.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    Throttle,
    server_error,
)
from ase_serving.gateway.routes import Service
from ase_serving.gateway.transport import LoaderSession
from ase_serving.protocol.items import Request, Status
from ase_serving.protocol.public import result_to_public

if TYPE_CHECKING:
    from ase_serving.gateway.runtime import Gateway

log = logging.getLogger("ase_serving.gateway")
#: The per-session failure lines, one per (service, code) a second at most.
_THROTTLE = Throttle()


#: Client frames kept while a session's loader session is being opened.
EARLY_FRAMES = 64


async def run_session(gw: Gateway, svc: Service, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket connection on a service route."""
    msg = await receive()
    if msg["type"] != "websocket.connect":
        return
    sid = gw.sids.next(svc.schema.sub)
    try:
        consumer = admit(gw, svc, scope, SESSION)
        release = gw.limits.open_session(consumer)
    except AseError as exc:
        await deny(scope, send, exc, sid, gw.settings.retry_after)
        gw.metrics.request(svc.service_id, "session", exc.code)
        return
    try:
        await send({"type": "websocket.accept"})
        conn = _Conn(gw, svc, sid, receive, send)
        code = await conn.serve(consumer)
    finally:
        release()
    gw.metrics.request(svc.service_id, "session", code)
    if code > 0 and svc.http_status(code) >= 500:
        held = _THROTTLE.allow((svc.service_id, code))
        if held is not None:
            log.warning(
                "sid=%s session %s failed with %d: %s%s",
                sid,
                svc.service_id,
                code,
                conn.failure,
                _THROTTLE.note(held),
            )
    elif gw.settings.access_log:
        log.info("sid=%s session %s code=%d", sid, svc.service_id, code)


class _Conn:
    """One accepted WebSocket and, once the first frame is in, its loader session."""

    def __init__(self, gw: Gateway, svc: Service, sid: str, receive: Receive, send: Send) -> None:
        self.gw = gw
        self.svc = svc
        self.sid = sid
        self._receive = receive
        self._send = send
        self.closed = False
        #: The session's read and total limits (made on the first wait, in the event loop).
        self.clock: SessionClock | None = None
        self.client_done = False
        #: The message of the error that ended the session (for the log).
        self.failure = ""
        #: Client messages received while the loader session was being opened.
        self._early: collections.deque[Mapping[str, Any]] = collections.deque()

    # -- the socket -------------------------------------------------------------------------
    async def send_text(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self._send({"type": "websocket.send", "text": text})
        except Exception:  # the client went away meanwhile: nothing to tell it
            self.closed = True

    async def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.close", "code": code})

    async def fail(self, exc: AseError) -> int:
        self.failure = exc.message
        await self.send_text(error_frame(exc, self.sid))
        await self.close(close_code(exc))
        return exc.code

    async def next_frame(self, first: bool) -> dict[str, Any]:
        """The next client frame, parsed and checked; raises ClientGone, Timeout, AseError."""
        svc = self.svc
        clock = self.clock
        if clock is None:
            clock = self.clock = SessionClock(svc.read_timeout, svc.session_timeout)
        clock.idle_on = not self.client_done  # after the last frame, only the session's limit
        try:
            # Straight from the server's queue (cancelling a receive there loses nothing): a
            # client that sends faster than the loader takes frames is slowed down by TCP.
            msg = self._early.popleft() if self._early else await clock.wait(self._receive)
        except Expired as exc:
            if exc.kind == "total":
                raise Timeout(
                    f"the session lasted longer than {svc.session_timeout:g} s (session_timeout)"
                ) from None
            raise Timeout(f"no frame from the client for {svc.read_timeout:g} s (read_timeout)") from None
        clock.touch()
        if msg["type"] == "websocket.disconnect":
            raise ClientGone
        if self.client_done:
            raise errors.frame_after_end()
        data = msg.get("text")
        raw: bytes | str = data if data is not None else (msg.get("bytes") or b"")
        size = len(raw) if isinstance(raw, bytes) or raw.isascii() else len(raw.encode())
        if size > svc.max_frame:
            raise TooLarge(f"a frame has {size} bytes; this service takes frames of at most {svc.max_frame}")
        body = webgate.parse_body(raw)
        webgate.check(svc, body, first=first)
        self.gw.metrics.frame(svc.service_id, "in")
        return body

    # -- the session ------------------------------------------------------------------------
    async def serve(self, consumer: Any) -> int:
        try:
            return await self._serve(consumer)
        except Exception as exc:  # a bug: answered in the protocol (the licence is back already)
            return await self.fail(server_error(exc, self.sid, f"session {self.svc.service_id}"))
        finally:
            if self.clock is not None:
                self.clock.close()

    async def _serve(self, consumer: Any) -> int:
        gw, svc = self.gw, self.svc
        try:
            body = await self.next_frame(first=True)
            req = loader_request(svc, consumer, body, self.sid, SESSION)
            session, address, waited = await self._open(req)
        except ClientGone:
            return -1
        except AseError as exc:
            return await self.fail(exc)
        # From here this function owns the session and its licence: whatever happens next, the
        # ``finally`` closes the one and gives the other back, once.
        try:
            self.client_done = req.status == Status.END
            if waited:
                gw.metrics.queued(svc.service_id, waited)
            gw.metrics.session_opened(svc.service_id)
            try:
                return await self._relay(session)
            finally:
                gw.metrics.session_closed(svc.service_id)
        finally:
            try:
                await session.close()
            finally:
                await gw.atom.release(svc, address)

    async def _open(self, req: Request) -> tuple[LoaderSession, str, float]:
        """The loader session of ``req``, given up when the client leaves meanwhile (it may wait
        in line for a licence): a client gone makes no loader session. The frames that come in
        meanwhile are kept for the relay (up to :data:`EARLY_FRAMES`, then TCP slows the client)."""
        opening = asyncio.ensure_future(self.gw.atom.open_session(self.svc, req))
        watch = asyncio.ensure_future(self._watch())
        try:
            await asyncio.wait((opening, watch), return_when=asyncio.FIRST_COMPLETED)
            if not opening.done() and watch.result():  # the client left first
                opening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await opening  # gives its licence back (its own finally)
                if opening.cancelled():
                    raise ClientGone
            return await opening
        finally:
            watch.cancel()  # a receive cancelled in the server's queue loses nothing

    async def _watch(self) -> bool:
        """Keep the client's messages until it leaves (True) or :data:`EARLY_FRAMES` are kept."""
        early = self._early
        while len(early) < EARLY_FRAMES:
            msg = await self._receive()
            early.append(msg)
            if msg["type"] == "websocket.disconnect":
                return True
        return False

    async def _relay(self, session: LoaderSession) -> int:
        up = asyncio.create_task(self._upstream(session))
        down = asyncio.create_task(self._downstream(session))
        try:
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if down in done:
                return down.result()
            try:
                up.result()
            except ClientGone:
                return -1
            except AseError as exc:
                return await self.fail(exc)
            return await down  # the upstream never ends on its own without an error
        finally:
            for task in (up, down):
                task.cancel()
            for task in (up, down):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _upstream(self, session: LoaderSession) -> None:
        """Client frames -> the loader, until an error or the client leaves."""
        while True:
            body = await self.next_frame(first=False)
            status = webgate.frame_status(body, Status.CONTINUE)
            if status not in (Status.CONTINUE, Status.END):
                raise BadRequest(
                    f"header.status is {status}: frames after the first have 1, or 2 for the last"
                )
            items = webgate.payload_items(body, status)
            if not session.ended:  # else the loader's stream is over and the downstream says why
                await session.send(status, items)
            if status == Status.END:
                self.client_done = True

    async def _downstream(self, session: LoaderSession) -> int:
        """Loader results -> the client; returns the session's code once it ended."""
        svc = self.svc
        while True:
            res = await session.recv()
            if res is None:
                return await self.fail(
                    AseError("the loader ended the session without a final result", errors.WORKER_DIED)
                )
            res.sid = self.sid
            if res.code != 0:
                return await self.fail(AseError(res.message, res.code, http=svc.http_status(res.code)))
            await self.send_text(orjson.dumps(result_to_public(res, session=True)).decode())
            self.gw.metrics.frame(svc.service_id, "out")
            if res.status == Status.END:
                await self.close(1000)
                return 0
