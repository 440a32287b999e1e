"""Each consumer's limits in one gateway process: requests per second (a token bucket) and
sessions open at once."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ase_serving.errors import OverLimit
from ase_serving.gateway.consumer_book import Consumer


class Limits:
    """Each consumer's requests per second (a token bucket) and sessions open at once, in this
    process. ``share`` is this process's part of a limit (1 / the number of gateway workers)."""

    def __init__(self, share: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self.clock = clock
        self._buckets: dict[tuple[str, float], list[float]] = {}  # -> [tokens, last time]
        self._open: dict[str, int] = {}

    def request(self, consumer: Consumer | None) -> None:
        """Count one request (a once request or a session start); :class:`OverLimit` when over."""
        if consumer is None or consumer.rps <= 0:
            return
        rate = consumer.rps * self.share
        now = self.clock()
        bucket = self._buckets.get((consumer.app_id, consumer.rps))
        if bucket is None:
            bucket = self._buckets[(consumer.app_id, consumer.rps)] = [max(1.0, rate), now]
        tokens = min(max(1.0, rate), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return
        bucket[0] = tokens
        raise OverLimit(
            f"app {consumer.app_id} is over its limit of {consumer.rps:g} requests per second: slow down",
            retry_after=max(1, math.ceil((1.0 - tokens) / rate)),
        )

    def open_session(self, consumer: Consumer | None) -> Callable[[], None]:
        """Count one open session; returns its release. :class:`OverLimit` when at the limit."""
        if consumer is None or consumer.sessions <= 0:
            return _nothing
        app = consumer.app_id
        allowed = max(1, int(consumer.sessions * self.share))
        if self._open.get(app, 0) >= allowed:
            raise OverLimit(
                f"app {app} has {consumer.sessions} sessions open, its limit: end one first", retry_after=1
            )
        self._open[app] = self._open.get(app, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[app] -= 1

        return release


def _nothing() -> None:
    return None
