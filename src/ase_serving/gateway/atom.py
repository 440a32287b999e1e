"""The atom stage: the public request -> the loader's request, a loader picked and called.

Transport-free like the seed's Atom service (it could be split out behind an RPC): it takes a
parsed, checked body and returns a :class:`~ase_serving.protocol.items.Result`.

* ``parameter.<service>`` -> ``params`` (as strings); a key naming one of the service's outputs
  (an accept entry) -> an expected output with the wanted encoding/compress/format, over the
  schema's defaults; outputs the request does not name are expected with the defaults;
* the payload's data items (decoded by webgate) with their attributes;
* **once**: pick a loader, call it; a loader that is unreachable or draining is excluded and
  another is tried; with every licence busy (the LB says so, or a loader answers 10110) the
  request waits in line for one (first come, first served: :class:`LicenceQueue`; after a
  loader's 10110 it goes back to its place) up to the service's queue timeout, then fails with
  10110;
* **session**: the same pick and wait to open it; the session stays on that loader for its life.
"""

from __future__ import annotations

import time
from typing import Any

from ase_serving import errors
from ase_serving.errors import NoLicence, NoLoader
from ase_serving.gateway.picking import LicenceQueue, Picker
from ase_serving.gateway.routes import Service
from ase_serving.gateway.transport import LoaderSession, LoaderTransport, make_transport
from ase_serving.protocol.items import DataItem, Request, Result
from ase_serving.protocol.public import build_request, output_spec


def to_request(svc: Service, body: dict[str, Any], items: list[DataItem], sid: str, status: int) -> Request:
    """A checked public body (or first frame) -> the loader's request (:func:`build_request`
    with the service's outputs; their list for a request without parameters made once)."""
    header = body.get("header") or {}
    parameter = body.get("parameter")
    params = parameter.get(svc.service_id) or {} if isinstance(parameter, dict) else {}
    accepts = svc.schema.accepts
    expect = svc.cache.get("expect")
    if expect is None:
        expect = svc.cache["expect"] = [output_spec(name, accept) for name, accept in accepts.items()]
    return build_request(svc.service_id, svc.version, sid, header, params, items, status, accepts, expect)


class Atom:
    """Pick a loader for a service and call it through a transport (``lean`` by default)."""

    def __init__(self, picker: Picker, once_timeout: float, transport: LoaderTransport | None = None) -> None:
        self.picker = picker
        self.once_timeout = once_timeout
        self.waits = LicenceQueue(picker)
        self.transport = transport if transport is not None else make_transport("lean")

    async def release(self, svc: Service, address: str) -> None:
        """The licence on ``address`` is free: to the oldest request waiting for it, else the LB."""
        await self.waits.release(svc.service_id, svc.version, address)

    async def _give_back(self, svc: Service, address: str, result: Result | None) -> None:
        # A loader that did not serve the call (unreachable, draining, gone, every licence busy)
        # frees no licence a waiter could use: back to the LB only.
        served = result is None or not (
            result.code in (errors.NO_LOADER, errors.NO_LICENCE)
            or (result.code == errors.WORKER_DIED and self.transport.lost(address))
        )
        await self.waits.release(svc.service_id, svc.version, address, hand_over=served)

    async def _pick(
        self,
        svc: Service,
        exclude: set[str],
        deadline: float,
        why: list[str],
        ticket: int,
        requeue: bool = False,
    ) -> tuple[str, float]:
        """An address with a free licence (as far as the LB knows), waiting in line until
        ``deadline``; and the seconds it waited."""
        try:
            address, waited = await self.waits.acquire(
                svc.service_id, svc.version, exclude, ticket, deadline, why, requeue=requeue
            )
        except NoLoader as exc:
            if exclude:
                raise NoLoader(
                    f"{exc.message}; tried {len(exclude)} loader(s) that did not answer: "
                    f"{', '.join(sorted(exclude))}"
                ) from None
            raise
        if address is None:
            raise NoLicence(
                f"every licence of {svc.service_id} {svc.version} stayed busy for "
                f"{svc.queue_timeout:g} s (the queue timeout): {why[-1] if why else 'overloaded'}; "
                "retry later"
            )
        return address, waited

    async def once(self, svc: Service, req: Request) -> tuple[Result, float]:
        """Run a once request: (result, seconds it waited for a licence).

        Raises :class:`NoLicence` (queue timeout) and :class:`NoLoader` (none, or none answers);
        every other failure is the result's code."""
        start = time.monotonic()
        deadline = start + svc.queue_timeout
        exclude: set[str] = set()
        why: list[str] = []
        waited = 0.0
        ticket = self.waits.ticket()
        requeue = False
        while True:
            address, pick_wait = await self._pick(svc, exclude, deadline, why, ticket, requeue)
            waited += pick_wait
            result: Result | None = None
            try:
                result = await self.transport.once(address, req, self.once_timeout)
            finally:
                await self._give_back(svc, address, result)
            if result.code == errors.NO_LOADER or (
                result.code == errors.WORKER_DIED and self.transport.lost(address)
            ):
                # Unreachable or draining (the call never reached a worker), or the whole loader
                # went away with the call (a worker crash keeps the connection: that is 10911).
                exclude.add(address)
                requeue = False
                continue
            if result.code == errors.NO_LICENCE:  # the LB's view was stale: back to our place in line
                why.append(result.message)
                requeue = True
                continue
            return result, waited

    async def open_session(self, svc: Service, first: Request) -> tuple[LoaderSession, str, float]:
        """Open a session on a loader with a free licence: (session, loader address, seconds waited).

        The first frame is sent here. A loader that cannot be reached is excluded and another
        one tried; one whose licences are all busy after all (10110: the LB's view was stale)
        sends the session back to its place in line, as a once request. The caller must
        :meth:`release` the address when the session ends."""
        start = time.monotonic()
        deadline = start + svc.queue_timeout
        exclude: set[str] = set()
        why: list[str] = []
        waited = 0.0
        ticket = self.waits.ticket()
        requeue = False
        while True:
            address, pick_wait = await self._pick(svc, exclude, deadline, why, ticket, requeue)
            waited += pick_wait
            # The licence picked is this function's until it returns the open session with it:
            # every other way out closes the session and gives the licence back, once.
            opened, refused = False, 0
            try:
                session = self.transport.session(address, first, svc.session_timeout + 5.0)
                try:
                    await session.open()
                    refused = errors.NO_LOADER if session.ended else await session.refused()
                    opened = refused == 0
                finally:
                    if not opened:
                        await session.close()
            finally:
                if not opened:
                    # A loader that did not take the session has no licence to hand over.
                    await self.waits.release(svc.service_id, svc.version, address, hand_over=refused == 0)
            if opened:
                return session, address, waited
            requeue = refused == errors.NO_LICENCE
            if requeue:
                why.append(f"the loader at {address} had every licence busy")
            else:
                exclude.add(address)

    async def close(self) -> None:
        await self.waits.close()
        await self.transport.close()
