"""The registry contract: the same tests against every backend with a registry (embedded, etcd)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from ase_serving.store import (
    Instance,
    InstanceEvent,
    InvalidName,
    LeaseLost,
    Registry,
    open_backend,
)
from tests.store.conftest import RegistryCase, take

pytestmark = pytest.mark.timeout(90)

TTL = 2.0
#: Leases are checked at some granularity (etcd: ~0.5 s; a busy 2-core machine adds more).
EXPIRY_MARGIN = 3.0


@contextlib.asynccontextmanager
async def watching(
    registry: Registry, after: int, service: str
) -> AsyncIterator[AsyncIterator[InstanceEvent]]:
    """The registry's watch, narrowed to one service (other tests share the server)."""
    events = registry.watch(after)

    async def mine() -> AsyncIterator[InstanceEvent]:
        async for event in events:
            if event.instance.service == service:
                yield event

    filtered = mine()
    try:
        yield filtered
    finally:
        await filtered.aclose()
        await events.aclose()  # type: ignore[attr-defined]


def test_register_list_update_deregister(registry_backend: RegistryCase) -> None:
    case = registry_backend
    service = case.service()

    async def body() -> None:
        reg = case.registry
        inst = Instance(service, "1", "127.0.0.1:7001", {"lic_total": 4, "lic_idle": 4, "live": True})
        registration = await reg.register(inst, ttl=30)
        assert registration.instance == inst and registration.ttl == 30
        found, revision = await reg.instances(service)
        assert revision > 0
        assert [(i.address, i.attrs) for i in found] == [("127.0.0.1:7001", inst.attrs)]
        attrs = {"lic_total": 4, "lic_idle": 1, "live": False, "modes": ["once"], "metrics_url": None}
        updated = await reg.update(registration, attrs)
        assert updated.instance.attrs == attrs and updated.lease == registration.lease
        found, revision2 = await reg.instances(service, "1")
        assert revision2 > revision
        assert [i.attrs for i in found] == [attrs]
        assert found[0].lic("lic_idle") == 1
        await reg.deregister(updated)
        assert (await reg.instances(service))[0] == []
        await reg.deregister(updated)  # already gone: no error

    case.run(body)


def test_watch_reports_register_update_deregister(registry_backend: RegistryCase) -> None:
    case = registry_backend
    service = case.service()

    async def body() -> None:
        reg = case.registry
        _, start = await reg.instances()
        registration = await reg.register(Instance(service, "1", "127.0.0.1:7002", {"lic_idle": 2}), ttl=30)
        async with watching(reg, start, service) as events:
            (registered,) = await take(events, 1)
            registration = await reg.update(registration, {"lic_idle": 0})
            await reg.deregister(registration)
            updated, removed = await take(events, 2)
        assert [(e.kind, e.instance.address, e.instance.attrs) for e in (registered, updated, removed)] == [
            ("put", "127.0.0.1:7002", {"lic_idle": 2}),
            ("put", "127.0.0.1:7002", {"lic_idle": 0}),
            ("delete", "127.0.0.1:7002", {}),
        ]
        revisions = [e.store_revision for e in (registered, updated, removed)]
        assert start < revisions[0] < revisions[1] < revisions[2]

    case.run(body)


@pytest.mark.timeout(60)
def test_lease_expiry_and_keepalive(registry_backend: RegistryCase) -> None:
    case = registry_backend
    service = case.service()

    async def body() -> None:
        reg = case.registry
        _, start = await reg.instances()
        kept = await reg.register(Instance(service, "1", "127.0.0.1:7010", {"lic_total": 1}), ttl=TTL)
        dropped = await reg.register(Instance(service, "1", "127.0.0.1:7011", {"lic_total": 1}), ttl=TTL)
        registered_at = time.monotonic()

        async def heartbeat() -> None:
            while True:
                await reg.keepalive(kept)
                await asyncio.sleep(TTL / 4)

        beating = asyncio.create_task(heartbeat())
        try:
            async with watching(reg, start, service) as events:
                puts = await take(events, 2)
                assert sorted(e.instance.address for e in puts) == ["127.0.0.1:7010", "127.0.0.1:7011"]
                # Nobody keeps `dropped` alive: watchers hear it go within its TTL (+ margin).
                (gone,) = await take(events, 1, timeout=TTL + EXPIRY_MARGIN)
                elapsed = time.monotonic() - registered_at
            assert (gone.kind, gone.instance.address) == ("delete", "127.0.0.1:7011")
            assert elapsed <= TTL + EXPIRY_MARGIN
            assert [i.address for i in (await reg.instances(service))[0]] == ["127.0.0.1:7010"]
            # The kept one outlives several TTLs.
            while time.monotonic() - registered_at < 3 * TTL:
                assert not beating.done(), beating
                await asyncio.sleep(0.1)
            assert [i.address for i in (await reg.instances(service))[0]] == ["127.0.0.1:7010"]
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        with pytest.raises(LeaseLost):
            await reg.keepalive(dropped)
        with pytest.raises(LeaseLost):
            await reg.update(dropped, {"lic_total": 2})
        assert [i.address for i in (await reg.instances(service))[0]] == ["127.0.0.1:7010"]
        await reg.deregister(kept)
        await reg.deregister(dropped)  # expired: no error

    case.run(body)


def test_instances_are_listed_and_filtered(registry_backend: RegistryCase) -> None:
    case = registry_backend
    service, other = case.service(), case.service()

    async def body() -> None:
        reg = case.registry
        regs = [
            await reg.register(Instance(service, "1", "127.0.0.1:7102"), ttl=30),
            await reg.register(Instance(service, "1", "127.0.0.1:7101"), ttl=30),
            await reg.register(Instance(service, "2", "127.0.0.1:7103"), ttl=30),
            await reg.register(Instance(other, "1", "127.0.0.1:7104"), ttl=30),
        ]
        try:
            both = (await reg.instances(service, "1"))[0]
            assert [(i.service, i.version, i.address) for i in both] == [
                (service, "1", "127.0.0.1:7101"),
                (service, "1", "127.0.0.1:7102"),
            ]
            assert [i.address for i in (await reg.instances(service))[0]] == [
                "127.0.0.1:7101",
                "127.0.0.1:7102",
                "127.0.0.1:7103",
            ]
            assert [i.address for i in (await reg.instances(other))[0]] == ["127.0.0.1:7104"]
            assert (await reg.instances(service, "3"))[0] == []
            everything = [i.path for i in (await reg.instances())[0]]
            assert {r.instance.path for r in regs} <= set(everything)
            assert everything == sorted(everything, key=lambda p: tuple(p.split("/")))
        finally:
            for r in regs:
                await reg.deregister(r)

    case.run(body)


@pytest.mark.parametrize("address", ["http://127.0.0.1:9", "etcd://127.0.0.1:9"], ids=["embedded", "etcd"])
def test_invalid_names_fail_before_any_io(address: str) -> None:
    # Nobody listens there: InvalidName (not StoreUnavailable) shows the check comes first.
    backend = open_backend(address)

    async def body() -> None:
        reg = backend.registry
        assert reg is not None
        try:
            with pytest.raises(InvalidName):
                await reg.instances("bad/service")
            with pytest.raises(InvalidName):
                await reg.instances("svc", "bad version")
            with pytest.raises(InvalidName):
                await reg.register(Instance("svc", "1", "127.0.0.1:1"), ttl=1)
            for bad in (
                ("svc", "1", "has space:1"),
                ("svc", "1", ""),
                ("s/x", "1", "h:1"),
                ("svc", "", "h:1"),
            ):
                with pytest.raises(InvalidName):
                    Instance(*bad)
        finally:
            await backend.close()

    asyncio.run(body())
