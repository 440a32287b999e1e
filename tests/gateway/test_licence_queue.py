"""First come, first served licence waits (:class:`LicenceQueue`), in-process, on a real Balancer.

No test sleeps a guessed time: the loop is driven until a condition holds (with a generous
deadline), and the Balancer's nodes are fed by hand (or through a RegistryFeed's ``on_change``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, cast

import pytest

from ase_serving import errors
from ase_serving.errors import NoLicence, NoLoader
from ase_serving.gateway.atom import Atom
from ase_serving.gateway.balance import CapacityCallback, LicenceQueue, LocalPicker
from ase_serving.gateway.routes import Service
from ase_serving.lb.feed import RegistryFeed
from ase_serving.protocol.items import Request, Result
from ase_serving.store.base import Instance, InstanceEvent
from tests.support import until as _until

#: Run the loop until a condition holds, letting every ready callback run between checks.
until = functools.partial(_until, interval=0)

SVC, VER = "asr", "1.0"
A, B = "10.0.0.1:9000", "10.0.0.2:9000"
LONG = 60.0  # a deadline no test reaches


class CountingPicker(LocalPicker):
    """The gateway's in-process picker (loadMini), counting picks."""

    def __init__(self, strategy: str = "loadMini") -> None:
        super().__init__(strategy, ttl=3600.0, registry=None)
        self.picks: list[Collection[str]] = []

    async def pick(self, service: str, version: str, exclude: Collection[str] = ()) -> str:
        self.picks.append(set(exclude))
        return await super().pick(service, version, exclude)

    def in_use(self, address: str) -> int:
        return next(n.in_use for n in self.balancer.nodes() if n.address == address)


class SilentPicker(CountingPicker):
    """Like an LB service (RemotePicker): no capacity signal; records which task picked."""

    def __init__(self) -> None:
        super().__init__()
        self.pickers: list[asyncio.Task[Any] | None] = []

    def watch(self, callback: CapacityCallback) -> bool:
        return False

    async def pick(self, service: str, version: str, exclude: Collection[str] = ()) -> str:
        self.pickers.append(asyncio.current_task())
        return await super().pick(service, version, exclude)


class GatedPicker(SilentPicker):
    """An LB that answers a pick only when the test opens the gate (a remote LB's round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_flight = 0

    async def pick(self, service: str, version: str, exclude: Collection[str] = ()) -> str:
        self.in_flight += 1
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        return await super().pick(service, version, exclude)


async def settle(steps: int = 50) -> None:
    """Let every ready callback and task run (nothing here waits on a timer)."""
    for _ in range(steps):
        await asyncio.sleep(0)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(cast(Any, test()))


def setup(picker: CountingPicker, nodes: dict[str, int]) -> LicenceQueue:
    for address, total in nodes.items():
        picker.balancer.report(SVC, VER, address, total=total, idle=total)
    return LicenceQueue(picker)


Body = Callable[..., Awaitable[None]]


def queued(nodes: dict[str, int], picker: type[CountingPicker] = CountingPicker) -> Callable[[Body], Any]:
    """A test whose body runs on a loop of its own with ``picker`` holding ``nodes`` and a
    LicenceQueue over it (closed afterwards): ``async def test_x(picker, queue, *pytest's params)``."""

    def wrap(body: Body) -> Any:
        def test(**params: Any) -> None:
            async def main() -> None:
                made = picker()
                queue = setup(made, nodes)
                try:
                    await body(made, queue, **params)
                finally:
                    await queue.close()

            run(main)

        sig = inspect.signature(body)
        test.__signature__ = sig.replace(parameters=list(sig.parameters.values())[2:])  # type: ignore[attr-defined]
        test.__name__, test.__qualname__, test.__doc__ = body.__name__, body.__qualname__, body.__doc__
        return test

    return wrap


class Line:
    """Requests waiting in a queue, started one after the other (each queued before the next)."""

    def __init__(self, queue: LicenceQueue) -> None:
        self.queue = queue
        self.tasks: dict[str, asyncio.Task[str | None]] = {}
        self.got: list[tuple[str, str | None]] = []

    async def join(
        self, name: str, exclude: Collection[str] = (), deadline: float = LONG, ticket: int | None = None
    ) -> None:
        before = self.queue.waiting(SVC, VER)
        t = self.queue.ticket() if ticket is None else ticket

        async def wait() -> str | None:
            got, waited = await self.queue.acquire(SVC, VER, exclude, t, time.monotonic() + deadline, [])
            assert waited > 0.0
            self.got.append((name, got))
            return got

        self.tasks[name] = asyncio.create_task(wait())
        await until(lambda: self.queue.waiting(SVC, VER) == before + 1, f"{name} queued")

    def done(self) -> list[str]:
        return [name for name, _ in self.got]


async def passed_on(picker: CountingPicker, queue: LicenceQueue, line: Line, behind: bool) -> None:
    """A licence whose waiter went away reached the next waiter ("next", when one is ``behind``),
    else went back to the LB; nobody waits any more."""
    if behind:
        await until(lambda: line.got == [("next", A)], "the next waiter served")
        assert picker.in_use(A) == 1
    else:
        await until(lambda: picker.in_use(A) == 0, "the licence back in the LB")
    assert queue.waiting(SVC, VER) == 0


async def two_waiting(queue: LicenceQueue) -> Line:
    """The only licence held; "w0" then "w1" waiting for it."""
    await hold(queue)
    line = Line(queue)
    await line.join("w0")
    await line.join("w1")
    return line


async def both_ended(
    line: Line, queue: LicenceQueue, error: type[Exception], match: str | None = None
) -> None:
    """The waits of "w0" and "w1" ended with ``error``; nobody waits any more."""
    for name in ("w0", "w1"):
        await until(line.tasks[name].done, f"{name} ended")
        with pytest.raises(error, match=match):
            line.tasks[name].result()
    assert queue.waiting(SVC, VER) == 0


async def hold(queue: LicenceQueue) -> str:
    """Take a licence as a request that arrived first (the queue is empty)."""
    got, waited = await queue.acquire(SVC, VER, (), queue.ticket(), time.monotonic() + LONG, [])
    assert got is not None and waited == 0.0
    return got


@queued({A: 1})
async def test_freed_licences_go_to_the_waiters_in_arrival_order_one_each(
    picker: CountingPicker, queue: LicenceQueue
) -> None:
    assert await hold(queue) == A
    line = Line(queue)
    names = [f"w{i}" for i in range(6)]
    for name in names:
        await line.join(name)
    await settle()
    picks = len(picker.picks)
    for i, name in enumerate(names):
        await queue.release(SVC, VER, A)
        await until(lambda i=i: len(line.got) == i + 1, f"{name} served")
        await settle()
        # Exactly one waiter woke: the oldest; the licence went to it without a pick.
        assert line.got == [(n, A) for n in names[: i + 1]]
        assert queue.waiting(SVC, VER) == len(names) - i - 1
        assert len(picker.picks) == picks
        assert picker.in_use(A) == 1  # handed over: still counted busy in the LB
    await queue.release(SVC, VER, A)
    assert picker.in_use(A) == 0  # nobody waits: back to the LB


@queued({A: 1})
async def test_a_new_arrival_does_not_overtake_the_queue(picker: CountingPicker, queue: LicenceQueue) -> None:
    await hold(queue)
    line = Line(queue)
    await line.join("old")
    # The licence comes back to the LB without a word to the queue (as another path might).
    picker.balancer.release(SVC, VER, A)
    await line.join("new")
    await until(lambda: line.got != [], "a waiter served")
    await settle()
    assert line.got == [("old", A)]
    assert queue.waiting(SVC, VER) == 1  # the newcomer waits behind
    await queue.release(SVC, VER, A)
    await until(lambda: len(line.got) == 2, "the newcomer served")
    assert line.got == [("old", A), ("new", A)]


@queued({A: 1})
async def test_a_capacity_signal_from_the_feed_serves_the_head_waiters_in_order(
    picker: CountingPicker, queue: LicenceQueue
) -> None:
    await hold(queue)
    line = Line(queue)
    for name in ("w0", "w1", "w2"):
        await line.join(name)
    await settle()
    picks = len(picker.picks)
    # A new loader with two licences registers: the registry feed reports it.
    feed = RegistryFeed(picker.balancer)
    inst = Instance(SVC, VER, B, {"lic_total": 2, "lic_idle": 2})
    feed.on_change([InstanceEvent("put", inst, 1)])
    await until(lambda: len(line.got) == 2, "two waiters served")
    await settle()
    assert line.got == [("w0", B), ("w1", B)]
    assert queue.waiting(SVC, VER) == 1
    # Two picks that got B, one refused (w2's), then the dispatch stopped: no herd.
    assert len(picker.picks) - picks == 3
    # Another signal with nothing free: only the head tries.
    queue.capacity(SVC, VER)
    await settle()
    assert len(picker.picks) - picks == 4 and queue.waiting(SVC, VER) == 1
    await queue.release(SVC, VER, B)
    await until(lambda: len(line.got) == 3, "the last waiter served")
    assert line.got[-1] == ("w2", B)


@queued({A: 1})
async def test_a_loader_leaving_ends_the_waits_with_no_loader(
    picker: CountingPicker, queue: LicenceQueue
) -> None:
    line = await two_waiting(queue)
    picker.balancer.remove(SVC, VER, A)
    await both_ended(line, queue, NoLoader)


@queued({A: 1})
async def test_a_requeued_request_goes_back_to_its_place(picker: CountingPicker, queue: LicenceQueue) -> None:
    first = queue.ticket()
    assert await queue.acquire(SVC, VER, (), first, time.monotonic() + LONG, []) == (A, 0.0)
    line = Line(queue)
    await line.join("w1")
    await line.join("w2")
    await settle()
    # The loader answered 10110: the licence goes back to the LB (not to w1), the request
    # goes back to its place: ahead of w1 and w2.
    await queue.release(SVC, VER, A, hand_over=False)
    again = asyncio.create_task(queue.acquire(SVC, VER, (), first, time.monotonic() + LONG, [], requeue=True))
    # The LB has A free again; the queue learns by its retry timer (the view was stale).
    assert (await asyncio.wait_for(again, LONG))[0] == A
    await settle()
    assert line.got == [] and queue.waiting(SVC, VER) == 2
    await queue.release(SVC, VER, A)
    await until(lambda: len(line.got) == 1, "w1 served")
    assert line.got == [("w1", A)]


@queued({A: 1})
async def test_a_timed_out_waiter_leaves_the_queue_and_leaks_nothing(
    picker: CountingPicker, queue: LicenceQueue
) -> None:
    await hold(queue)
    line = Line(queue)
    await line.join("short", deadline=0.2)
    await line.join("long")
    await until(line.tasks["short"].done, "the short wait ended")
    assert line.got == [("short", None)] and queue.waiting(SVC, VER) == 1
    await queue.release(SVC, VER, A)
    await until(lambda: len(line.got) == 2, "the long waiter served")
    assert line.got[-1] == ("long", A)
    await queue.release(SVC, VER, A)
    assert picker.in_use(A) == 0


@pytest.mark.parametrize("behind", [True, False])
@queued({A: 1})
async def test_a_licence_handed_to_a_cancelled_waiter_goes_on(
    picker: CountingPicker, queue: LicenceQueue, behind: bool
) -> None:
    await hold(queue)
    line = Line(queue)
    await line.join("gone")
    if behind:
        await line.join("next")
    # The licence is handed to "gone" and, in the same step, its client goes away.
    await queue.release(SVC, VER, A)
    line.tasks["gone"].cancel()
    await until(line.tasks["gone"].done, "the cancelled wait ended")
    assert line.tasks["gone"].cancelled()
    await passed_on(picker, queue, line, behind)


@queued({A: 1})
async def test_a_cancelled_waiter_leaves_its_place(picker: CountingPicker, queue: LicenceQueue) -> None:
    line = await two_waiting(queue)
    line.tasks["w0"].cancel()
    await until(lambda: queue.waiting(SVC, VER) == 1, "w0 gone")
    await queue.release(SVC, VER, A)
    await until(lambda: len(line.got) == 1, "w1 served")
    assert line.got == [("w1", A)]


@queued({A: 1, B: 1})
async def test_excluded_addresses_are_never_handed_over(picker: CountingPicker, queue: LicenceQueue) -> None:
    assert {await hold(queue), await hold(queue)} == {A, B}
    line = Line(queue)
    await line.join("not-A", exclude={A})
    await line.join("any")
    await queue.release(SVC, VER, A)  # passed on past "not-A"
    await until(lambda: len(line.got) == 1, "a waiter served")
    assert line.got == [("any", A)]
    await queue.release(SVC, VER, A)  # nobody may take it: back to the LB
    assert picker.in_use(A) == 0 and queue.waiting(SVC, VER) == 1
    await queue.release(SVC, VER, B)
    await until(lambda: len(line.got) == 2, "not-A served")
    assert line.got[-1] == ("not-A", B)


@queued({A: 1, B: 1})
async def test_a_dispatch_passes_over_a_waiter_whose_exclusions_leave_it_nothing(
    picker: CountingPicker, queue: LicenceQueue
) -> None:
    await hold(queue)
    await hold(queue)
    line = Line(queue)
    await line.join("not-A", exclude={A})
    await line.join("any")
    picker.balancer.release(SVC, VER, A)  # freed without the queue's knowledge
    picker.balancer.report(SVC, VER, A, total=1, idle=1)  # the report rings the bell
    await until(lambda: len(line.got) == 1, "a waiter served")
    assert line.got == [("any", A)]
    assert queue.waiting(SVC, VER) == 1


@queued({A: 1}, SilentPicker)
async def test_without_a_signal_only_the_head_retries_on_a_timer(
    picker: SilentPicker, queue: LicenceQueue
) -> None:
    queue.retry = 0.01
    await hold(queue)
    line = Line(queue)
    for name in ("w0", "w1", "w2", "w3"):
        await line.join(name)
    start = len(picker.picks)
    await until(lambda: len(picker.picks) >= start + 5, "five retries")
    # One refused pick per timer tick (each tick its own dispatch), not one per waiter.
    ticks = picker.pickers[start:]
    assert len(set(map(id, ticks))) == len(ticks)
    # A licence freed at the LB (another gateway) reaches the head on the next tick.
    picker.balancer.release(SVC, VER, A)
    await until(lambda: len(line.got) == 1, "the head served")
    assert line.got == [("w0", A)]


@pytest.mark.parametrize("behind", [True, False])
@queued({A: 1}, GatedPicker)
async def test_a_waiter_gone_while_the_lb_answers_passes_its_licence_on(
    picker: GatedPicker, queue: LicenceQueue, behind: bool
) -> None:
    queue.retry = 3600.0  # only the test starts dispatches here
    picker.gate.set()
    await hold(queue)
    line = Line(queue)
    await line.join("gone")
    if behind:
        await line.join("next")
    await settle()  # the dispatches the joins started (the gate is open: no wait)
    picker.gate.clear()
    picker.balancer.release(SVC, VER, A)  # freed at the LB (another gateway's release)
    queue.capacity(SVC, VER)
    await until(lambda: picker.in_flight == 1, "the head's pick sent")
    line.tasks["gone"].cancel()  # its client goes away while the LB answers
    await until(line.tasks["gone"].done, "the cancelled wait ended")
    picker.gate.set()
    await until(lambda: picker.in_flight == 0, "the LB's answer handled")
    await passed_on(picker, queue, line, behind)


@queued({A: 1})
async def test_an_lb_failure_ends_the_waits_with_its_error(
    picker: CountingPicker, queue: LicenceQueue
) -> None:
    line = await two_waiting(queue)

    async def broken(service: str, version: str, exclude: Collection[str] = ()) -> str:
        raise errors.AseError("the LB service is unreachable")

    picker.pick = broken  # type: ignore[method-assign]
    queue.capacity(SVC, VER)
    await both_ended(line, queue, errors.AseError, "unreachable")


# -- through the Atom: a loader's 10110 -------------------------------------------------------


@dataclass
class Svc:
    service_id: str = SVC
    version: str = VER
    queue_timeout: float = LONG
    session_timeout: float = 10.0


class FakeTransport:
    """The same loader behind the gateway's transport seam (``transport.once(address, ...)``)."""

    def __init__(self, loader: ScriptedLoader) -> None:
        self.loader = loader

    async def once(self, address: str, req: Request, timeout: float) -> Result:
        return await self.loader.once(req, timeout)

    def session(self, address: str, first: Request, timeout: float) -> ScriptedSession:
        return ScriptedSession(self.loader, first)

    def lost(self, address: str) -> bool:
        return False

    async def close(self) -> None:
        pass


def use_loader(atom: Atom, loader: ScriptedLoader) -> None:
    """Make ``atom`` call ``loader`` through its transport seam."""
    atom.transport = FakeTransport(loader)  # type: ignore[assignment]


class ScriptedLoader:
    """A loader client whose once calls the test answers one by one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, asyncio.Future[Result]]] = []

    async def once(self, req: Request, timeout: float) -> Result:
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.calls.append((req.sid, fut))
        return await fut


class ScriptedSession:
    """A loader session whose first answer the test gives (a code) through ``loader.calls``."""

    def __init__(self, loader: ScriptedLoader, first: Request) -> None:
        self.loader, self.first = loader, first
        self.ended = self.closed = False
        self._code: int | None = None

    async def open(self) -> None:
        if self._code is None:
            fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
            self.loader.calls.append((self.first.sid, fut))
            self._code = (await fut).code

    async def refused(self) -> int:
        await self.open()
        return self._code if self._code in (errors.NO_LICENCE, errors.NO_LOADER) else 0

    async def close(self) -> None:
        self.closed = self.ended = True


def one_loader() -> tuple[CountingPicker, Atom, ScriptedLoader]:
    """An Atom over a picker that knows one loader (A, one licence), which the test answers."""
    picker = CountingPicker()
    picker.balancer.report(SVC, VER, A, total=1, idle=1)
    atom = Atom(picker, once_timeout=10.0)
    loader = ScriptedLoader()
    use_loader(atom, loader)
    return picker, atom, loader


def test_a_loader_10110_sends_the_request_back_to_its_place_in_the_queue() -> None:
    async def main() -> None:
        picker, atom, loader = one_loader()
        svc = cast(Service, Svc())
        tasks = {}
        for sid in ("r0", "r1", "r2"):
            tasks[sid] = asyncio.create_task(atom.once(svc, Request(SVC, VER, sid=sid)))
            await settle()
        await until(lambda: len(loader.calls) == 1 and atom.waits.waiting(SVC, VER) == 2, "r0 calling")
        # The loader is full after all (another gateway): r0 goes back ahead of r1 and r2.
        loader.calls[0][1].set_result(
            Result(errors.NO_LICENCE, "every engine licence of this loader is busy")
        )
        for n, sid in enumerate(["r0", "r1", "r2"]):
            await until(lambda n=n: len(loader.calls) == n + 2, f"call {n + 2}")
            assert loader.calls[-1][0] == sid
            loader.calls[-1][1].set_result(Result(sid=sid))
            result, _ = await tasks[sid]
            assert result.ok and result.sid == sid
        assert [sid for sid, _ in loader.calls] == ["r0", "r0", "r1", "r2"]
        assert picker.in_use(A) == 0
        await atom.close()

    run(main)


def test_the_queue_timeout_still_ends_a_wait_with_10110() -> None:
    async def main() -> None:
        picker, atom, loader = one_loader()
        holder = asyncio.create_task(atom.once(cast(Service, Svc()), Request(SVC, VER, sid="h")))
        await until(lambda: len(loader.calls) == 1, "the holder calling")
        with pytest.raises(NoLicence) as info:
            await atom.once(cast(Service, Svc(queue_timeout=0.2)), Request(SVC, VER, sid="late"))
        assert info.value.code == errors.NO_LICENCE
        assert "stayed busy for 0.2 s (the queue timeout)" in info.value.message
        assert "every licence of" in info.value.message  # the LB's reason
        assert atom.waits.waiting(SVC, VER) == 0
        loader.calls[0][1].set_result(Result(sid="h"))
        assert (await holder)[0].ok and picker.in_use(A) == 0
        await atom.close()

    run(main)


def test_a_session_refused_with_10110_goes_back_to_its_place_in_the_queue() -> None:
    """As a once request: a session start the loader refuses for lack of a licence (another
    gateway took it) waits again, ahead of those that came after it, and does not fail."""

    async def main() -> None:
        picker, atom, loader = one_loader()
        svc = cast(Service, Svc())
        tasks = {}
        for sid in ("s0", "s1"):
            tasks[sid] = asyncio.create_task(atom.open_session(svc, Request(SVC, VER, sid=sid)))
            await settle()
        await until(lambda: len(loader.calls) == 1 and atom.waits.waiting(SVC, VER) == 1, "s0 opening")
        loader.calls[0][1].set_result(
            Result(errors.NO_LICENCE, "every engine licence of this loader is busy")
        )
        # s0 is back in line, ahead of s1; the licence went back to the LB, not to s1.
        await until(lambda: len(loader.calls) == 2, "s0 opening again")
        assert loader.calls[-1][0] == "s0" and not tasks["s1"].done()
        loader.calls[-1][1].set_result(Result(sid="s0"))
        session, address, _ = await tasks["s0"]
        assert address == A and not session.closed
        # s0 holds the licence until it ends; then s1 has it.
        await atom.release(svc, address)
        await until(lambda: len(loader.calls) == 3, "s1 opening")
        assert loader.calls[-1][0] == "s1"
        loader.calls[-1][1].set_result(Result(sid="s1"))
        _, address, _ = await tasks["s1"]
        await atom.release(svc, address)
        assert picker.in_use(A) == 0
        await atom.close()

    run(main)


def test_a_session_still_refused_at_the_queue_timeout_ends_with_10110() -> None:
    async def main() -> None:
        picker, atom, loader = one_loader()
        opening = asyncio.create_task(
            atom.open_session(cast(Service, Svc(queue_timeout=0.5)), Request(SVC, VER, sid="s"))
        )
        for n in range(1, 100):  # refused every time, until the queue timeout
            await until(lambda n=n: len(loader.calls) == n or opening.done(), "another try")
            if opening.done():
                break
            loader.calls[-1][1].set_result(
                Result(errors.NO_LICENCE, "every engine licence of this loader is busy")
            )
        with pytest.raises(NoLicence) as info:
            await opening
        assert "had every licence busy" in info.value.message
        assert picker.in_use(A) == 0 and atom.waits.waiting(SVC, VER) == 0
        await atom.close()

    run(main)
