"""Capped exponential backoff with jitter: the one retry schedule of the project (views of an
unreachable store, a loader's registration, a worker that fails to start again)."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays ``base * 2**n`` capped at ``cap``, each drawn from ``[d/2, d]`` so that many clients
    that lost the same store do not all come back in the same instant.

    ``next()`` gives the delay before the next attempt; ``reset()`` after a success. ``uniform``
    draws the jitter (``random.uniform``; a test passes its own to get exact delays).
    """

    def __init__(
        self,
        base: float = 0.2,
        cap: float = 5.0,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, not ({base:g}, {cap:g})")
        self.base = base
        self.cap = cap
        self.uniform = uniform
        self.failures = 0

    def next(self) -> float:
        # The exponent is bounded so that a store down for days cannot overflow the float.
        delay = min(self.cap, self.base * 2 ** min(self.failures, 32))
        self.failures += 1
        return self.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0
