"""A worker's licence slots (:class:`ase_serving.loader.worker_slots.Slots`), in-process."""

from __future__ import annotations

import threading

from ase_serving.loader.worker_slots import Slots


def test_a_drain_wakes_when_direct_callers_drop_to_its_bound_not_only_to_zero() -> None:
    slots = Slots(lic=3)
    assert slots.take(direct=True) and slots.take(direct=True)
    done = threading.Event()

    def drain() -> None:  # as a stopping worker does: wait until only its open sessions hold slots
        slots.wait_direct(lambda: 1, timeout=60)
        done.set()

    waiter = threading.Thread(target=drain, daemon=True)
    waiter.start()
    slots.give(direct=True)  # one direct call ends: 1 left, which the bound allows
    # Woken by that release (before the fix only a release to 0 woke it: it slept its 60 s).
    assert done.wait(timeout=20)
    assert slots.direct_busy == 1 and slots.busy == 1


def test_slots_refuse_past_lic_and_count_direct_callers_apart() -> None:
    slots = Slots(lic=2)
    assert slots.take() and slots.take(direct=True)
    assert not slots.take(direct=True)
    assert (slots.busy, slots.direct_busy) == (2, 1)
    slots.give()
    assert (slots.busy, slots.direct_busy) == (1, 1)
