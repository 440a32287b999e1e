"""Which loader: the LB as the gateway uses it, and the wait for a free licence.

:class:`LocalPicker` runs a :class:`~ase_serving.lb.balancer.Balancer` in this process, fed from
the registry (the default: a pick costs microseconds); :class:`RemotePicker` asks an LB service
(several gateways sharing one view). Both pick, release, and list their nodes.

:class:`LicenceQueue` is how a request waits for a licence: first come, first served, one queue
per (service, version), ordered by arrival ticket. A licence given back here goes straight to the
oldest waiter that may use it (no poll, no herd); licences that appear elsewhere reach the waiters
through the picker's capacity signal (:meth:`LocalPicker.watch`) or, where there can be none
(:class:`RemotePicker`), through the head waiter alone trying again every ``retry`` seconds.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections.abc import Callable, Collection, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ase_serving.errors import NoLicence
from ase_serving.lb.balancer import Balancer, NodeInfo
from ase_serving.lb.feed import RegistryFeed
from ase_serving.lb.wire_client import LbWireClient
from ase_serving.store.base import Registry

if TYPE_CHECKING:
    from ase_serving.lb.client import LbClient

log = logging.getLogger("ase_serving.gateway")

#: A (service, version) pair.
Key = tuple[str, str]
#: Told (service, version) when licences of that pair may have been freed (or loaders changed).
CapacityCallback = Callable[[str, str], None]


class Picker(Protocol):
    async def pick(self, service: str, version: str, exclude: Collection[str] = ()) -> str: ...

    async def release(self, service: str, version: str, address: str) -> None: ...

    async def nodes(self) -> list[NodeInfo]: ...

    def watch(self, callback: CapacityCallback) -> bool:
        """Call ``callback(service, version)`` whenever licences of that pair may have appeared
        other than by :meth:`release` here; False when this picker cannot tell."""
        ...

    async def start(self, wait: float = 5.0) -> None:
        """Start; return once the loaders are known or after ``wait`` s (then retrying)."""
        ...

    async def close(self) -> None: ...


class LocalPicker:
    """A Balancer in this process; fed by ``registry`` when there is one."""

    def __init__(
        self, strategy: str, ttl: float, registry: Registry | None, cache_file: Path | None = None
    ) -> None:
        self.balancer = Balancer(strategy, ttl=ttl)
        self.feed = (
            RegistryFeed.from_registry(self.balancer, registry, cache_file=cache_file)
            if registry is not None
            else None
        )
        self._watchers: list[CapacityCallback] = []
        self.balancer.on_capacity = self._capacity

    def watch(self, callback: CapacityCallback) -> bool:
        """Every Balancer update that may free licences (a report of a live node with free ones,
        a node added, removed or changing its live flag) calls ``callback``; so do the feed's
        periodic re-reports (every ``ttl / 3`` s), a slow safety net."""
        self._watchers.append(callback)
        return True

    def _capacity(self, service: str, version: str) -> None:
        for callback in self._watchers:
            try:
                callback(service, version)
            except Exception:  # a waiter's bug must not stop the registry feed
                log.exception("capacity callback failed for %s %s", service, version)

    async def start(self, wait: float = 5.0) -> None:
        if self.feed is not None:
            await self.feed.start(wait)

    async def pick(self, service: str, version: str, exclude: Collection[str] = ()) -> str:
        return self.balancer.pick(service, version, 1, exclude)[0]

    async def release(self, service: str, version: str, address: str) -> None:
        self.balancer.release(service, version, address)

    async def nodes(self) -> list[NodeInfo]:
        return self.balancer.nodes()

    def attrs(self, address: str) -> dict[str, Any]:
        """The registry attrs of the loader at ``address`` ({} when unknown)."""
        return self.feed.attrs(address) if self.feed is not None else {}

    async def close(self) -> None:
        if self.feed is not None:
            await self.feed.close()


class RemotePicker:
    """An LB service (``python -m ase_serving.lb``): ``HOST:PORT`` names its lean-wire port (2393),
    ``grpc://HOST:PORT`` its gRPC port (2391; two gRPC calls per request, for interop)."""

    def __init__(self, address: str) -> None:
        self.client: LbWireClient | LbClient
        if address.startswith("grpc://"):
            from ase_serving.lb.client import LbClient  # grpc: only for a gateway that asks for it

            self.client = LbClient(address.removeprefix("grpc://"))
        else:
            self.client = LbWireClient(address)

    async def start(self, wait: float = 5.0) -> None:
        pass

    async def pick(self, service: str, version: str, exclude: Collection[str] = ()) -> str:
        return (await self.client.pick(service, version, 1, exclude))[0]

    async def release(self, service: str, version: str, address: str) -> None:
        await self.client.release(service, version, address)

    async def nodes(self) -> list[NodeInfo]:
        return await self.client.nodes()

    def watch(self, callback: CapacityCallback) -> bool:
        """No signal: licences freed by other gateways show only in the LB service's answers."""
        return False

    async def close(self) -> None:
        await self.client.close()


class _Waiter:
    """One request waiting in a :class:`LicenceQueue`; ordered by its arrival ticket."""

    __slots__ = ("exclude", "future", "queued", "ticket", "why")

    def __init__(
        self, ticket: int, exclude: Collection[str], why: list[str], future: asyncio.Future[str]
    ) -> None:
        self.ticket = ticket
        self.exclude = exclude
        self.why = why
        self.future = future
        self.queued = False

    def __lt__(self, other: _Waiter) -> bool:
        return self.ticket < other.ticket


class LicenceQueue:
    """First come, first served waits for a licence, one queue per (service, version).

    Every request takes a :meth:`ticket` when it arrives and keeps it; the queue is ordered by
    ticket. :meth:`acquire` picks at once only when no older request is queued for the pair (a new
    arrival never overtakes); otherwise, or when the LB says every licence is busy, the request
    queues and waits until one is given to it or its deadline passes.

    Licences reach the queue three ways, always oldest waiter first:

    * :meth:`release` here hands the address straight to the oldest waiter that has not excluded
      it: the licence stays counted busy in the LB, nobody else wakes, nothing polls;
    * the picker's capacity signal (:meth:`Picker.watch`; a new arrival behind others does the
      same) starts a *dispatch* for the pair: the queued waiters pick in ticket order, stopping at
      the first that the LB refuses (a waiter that excluded some loaders and is refused is passed
      over: the next one may use what it excluded);
    * where the picker gives no signal (:class:`RemotePicker`: other gateways' releases), and after
      a loader answered 10110 (the LB's view was stale), a timer starts a dispatch every ``retry``
      seconds while waiters remain: one pick per tick (the head's), never one per waiter.

    A request that a loader refused with 10110 goes back with :meth:`acquire` (``requeue=True``)
    to its place, by its original ticket. A waiter that times out or is cancelled leaves the queue;
    an address handed to it meanwhile goes on to the next waiter, or back to the LB.

    Across several gateways each keeps its own queue: the order holds per gateway; between
    gateways the LB's picks decide. Use it from one asyncio loop.
    """

    def __init__(self, picker: Picker, retry: float = 0.05) -> None:
        self.picker = picker
        self.retry = retry
        self._queues: dict[Key, list[_Waiter]] = {}
        self._tickets = itertools.count(1)
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._again: set[Key] = set()
        #: Pairs whose retry timer was asked for while their dispatch ran: armed when it ends.
        self._arm_after: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        #: The LB's last refusal per pair (why a request that never picked is waiting).
        self._refused: dict[Key, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.signalled = picker.watch(self.capacity)

    def ticket(self) -> int:
        """A request's place in line: take one on arrival and pass it to every :meth:`acquire`."""
        return next(self._tickets)

    def waiting(self, service: str, version: str) -> int:
        """How many requests wait for a licence of (service, version)."""
        return len(self._queues.get((service, version), ()))

    # -- waiting ----------------------------------------------------------------------------
    async def acquire(
        self,
        service: str,
        version: str,
        exclude: Collection[str],
        ticket: int,
        deadline: float,
        why: list[str],
        requeue: bool = False,
    ) -> tuple[str | None, float]:
        """(an address with a licence for the request holding ``ticket``, or None once
        ``deadline`` (``time.monotonic()``) passed without one; the seconds it waited in the queue,
        0.0 when it did not queue).

        ``exclude``: addresses the request must not get. ``why`` gets the LB's refusals.
        ``requeue``: a loader answered 10110; wait at the ticket's place, without picking first.
        Raises the picker's errors other than NoLicence (NoLoader: none left to try)."""
        key = (service, version)
        queue = self._queues.get(key)
        picked = False
        if not requeue and not (queue and queue[0].ticket < ticket):
            picked = True
            try:
                return await self.picker.pick(service, version, exclude), 0.0
            except NoLicence as exc:
                why.append(exc.message)
                self._refused[key] = exc.message
        elif not why and key in self._refused:
            why.append(self._refused[key])
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            return None, 0.0
        waiter = _Waiter(ticket, exclude, why, asyncio.get_running_loop().create_future())
        queue = self._queues.setdefault(key, [])
        bisect.insort(queue, waiter)
        waiter.queued = True
        if requeue or (picked and not self.signalled):
            self._arm(key)
        elif not picked:
            self._kick(key)  # someone is ahead: the dispatch serves them first, then maybe us
        try:
            await asyncio.wait((waiter.future,), timeout=left)
        except BaseException:  # cancelled: the client went away
            self._leave(key, waiter)
            raise
        waited = time.monotonic() - now
        if not waiter.future.done():  # the deadline passed
            self._leave(key, waiter)
            return None, waited
        return waiter.future.result(), waited

    def _remove(self, key: Key, waiter: _Waiter) -> None:
        if not waiter.queued:
            return
        waiter.queued = False
        queue = self._queues[key]
        queue.remove(waiter)
        if not queue:
            del self._queues[key]
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()

    def _leave(self, key: Key, waiter: _Waiter) -> None:
        """``waiter`` stops waiting; a licence handed to it meanwhile goes on."""
        self._remove(key, waiter)
        fut = waiter.future
        if not fut.done():
            fut.cancel()
        elif not fut.cancelled() and fut.exception() is None and not self._hand_over(key, fut.result()):
            self._spawn(self.picker.release(key[0], key[1], fut.result()))

    def _hand_over(self, key: Key, address: str) -> bool:
        """Give ``address`` to the oldest waiter of ``key`` that has not excluded it."""
        for waiter in self._queues.get(key, ()):
            if address not in waiter.exclude:
                self._remove(key, waiter)
                waiter.future.set_result(address)
                return True
        return False

    # -- licences coming back ---------------------------------------------------------------
    async def release(self, service: str, version: str, address: str, hand_over: bool = True) -> None:
        """A licence on ``address`` is free: to the oldest waiter that may use it, else to the LB.

        ``hand_over=False``: the loader did not serve the call (unreachable, draining, or every
        licence busy): nothing to hand over, the LB just stops counting it."""
        if not (hand_over and self._hand_over((service, version), address)):
            await self.picker.release(service, version, address)

    def capacity(self, service: str, version: str) -> None:
        """Licences of (service, version) may have appeared elsewhere: the waiters pick, oldest first."""
        self._kick((service, version))

    # -- dispatch ---------------------------------------------------------------------------
    def _kick(self, key: Key) -> None:
        if not self._queues.get(key):
            return
        if key in self._running:
            self._again.add(key)
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        task = asyncio.get_running_loop().create_task(self._dispatch(key), name=f"ase licence queue {key}")
        self._running[key] = task

    def _arm(self, key: Key) -> None:
        """Start a dispatch in ``retry`` seconds (unless one is due; after the running one)."""
        if key in self._running:
            self._arm_after.add(key)
            return
        if key in self._timers or not self._queues.get(key):
            return
        self._timers[key] = asyncio.get_running_loop().call_later(self.retry, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self._kick(key)

    async def _dispatch(self, key: Key) -> None:
        refused = False
        try:
            while True:
                self._again.discard(key)
                refused = await self._serve(key)
                if key not in self._again:
                    break
        except Exception:
            refused = True
            log.exception("licence queue of %s %s: dispatch failed", *key)
        finally:
            del self._running[key]
            self._again.discard(key)
        if key in self._arm_after or (refused and not self.signalled):
            self._arm_after.discard(key)
            self._arm(key)

    async def _serve(self, key: Key) -> bool:
        """Queued waiters pick in ticket order; True when one excluding nothing was refused."""
        service, version = key
        for waiter in list(self._queues.get(key, ())):
            if not waiter.queued:
                continue
            try:
                address = await self.picker.pick(service, version, waiter.exclude)
            except NoLicence as exc:
                self._refused[key] = exc.message
                if waiter.queued and (not waiter.why or waiter.why[-1] != exc.message):
                    waiter.why.append(exc.message)
                if not waiter.exclude:
                    return True
                continue
            except Exception as exc:  # NoLoader (nothing left to try), or the LB service failed:
                if waiter.queued:  # that waiter's answer; the next may fare otherwise (exclusions)
                    self._remove(key, waiter)
                    waiter.future.set_exception(exc)
                continue
            if waiter.queued:
                self._remove(key, waiter)
                waiter.future.set_result(address)
            elif not self._hand_over(key, address):  # it left while the LB answered
                await self.picker.release(service, version, address)
        return False

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop the dispatches and timers (waiters keep waiting until their deadline)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = [*self._running.values(), *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
