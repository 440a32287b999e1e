"""Failed logins slowed per client, so that guessing passwords costs the guesser, not the centre.

A password check runs scrypt (~50 ms of a core by design). Per client address (an IPv6 address
counts by its /64, which one host usually holds whole):

- a client's checks run one at a time (a hundred parallel guesses are a queue, not a hundred
  scrypts at once);
- after :attr:`LoginThrottle.free` failures in a row, each further failure closes the client out
  for ``base * 2**(failures - free)`` seconds, at most ``cap``; meanwhile its attempts are refused
  at once, without scrypt (HTTP 429 with ``Retry-After``);
- a right password checked by scrypt forgets the client's failures; a client that stops failing is
  forgotten ``forget`` seconds after its last failure;
- at most ``size`` clients are remembered; when full, the one that failed longest ago is forgotten.

Logins the centre has already verified (see :mod:`.accounts`) cost nothing and are let through
even while their client is closed out: a gateway that logged in before keeps working when another
process on its host (same address) guesses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

#: Failures in a row a client may have before it is slowed down.
FREE = 5
#: Seconds of the first close-out; each further failure doubles it ...
BASE = 1.0
#: ... up to this.
CAP = 60.0
#: Clients remembered at most.
SIZE = 10_000
#: Seconds after its last failure a client is forgotten.
FORGET = 900.0


def client_key(host: str) -> str:
    """The address a client is counted by: IPv4 as is, IPv6 by its /64."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass
class _Client:
    failures: int = 0
    #: Clock time before which the client's attempts are refused.
    until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """The failures of each client, with the clock injected (``clock()`` -> seconds)."""

    def __init__(
        self,
        free: int = FREE,
        base: float = BASE,
        cap: float = CAP,
        size: int = SIZE,
        forget: float = FORGET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free < 1 or base <= 0 or cap < base or size < 1 or forget < cap:
            raise ValueError("a throttle needs free >= 1, 0 < base <= cap <= forget and size >= 1")
        self.free, self.base, self.cap, self.size, self.forget = free, base, cap, size, forget
        self.clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def _get(self, client: str, now: float) -> _Client | None:
        found = self._clients.get(client)
        if found is not None and now - found.last >= self.forget:
            del self._clients[client]
            return None
        return found

    def wait(self, client: str) -> float:
        """Seconds before ``client`` may try a password again (0: now)."""
        now = self.clock()
        found = self._get(client, now)
        return 0.0 if found is None else max(0.0, found.until - now)

    def failed(self, client: str) -> None:
        now = self.clock()
        found = self._get(client, now)
        if found is None:
            while self._clients and (
                len(self._clients) >= self.size
                or now - next(iter(self._clients.values())).last >= self.forget
            ):
                self._clients.popitem(last=False)  # the one that failed longest ago
            found = self._clients[client] = _Client()
        found.failures += 1
        found.last = now
        self._clients.move_to_end(client)
        if found.failures >= self.free:
            found.until = now + min(self.cap, self.base * 2 ** min(found.failures - self.free, 62))

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    @asynccontextmanager
    async def turn(self, client: str) -> AsyncIterator[None]:
        """Hold ``client``'s one turn at checking a password (waiting for it if taken)."""
        entry = self._turns.get(client)
        if entry is None:
            entry = self._turns[client] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._turns[client]
