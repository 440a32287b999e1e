"""The etcd backend against a real etcd: auth, endpoint failover, restarts under a watch, leases, compaction.

The generic config/registry behaviour is the shared contract suite's; these are the etcd-only cases.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from ase_serving.store import (
    Compacted,
    ConfigEvent,
    ConfigKey,
    ConfigScope,
    Instance,
    InvalidName,
    LeaseLost,
    StoreAuthFailed,
    StoreUnavailable,
    open_backend,
)
from ase_serving.store.etcd import parse_address
from tests.store.etcd_server import EtcdServer, free_port, start_etcd
from tests.support import run

T = TypeVar("T")
KEY = ConfigKey("proj", "grp", "asr", "v1", "schema.json")
SCOPE = ConfigScope("proj", "grp")


async def next_event(events: AsyncIterator[ConfigEvent], timeout: float = 10.0) -> ConfigEvent:
    return await asyncio.wait_for(anext(events), timeout)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    server = start_etcd(tmp_path / "etcd")
    yield server
    server.kill()


@pytest.fixture
def etcd_auth(tmp_path: Path) -> Iterator[EtcdServer]:
    server = start_etcd(tmp_path / "etcd", auth=True)
    yield server
    server.kill()


def test_parse_address() -> None:
    assert parse_address("etcd://h1:2379,h2") == [("h1", 2379), ("h2", 2379)]
    assert parse_address("etcd://[::1]:23790/") == [("::1", 23790)]
    for bad in ("etcd://", "etcd://h1:x", "etcd://h1:2379/path", "etcd://h1:70000", "http://h1:2379"):
        with pytest.raises(InvalidName):
            parse_address(bad)


@pytest.mark.timeout(60)
def test_auth_wrong_password_refused_right_one_works(etcd_auth: EtcdServer) -> None:
    async def main() -> None:
        wrong = open_backend(etcd_auth.address, "root", "not-the-password")
        with pytest.raises(StoreAuthFailed, match="password"):
            await wrong.config.ping()
        with pytest.raises(StoreAuthFailed):
            await wrong.config.put(KEY, b"x")
        await wrong.close()

        anonymous = open_backend(etcd_auth.address)
        with pytest.raises(StoreAuthFailed):
            await anonymous.config.put(KEY, b"x")
        await anonymous.close()

        right = etcd_auth.backend()
        await right.config.ping()
        item = await right.config.put(KEY, b"hello")
        assert (await right.config.get(KEY)).content == b"hello"
        assert item.revision == 1
        await right.close()

    run(main())
    # What we wrote is really in etcd, under the documented layout.
    assert "hello" not in etcd_auth.etcdctl("get", "--prefix", "/ase/config/proj/")  # stored as base64 JSON
    assert "/ase/config/proj/grp/asr/v1/schema.json" in etcd_auth.etcdctl("get", "--prefix", "/ase/config/")


@pytest.mark.timeout(60)
def test_auth_token_renewed_after_etcd_restart(etcd_auth: EtcdServer) -> None:
    async def main() -> None:
        backend = etcd_auth.backend()
        await backend.config.put(KEY, b"one")
        # etcd forgets its simple tokens on restart: the client must authenticate again by itself.
        etcd_auth.stop()
        etcd_auth.start()
        two = await backend.config.put(KEY, b"two")
        assert two.revision == 2
        assert (await backend.config.get(KEY)).content == b"two"
        # A watch opened with the old token after another restart works too.
        etcd_auth.stop()
        etcd_auth.start()
        events = backend.config.watch(SCOPE, two.store_revision - 1)
        seen = await next_event(events)
        assert seen.item is not None and seen.item.content == b"two"
        await events.aclose()
        await backend.close()

    run(main())


@pytest.mark.timeout(60)
def test_failover_to_the_next_endpoint(etcd: EtcdServer) -> None:
    dead = f"127.0.0.1:{free_port()}"

    async def main() -> None:
        started = time.monotonic()
        backend = open_backend(f"etcd://{dead},127.0.0.1:{etcd.client_port}")
        assert time.monotonic() - started < 1.0, "opening must not connect"
        await backend.config.put(KEY, b"via the second endpoint")
        assert (await backend.config.get(KEY)).content == b"via the second endpoint"
        status = await backend.config.kv.status()  # type: ignore[attr-defined]
        assert status["endpoint"] == f"127.0.0.1:{etcd.client_port}"
        assert status["version"].startswith("3.")

        # Both down: a prompt StoreUnavailable naming every endpoint, not a hang.
        etcd.kill()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot reach etcd at") as err:
            await backend.config.get(KEY)
        assert time.monotonic() - started < 5.0
        assert dead in str(err.value) and str(etcd.client_port) in str(err.value)
        await backend.close()

    run(main())


@pytest.mark.timeout(60)
def test_restart_mid_watch_breaks_and_resume_gets_later_writes(etcd: EtcdServer) -> None:
    async def main() -> None:
        backend = etcd.backend()
        await backend.config.put(KEY, b"1")
        _, revision = await backend.config.list(SCOPE)
        events = backend.config.watch(SCOPE, revision)
        await backend.config.put(KEY, b"2")
        seen = await next_event(events)
        assert seen.item is not None and seen.item.content == b"2"

        etcd.kill()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await next_event(events)
        assert time.monotonic() - started < 5.0, "a broken stream must be noticed promptly"
        with pytest.raises(StoreUnavailable):
            await backend.config.put(KEY, b"while down")

        etcd.start()
        other = ConfigKey("proj", "grp", "ocr", "v2", "x.yaml")
        await backend.config.put(KEY, b"3")
        await backend.config.put(other, b"new")
        resumed = backend.config.watch(SCOPE, seen.store_revision)
        first, second = await next_event(resumed), await next_event(resumed)
        assert first.item is not None and second.item is not None
        assert (first.key, first.item.content, first.item.revision) == (KEY, b"3", 3)
        assert (second.key, second.item.content) == (other, b"new")
        assert seen.store_revision < first.store_revision < second.store_revision
        await resumed.aclose()
        await backend.close()

    run(main())


@pytest.mark.timeout(60)
def test_lease_lost_when_not_kept_alive_across_a_restart(etcd: EtcdServer) -> None:
    async def main() -> None:
        backend = etcd.backend()
        assert backend.registry is not None
        reg = await backend.registry.register(Instance("asr", "v1", "127.0.0.1:7001", {"lic_total": 2}), 2)
        await backend.registry.keepalive(reg)

        etcd.kill()
        with pytest.raises(StoreUnavailable):
            await backend.registry.keepalive(reg)
        etcd.start()

        # etcd restarts leases with their full TTL; with no keepalive the instance goes away.
        deadline = time.monotonic() + 15
        while (await backend.registry.instances())[0]:
            assert time.monotonic() < deadline, "the lease never expired"
            await asyncio.sleep(0.1)
        with pytest.raises(LeaseLost):
            await backend.registry.keepalive(reg)
        with pytest.raises(LeaseLost):
            await backend.registry.update(reg, {"lic_total": 3})
        await backend.registry.deregister(reg)  # already gone: no error
        await backend.close()

    run(main())


@pytest.mark.timeout(60)
def test_watch_from_compacted_revision(etcd: EtcdServer) -> None:
    async def main() -> None:
        backend = etcd.backend()
        first = await backend.config.put(KEY, b"a")
        await backend.config.put(KEY, b"b")
        last = await backend.config.put(KEY, b"c")
        etcd.etcdctl("compaction", str(last.store_revision))
        with pytest.raises(Compacted, match="list again"):
            await next_event(backend.config.watch(SCOPE, first.store_revision))
        # From the current revision on, watching works again.
        events = backend.config.watch(SCOPE, last.store_revision)
        await backend.config.put(KEY, b"d")
        ev = await next_event(events)
        assert ev.item is not None and ev.item.content == b"d"
        await events.aclose()
        await backend.close()

    run(main())


@pytest.mark.timeout(60)
def test_one_backend_across_event_loops(etcd: EtcdServer) -> None:
    backend = etcd.backend()  # made outside any loop, as the CLI does
    run(backend.config.put(KEY, b"first loop"))
    assert run(backend.config.get(KEY)).content == b"first loop"
    run(backend.close())
    run(backend.close())
