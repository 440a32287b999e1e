"""Shared by the in-process tests of the licence queue (:class:`LicenceQueue`, alone and through
the :class:`Atom`): pickers over a real Balancer, and ways to drive the loop without sleeping."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Collection
from typing import Any

from ase_serving.gateway.picking import CapacityCallback, LocalPicker
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
