"""Every error the gateway answers, rendered in one place for HTTP and WebSocket.

The body is always ``{"header": {"code", "message", "sid"}}`` (a session's error frame adds
``"status": 2``); the HTTP status is the error's (its class's, else its code's: :mod:`ase_serving.errors`),
with ``Retry-After`` for 10110 and ``Allow`` for a 405; a WebSocket gets that frame and a close
code (1013 for 10110, 1011 for a 5xx, else 1008), or, refused before it is accepted, the HTTP
answer itself.
"""

from __future__ import annotations

from typing import Any

import orjson

from ase_serving import errors
from ase_serving.errors import AseError, MethodNotAllowed
from ase_serving.gateway.asgi import Scope, Send

Headers = list[tuple[bytes, bytes]]


def error_body(code: int, message: str, sid: str = "", status: int | None = None) -> bytes:
    """``{"header": {"code", "message", "sid"}}``; a session's error frame also has ``status``."""
    header: dict[str, Any] = {"code": code, "message": message, "sid": sid}
    if status is not None:
        header["status"] = status
    return orjson.dumps({"header": header})


def error_headers(exc: Exception, default: int) -> Headers:
    """``Retry-After`` for a 10110 answer: the error's own wait (a consumer's limit) or
    ``default``; ``Allow`` for a 405: the method its route takes."""
    if isinstance(exc, MethodNotAllowed) and exc.allow:
        return [(b"allow", exc.allow.encode())]
    if getattr(exc, "code", None) != errors.NO_LICENCE:
        return []
    return [(b"retry-after", str(getattr(exc, "retry_after", default)).encode())]


def error_response(exc: AseError, sid: str = "", retry_after: int = 1) -> tuple[int, bytes, Headers]:
    """The HTTP answer to ``exc``: (status, body, extra headers)."""
    return exc.http, error_body(exc.code, exc.message, sid), error_headers(exc, retry_after)


def close_code(exc: AseError) -> int:
    """The WebSocket close code that ends a session with ``exc``."""
    if exc.code == errors.NO_LICENCE:
        return 1013
    return 1011 if exc.http >= 500 else 1008


def error_frame(exc: AseError, sid: str) -> str:
    """A session's last frame for ``exc``: its header with ``status`` 2."""
    return error_body(exc.code, exc.message, sid, status=2).decode()


async def deny(scope: Scope, send: Send, exc: AseError, sid: str = "", retry_after: int = 1) -> None:
    """Refuse a WebSocket before it is accepted: an HTTP answer where the server can send one,
    else accept, one error frame, close."""
    body = error_body(exc.code, exc.message, sid)
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": exc.http,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *error_headers(exc, retry_after),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": error_frame(exc, sid)})
    await send({"type": "websocket.close", "code": close_code(exc)})
