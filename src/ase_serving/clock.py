"""Time limits on the request path that cost no timer per call.

``asyncio.wait_for`` makes a task and a timer for every wait, and ``loop.call_later`` a timer per
call: on a path that runs a call in tens of microseconds, that is as much again. Here one timer
serves many calls (:class:`Deadlines`) or a whole session (:class:`SessionClock`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlines:
    """The deadlines of many calls, checked by one timer every ``tick`` seconds.

    A call's deadline may fire up to ``tick`` late.
    """

    def __init__(self, on_expire: Callable[[Any, Any], None], tick: float = 0.05) -> None:
        self.on_expire = on_expire
        self.tick = tick
        self._at: dict[Any, tuple[float, Any]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, key: Any, timeout: float, arg: Any = None) -> None:
        """``on_expire(key, arg)`` once ``timeout`` seconds passed, unless :meth:`discard` came first."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._at[key] = (loop.time() + timeout, arg)
        if self._timer is None:
            self._timer = loop.call_later(self.tick, self._sweep)

    def discard(self, key: Any) -> None:
        self._at.pop(key, None)

    def __len__(self) -> int:
        return len(self._at)

    def _sweep(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        due = [(k, arg) for k, (at, arg) in self._at.items() if at <= now]
        for key, arg in due:
            del self._at[key]
            self.on_expire(key, arg)
        if self._at and self._timer is None:
            self._timer = loop.call_later(self.tick, self._sweep)

    def close(self) -> None:
        self._at.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Expired(Exception):
    """A session's limit passed: ``kind`` is ``"idle"`` or ``"total"``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class SessionClock:
    """A session's idle limit (since the last :meth:`touch`) and total limit, kept by one timer.

    :meth:`get` waits for a queue's next item and raises :class:`Expired` when a limit passes
    first; the timer is re-armed only when it fires early (activity moved the idle deadline).
    ``idle = None`` (or :attr:`idle_on` False) checks the total limit only.
    """

    def __init__(self, idle: float | None, total: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.started = self.last = self.loop.time()
        self.idle = idle
        self.total = total
        self.idle_on = idle is not None
        self.expired: str | None = None
        self._waiter: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def touch(self) -> None:
        self.last = self.loop.time()

    def _due(self) -> tuple[float, str]:
        end = self.started + self.total
        if self.idle_on and self.idle is not None and self.last + self.idle < end:
            return self.last + self.idle, "idle"
        return end, "total"

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_at(self._due()[0], self._fire)

    def _fire(self) -> None:
        self._timer = None
        at, kind = self._due()
        if self.loop.time() < at:
            self._arm()
            return
        self.expired = kind
        if self._waiter is not None:
            self._waiter.cancel()

    async def get(self, queue: asyncio.Queue[T]) -> T:
        """The queue's next item; :class:`Expired` when a limit passes before it comes."""
        if self.expired is None and not queue.empty():
            return queue.get_nowait()
        return await self.wait(queue.get)

    async def wait(self, get: Callable[[], Awaitable[T]]) -> T:
        """What ``get()`` returns; :class:`Expired` when a limit passes first (``get`` is then
        cancelled: it must be safe to cancel, as ``asyncio.Queue.get`` is)."""
        if self.expired is None:
            at, _kind = self._due()
            if self.loop.time() >= at:
                self._fire()
        if self.expired is not None:
            raise Expired(self.expired)
        task = asyncio.current_task(self.loop)  # with the loop: no getpid() per call (3.11)
        self._waiter = task
        self._arm()
        try:
            return await get()
        except asyncio.CancelledError:
            if self.expired is None:
                raise
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            raise Expired(self.expired) from None
        finally:
            self._waiter = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
