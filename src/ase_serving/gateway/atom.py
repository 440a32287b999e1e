"""The atom stage: the public request -> the loader's request, a loader picked and called.

Transport-free like the seed's Atom service (it could be split out behind an RPC): it takes a
parsed, checked body and returns a :class:`~ase_serving.protocol.items.Result`.

* ``parameter.<service>`` -> ``params`` (as strings); a key naming one of the service's outputs
  (an accept entry) -> an expected output with the wanted encoding/compress/format, over the
  schema's defaults; outputs the request does not name are expected with the defaults;
* the payload's data items (decoded by webgate) with their attributes;
* **once**: pick a loader, call it; a loader that is unreachable or draining is excluded and
  another is tried; with every licence busy (the LB says so, or a loader answers 10110) the
  request waits for one up to the service's queue timeout, then fails with 10110;
* **session**: the same pick and wait to open it; the session stays on that loader for its life.
"""

from __future__ import annotations

import time
from typing import Any

from ase_serving import errors
from ase_serving.errors import NoLicence, NoLoader
from ase_serving.gateway.balance import LicenceWaits, Picker
from ase_serving.gateway.routes import Service
from ase_serving.gateway.transport import LoaderSession, LoaderTransport, make_transport
from ase_serving.protocol.items import DataItem, DataType, OutputSpec, Request, Result
from ase_serving.protocol.public import OUTPUT_DESC_KEYS, param_text


def _output_spec(name: str, accept: dict[str, Any], wanted: Any) -> OutputSpec:
    kind = DataType.from_field(str(accept.get("dataType", "text"))) or DataType.OTHER
    desc = {k: param_text(accept[k]) for k in OUTPUT_DESC_KEYS if isinstance(accept.get(k), (str, int))}
    if isinstance(wanted, dict):
        desc.update({k: param_text(v) for k, v in wanted.items() if k in OUTPUT_DESC_KEYS and v is not None})
    return OutputSpec(key=name, type=int(kind), desc=desc)


def to_request(svc: Service, body: dict[str, Any], items: list[DataItem], sid: str, status: int) -> Request:
    """A checked public body (or first frame) -> the loader's request."""
    header = body.get("header") or {}
    parameter = body.get("parameter")
    params = parameter.get(svc.service_id) or {} if isinstance(parameter, dict) else {}
    headers = {k: v if type(v) is str else param_text(v) for k, v in header.items() if v is not None}
    headers["sid"] = sid
    accepts = svc.schema.accepts
    if not params:  # the common case: every output with the schema's defaults (built once)
        expect = svc.cache.get("expect")
        if expect is None:
            expect = svc.cache["expect"] = [
                _output_spec(name, accept, None) for name, accept in accepts.items()
            ]
        return Request(svc.service_id, svc.version, sid, headers, {}, expect, [], items, status)
    req_params = {k: param_text(v) for k, v in params.items() if k not in accepts and v is not None}
    expect = [_output_spec(name, accept, params.get(name)) for name, accept in accepts.items()]
    return Request(svc.service_id, svc.version, sid, headers, req_params, expect, [], items, status)


class Atom:
    """Pick a loader for a service and call it through a transport (``lean`` by default)."""

    def __init__(self, picker: Picker, once_timeout: float, transport: LoaderTransport | None = None) -> None:
        self.picker = picker
        self.once_timeout = once_timeout
        self.waits = LicenceWaits()
        self.transport = transport if transport is not None else make_transport("lean")

    async def release(self, svc: Service, address: str) -> None:
        await self.picker.release(svc.service_id, svc.version, address)
        self.waits.freed(svc.service_id, svc.version)

    async def _pick(
        self, svc: Service, exclude: set[str], deadline: float, why: list[str]
    ) -> tuple[str, float]:
        """An address with a free licence (as far as the LB knows), waiting until ``deadline``;
        and the seconds it waited."""
        waited = 0.0
        while True:
            try:
                return await self.picker.pick(svc.service_id, svc.version, exclude), waited
            except NoLicence as exc:
                why.append(exc.message)
            except NoLoader as exc:
                if exclude:
                    raise NoLoader(
                        f"{exc.message}; tried {len(exclude)} loader(s) that did not answer: "
                        f"{', '.join(sorted(exclude))}"
                    ) from None
                raise
            t0 = time.monotonic()
            await self._wait(svc, deadline, why)
            waited += time.monotonic() - t0

    async def _wait(self, svc: Service, deadline: float, why: list[str]) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoLicence(
                f"every licence of {svc.service_id} {svc.version} stayed busy for "
                f"{svc.queue_timeout:g} s (the queue timeout): {why[-1] if why else 'overloaded'}; "
                "retry later"
            )
        await self.waits.wait(svc.service_id, svc.version, left)

    async def once(self, svc: Service, req: Request) -> tuple[Result, float]:
        """Run a once request: (result, seconds it waited for a licence).

        Raises :class:`NoLicence` (queue timeout) and :class:`NoLoader` (none, or none answers);
        every other failure is the result's code."""
        start = time.monotonic()
        deadline = start + svc.queue_timeout
        exclude: set[str] = set()
        why: list[str] = []
        waited = 0.0
        while True:
            address, pick_wait = await self._pick(svc, exclude, deadline, why)
            waited += pick_wait
            try:
                result = await self.transport.once(address, req, self.once_timeout)
            finally:
                await self.release(svc, address)
            if result.code == errors.NO_LOADER or (
                result.code == errors.WORKER_DIED and self.transport.lost(address)
            ):
                # Unreachable or draining (the call never reached a worker), or the whole loader
                # went away with the call (a worker crash keeps the connection: that is 10911).
                exclude.add(address)
                continue
            if result.code == errors.NO_LICENCE:  # the LB's view was stale: wait and pick again
                why.append(result.message)
                t0 = time.monotonic()
                await self._wait(svc, deadline, why)
                waited += time.monotonic() - t0
                continue
            return result, waited

    async def open_session(self, svc: Service, first: Request) -> tuple[LoaderSession, str, float]:
        """Open a session on a loader with a free licence: (session, loader address, seconds waited).

        The first frame is sent here; a loader whose stream fails at once (unreachable) is
        excluded and another one tried. The caller must :meth:`release` the address when the
        session ends."""
        start = time.monotonic()
        deadline = start + svc.queue_timeout
        exclude: set[str] = set()
        why: list[str] = []
        waited = 0.0
        while True:
            address, pick_wait = await self._pick(svc, exclude, deadline, why)
            waited += pick_wait
            session = self.transport.session(address, first, svc.session_timeout + 5.0)
            try:
                await session.open()
            except BaseException:
                await session.close()
                await self.release(svc, address)
                raise
            if not session.ended:
                return session, address, waited
            await session.close()
            await self.release(svc, address)
            exclude.add(address)

    async def close(self) -> None:
        await self.transport.close()
