"""First come, first served licence waits (:class:`LicenceQueue`), in-process, on a real Balancer.

No test sleeps a guessed time: the loop is driven until a condition holds (with a generous
deadline), and the Balancer's nodes are fed by hand (or through a RegistryFeed's ``on_change``).
The same queue behind the Atom, with a loader that refuses: test_licence_queue_atom.py.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import pytest

from ase_serving import errors
from ase_serving.errors import NoLoader
from ase_serving.gateway.picking import LicenceQueue
from ase_serving.lb.feed import RegistryFeed
from ase_serving.store.base import Instance, InstanceEvent
from tests.gateway.queue_support import (
    LONG,
    SVC,
    VER,
    A,
    B,
    CountingPicker,
    GatedPicker,
    SilentPicker,
    settle,
    until,
)
from tests.support import run


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
