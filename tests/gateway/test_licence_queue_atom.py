"""The licence queue behind the :class:`Atom`: a request (or a session start) that a loader
refuses with 10110 goes back to its place in the queue, until the queue timeout. In-process: the
loader is scripted behind the gateway's transport seam, the Balancer is real."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

import pytest

from ase_serving import errors
from ase_serving.errors import NoLicence
from ase_serving.gateway.atom import Atom
from ase_serving.gateway.routes import Service
from ase_serving.protocol.items import Request, Result
from tests.gateway.queue_support import LONG, SVC, VER, A, CountingPicker, settle, until
from tests.support import run


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
