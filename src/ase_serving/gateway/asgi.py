"""The ASGI types and the error body shared by the gateway's HTTP and WebSocket code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from ase_serving import errors

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
