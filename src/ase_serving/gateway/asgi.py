"""The ASGI types and the error body shared by the gateway's HTTP and WebSocket code."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable, MutableMapping
from typing import Any

from ase_serving import errors
from ase_serving.errors import AseError

log = logging.getLogger("ase_serving.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):
    """The client went away (HTTP disconnect before the body was read, or a closed WebSocket)."""


def server_error(exc: Exception, sid: str, what: str) -> AseError:
    """The protocol's answer to an exception that is not an :class:`AseError` (a gateway bug),
    logged here with its traceback under the request's sid."""
    log.error("sid=%s %s failed in the gateway: %r", sid, what, exc, exc_info=exc)
    return AseError(
        f"the gateway failed on this request ({type(exc).__name__}); its log has the details under sid {sid}",
        errors.SERVER_ERROR,
    )


class Throttle:
    """At most one log line per key every ``every`` seconds: a gateway failing every request the
    same way (a loader down at 30,000 requests/s) logs one line per second per (service, code),
    each saying how many like it were held back since the last."""

    def __init__(self, every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._last: dict[Hashable, tuple[float, int]] = {}

    def allow(self, key: Hashable) -> int | None:
        """None: hold this line back; else log it, with the count of lines held back before it."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.every:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) > 4096:
            self._last.clear()
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0

    def note(self, held: int) -> str:
        return f" ({held} more like it in the last {self.every:g} s not logged)" if held else ""
