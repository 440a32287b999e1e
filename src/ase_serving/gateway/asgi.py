"""The ASGI types and the error body shared by the gateway's HTTP and WebSocket code."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from ase_serving import errors
from ase_serving.errors import AseError

log = logging.getLogger("ase_serving.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):
    """The client went away (HTTP disconnect before the body was read, or a closed WebSocket)."""


def error_body(code: int, message: str, sid: str = "", status: int | None = None) -> bytes:
    """``{"header": {"code", "message", "sid"}}``; a session's error frame also has ``status``."""
    header: dict[str, Any] = {"code": code, "message": message, "sid": sid}
    if status is not None:
        header["status"] = status
    return orjson.dumps({"header": header})


def retry_headers(exc: Exception, default: int) -> list[tuple[bytes, bytes]]:
    """``Retry-After`` for a 10110 answer: the error's own wait (a consumer's limit) or ``default``."""
    if getattr(exc, "code", None) != errors.NO_LICENCE:
        return []
    return [(b"retry-after", str(getattr(exc, "retry_after", default)).encode())]


def server_error(exc: Exception, sid: str, what: str) -> AseError:
    """The protocol's answer to an exception that is not an :class:`AseError` (a gateway bug),
    logged here with its traceback under the request's sid."""
    log.error("sid=%s %s failed in the gateway: %r", sid, what, exc, exc_info=exc)
    return AseError(
        f"the gateway failed on this request ({type(exc).__name__}); its log has the details under sid {sid}",
        errors.SERVER_ERROR,
    )
