"""The transport-free state of one session: which frame comes next, what a result frame means.

The sync and async sessions own a WebSocket each and delegate every decision here, so that the
frame rules of docs/protocol.md ("Sessions over WebSocket") are written once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from ase_serving.client.core import (
    BEGIN,
    CONTINUE,
    END,
    FRAME_AFTER_END,
    NO_ANSWER,
    AseClientError,
    ClientCore,
    Payload,
    Result,
    decode_body,
    payload_body,
    service_key,
)

_SECRET_HEADERS = frozenset({"authorization", "x-api-key"})


class _Redact(logging.Filter):
    """At DEBUG, websockets logs the handshake: its request line (whose query may carry the
    credentials) and headers. Those are cut out of what this logger lets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            if record.msg == "> GET %s HTTP/1.1":
                record.args = (str(args[0]).split("?", 1)[0] + "?...",) if "?" in str(args[0]) else args
            elif record.msg == "> %s: %s" and str(args[0]).lower() in _SECRET_HEADERS:
                record.args = (args[0], "[redacted]")
        return True


#: The logger the sessions' WebSocket connections log to (never with a key, secret or signature).
WS_LOGGER = logging.getLogger("ase_serving.client.websocket")
WS_LOGGER.addFilter(_Redact())


class SessionState:
    """Frames out, results in, for one session on ``route``."""

    def __init__(
        self,
        core: ClientCore,
        service: str,
        route: str,
        params: Mapping[str, Any] | None,
        header: Mapping[str, Any] | None,
    ) -> None:
        self.service = service
        self.route = route
        #: Where, for messages: the URL without the query string (which may carry a signature).
        self.where = core.ws_url(route)
        self.url, self.headers = core.credentials.websocket(self.where, query=core.ws_query_auth)
        self.timeout = core.timeout
        self._app_id = core.credentials.app_id
        self._params = dict(params or {})
        self._header = dict(header or {})
        self.frames_sent = 0
        #: The last frame (status 2) is sent.
        self.ended = False
        #: The last result (status 2) has come.
        self.done = False

    def frame(self, payload: Payload | None, status: int | None) -> str:
        """The next frame to send (status: 0 for the first, 1 after, unless given)."""
        if self.ended:
            raise AseClientError(
                FRAME_AFTER_END, f"the session on {self.where} has already sent its last frame"
            )
        if status is None:
            status = BEGIN if self.frames_sent == 0 else CONTINUE
        if status not in (BEGIN, CONTINUE, END):
            raise ValueError(f"a session frame's status is 0, 1 or 2, not {status!r}")
        if status == BEGIN and self.frames_sent:
            raise ValueError("status 0 is for the first frame only; later frames are 1, the last 2")
        body: dict[str, Any] = {"header": {"status": status}}
        if self.frames_sent == 0:
            body["header"] = {"app_id": self._app_id, **self._header, "status": status}
            if self._params or not self.service.startswith("/"):
                body["parameter"] = {service_key(self.service): self._params}
        if payload:
            body["payload"] = payload_body(payload, status)
        self.frames_sent += 1
        self.ended = status == END
        return orjson.dumps(body).decode()

    def result(self, message: str | bytes) -> Result:
        """A received frame -> its result (an error frame is raised)."""
        try:
            result = decode_body(message, self.where)
        except AseClientError:
            self.done = True
            raise
        self.done = result.status == END
        return result

    def closed(self, code: int | None, reason: str) -> AseClientError:
        """The error for a socket that closed before the last result."""
        how = (
            f"close code {code}" + (f": {reason}" if reason else "") if code is not None else "no close frame"
        )
        return AseClientError(
            NO_ANSWER, f"the gateway closed the session on {self.where} before its last result ({how})"
        )

    def refused(self, http_status: int, body: bytes | bytearray | None) -> AseClientError:
        """The error for a handshake the gateway answered with an HTTP error."""
        try:
            decode_body(bytes(body or b""), self.where, http_status)
        except AseClientError as exc:
            return exc
        return AseClientError(
            NO_ANSWER, f"{self.where} refused the WebSocket (HTTP {http_status})", "", http_status
        )
