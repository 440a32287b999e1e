"""A worker process's licence slots and what it tells the supervisor about its direct calls.

The supervisor admits what it relays, but gateways on this host call a worker directly too
(:mod:`ase_serving.loader.worker_loop`), and both kinds share the ``lic`` slots: the worker has the
last word (:class:`Slots`). What direct callers did goes to the supervisor in OP_STATS frames
(:class:`DirectStats`), for its /metrics and its free-licence reports.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Slots:
    """``lic`` slots, taken by once calls (whoever sent them) and open sessions; at ``lic`` the
    next call gets 10110."""

    def __init__(self, lic: int) -> None:
        self.lic = lic
        self.busy = 0
        #: The slots direct callers hold (their once calls and sessions).
        self.direct_busy = 0
        self._cond = threading.Condition()

    def take(self, direct: bool = False) -> bool:
        with self._cond:
            if self.busy >= self.lic:
                return False
            self.busy += 1
            if direct:
                self.direct_busy += 1
            return True

    def give(self, direct: bool = False) -> None:
        with self._cond:
            self.busy -= 1
            if direct:
                self.direct_busy -= 1
                # Every release: a drain waits for "no more than at_most()", not only for 0.
                self._cond.notify_all()

    def wait_direct(self, at_most: Callable[[], int], timeout: float) -> None:
        """Wait (at most ``timeout`` s) until direct callers hold no more than ``at_most()`` slots."""
        with self._cond:
            self._cond.wait_for(lambda: self.direct_busy <= at_most(), timeout=timeout)


class DirectStats:
    """The direct calls since the last OP_STATS: results by code (once calls and sessions), and
    the seconds of the once calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: dict[int, int] = {}
        self.session_codes: dict[int, int] = {}
        self.seconds: list[float] = []

    def once(self, code: int, seconds: float | None) -> None:
        with self.lock:
            self.codes[code] = self.codes.get(code, 0) + 1
            if seconds is not None:
                self.seconds.append(seconds)

    def session(self, code: int) -> None:
        with self.lock:
            self.session_codes[code] = self.session_codes.get(code, 0) + 1

    def any(self) -> bool:
        return bool(self.codes or self.session_codes)

    def take(self) -> tuple[dict[int, int], dict[int, int], list[float]]:
        """What was counted (and a fresh start); call it holding :attr:`lock`."""
        out = self.codes, self.session_codes, self.seconds
        self.codes, self.session_codes, self.seconds = {}, {}, []
        return out
