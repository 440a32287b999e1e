"""Views under failure: the store process stops and comes back while views follow it.

Each test runs against a real embedded config centre and a real etcd, each its own process,
stopped and started again by the test.
"""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ase_serving.backoff import Backoff
from ase_serving.store import ConfigEvent, ConfigKey, ConfigScope, Instance, InstanceEvent, open_backend
from ase_serving.store.kv_engine import Put
from ase_serving.store.view import ConfigView, PrefixView, RegistryView
from tests.store.embedded_server import start_embedded
from tests.store.etcd_server import start_etcd
from tests.support import until

pytestmark = pytest.mark.timeout(120)

#: Fast retries, so that the tests see a reconnect soon after the store is back.
QUICK = (0.05, 0.5)
DEADLINE = 20.0


@pytest.fixture(params=["embedded", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A store process of its own (the tests stop and start it)."""
    if request.param == "embedded":
        started: Any = start_embedded(tmp_path / "embedded")
    else:
        started = start_etcd(tmp_path / "etcd")
    try:
        yield started
    finally:
        started.kill()


def contents(view: ConfigView) -> dict[str, bytes]:
    return {key.name: item.content for key, item in view.items().items()}


def summary(events: list[ConfigEvent]) -> list[tuple[str, str, bytes | None]]:
    return [(e.kind, e.key.name, e.item.content if e.item else None) for e in events]


def test_config_view_serves_through_an_outage_and_catches_up(server: Any, tmp_path: Path) -> None:
    scope = ConfigScope("views", "g")
    a, b, c = (ConfigKey("views", "g", "svc", "1", n) for n in ("a.yml", "b.yml", "c.yml"))
    cache = tmp_path / "home" / "config-cache.json"

    async def body() -> None:
        backend = server.backend()
        seen: list[ConfigEvent] = []
        view = ConfigView(backend.config, scope, cache_file=cache, on_change=seen.extend, backoff=QUICK)
        others: list[Any] = []
        try:
            await backend.config.put(a, b"a1")
            await backend.config.put(b, b"b1")
            await backend.config.put(ConfigKey("views", "other", "svc", "1", "x"), b"not in scope")
            await view.start(wait=DEADLINE)
            assert view.connected and view.last_error is None
            assert contents(view) == {"a.yml": b"a1", "b.yml": b"b1"}
            assert summary(seen) == [("put", "a.yml", b"a1"), ("put", "b.yml", b"b1")]
            live = await backend.config.put(a, b"a2")
            assert await view.wait_revision(live.store_revision, DEADLINE)
            assert contents(view)["a.yml"] == b"a2"
            assert stat.S_IMODE(cache.stat().st_mode) == 0o600

            await asyncio.to_thread(server.stop)
            await until(lambda: not view.connected, "the view to notice the store is gone")
            assert view.last_error
            assert contents(view) == {"a.yml": b"a2", "b.yml": b"b1"}
            before_outage = len(seen)

            # A new client started while the store is down serves the disk cache.
            second = server.backend()
            others.append(second)
            seen2: list[ConfigEvent] = []
            view2 = ConfigView(second.config, scope, cache_file=cache, on_change=seen2.extend, backoff=QUICK)
            others.append(view2)
            await view2.start(wait=0.5)
            assert not view2.connected
            assert contents(view2) == {"a.yml": b"a2", "b.yml": b"b1"}
            assert view2.revision == view.revision
            assert summary(seen2) == [("put", "a.yml", b"a2"), ("put", "b.yml", b"b1")]
            # Without a cache there is nothing to serve, but start() still returns.
            view3 = ConfigView(second.config, scope, backoff=QUICK)
            others.append(view3)
            await view3.start(wait=0.2)
            assert (view3.items(), view3.connected) == ({}, False)

            await asyncio.to_thread(server.start)
            # Changes made right away, through the client the first view shares (it saw the outage).
            await backend.config.put(b, b"b2")
            await backend.config.put(c, b"c1")
            gone = await backend.config.delete(a)
            for v in (view, view2, view3):
                assert await v.wait_revision(gone, DEADLINE), (v.revision, v.last_error)
                assert contents(v) == {"b.yml": b"b2", "c.yml": b"c1"}
                assert v.connected
            # The watch resumed where it stopped: exactly the changes, once each, in order.
            assert summary(seen[before_outage:]) == [
                ("put", "b.yml", b"b2"),
                ("put", "c.yml", b"c1"),
                ("delete", "a.yml", None),
            ]
            # The cache-started view reported only what differs from the cache (never a.yml again).
            assert ("put", "a.yml", b"a2") not in summary(seen2[2:])
            assert {name for _, name, _ in summary(seen2[2:])} <= {"a.yml", "b.yml", "c.yml"}
        finally:
            for other in others:
                await other.close()
            await view.close()
            await backend.close()

    asyncio.run(body())


def test_registry_view_keeps_instances_while_the_store_is_down(server: Any) -> None:
    async def body() -> None:
        backend = server.backend()
        registry = backend.registry
        assert registry is not None
        seen: list[InstanceEvent] = []
        view = RegistryView(registry, on_change=seen.extend, backoff=QUICK)
        others: list[Any] = []
        try:
            first = await registry.register(Instance("rv", "1", "127.0.0.1:7301", {"lic_total": 2}), ttl=60)
            await registry.register(Instance("other", "1", "127.0.0.1:7302"), ttl=60)
            await view.start(wait=DEADLINE)
            assert [i.address for i in view.instances("rv")] == ["127.0.0.1:7301"]
            assert view.instances("rv")[0].attrs == {"lic_total": 2}
            assert [i.service for i in view.instances()] == ["other", "rv"]
            assert view.instances("rv", "2") == []

            # A crash this time (SIGKILL), not a clean stop.
            await asyncio.to_thread(server.kill)
            await until(lambda: not view.connected, "the view to notice the store is gone")
            assert [i.address for i in view.instances("rv")] == ["127.0.0.1:7301"]
            before_outage = len(seen)

            await asyncio.to_thread(server.start)
            # A new client this time (as a loader started meanwhile would be).
            writer = server.backend()
            others.append(writer)
            assert writer.registry is not None
            await writer.registry.register(Instance("rv", "1", "127.0.0.1:7303", {"lic_total": 1}), ttl=60)
            await until(
                lambda: len(view.instances("rv")) == 2, f"the new instance to arrive ({view.last_error})"
            )
            assert [i.address for i in view.instances("rv")] == ["127.0.0.1:7301", "127.0.0.1:7303"]
            assert view.connected
            after = [(e.kind, e.instance.address) for e in seen[before_outage:]]
            assert after == [("put", "127.0.0.1:7303")]
            await writer.registry.deregister(first)
            await until(lambda: len(view.instances("rv")) == 1, "the deregistered instance to go")
            assert seen[-1].kind == "delete" and seen[-1].instance.address == "127.0.0.1:7301"
        finally:
            for other in others:
                await other.close()
            await view.close()
            await backend.close()

    asyncio.run(body())


def test_retries_back_off_and_close_is_prompt(server: Any) -> None:
    async def body() -> None:
        backend = server.backend()
        view = ConfigView(backend.config, ConfigScope("views", "backoff"))  # default backoff: 0.2 s .. 5 s
        try:
            await view.start(wait=DEADLINE)
            assert view.connected
            await asyncio.to_thread(server.stop)
            await until(lambda: not view.connected, "the view to notice the store is gone")
            # A fixed window measures the retry rate; a view that spun would try hundreds of times.
            start = view.attempts
            await asyncio.sleep(3.0)
            tries = view.attempts - start
            assert 1 <= tries <= 6, tries
            # close() ends the loop at once, even in the middle of a long backoff sleep.
            began = time.monotonic()
            await view.close()
            assert time.monotonic() - began < 1.0
        finally:
            await view.close()
            await backend.close()

    asyncio.run(body())


def test_a_failing_on_change_never_stops_the_view(server: Any) -> None:
    calls: list[int] = []

    def broken(events: list[ConfigEvent]) -> None:
        calls.append(len(events))
        raise RuntimeError("a consumer bug")

    async def body() -> None:
        backend = server.backend()
        key = ConfigKey("views", "broken", "svc", "1", "n")
        view = ConfigView(backend.config, ConfigScope("views", "broken"), on_change=broken, backoff=QUICK)
        try:
            await backend.config.put(key, b"1")
            await view.start(wait=DEADLINE)
            for n in range(2, 5):
                item = await backend.config.put(key, str(n).encode())
                assert await view.wait_revision(item.store_revision, DEADLINE)
            assert view.get(key) is not None and view.get(key).content == b"4"  # type: ignore[union-attr]
            assert sum(calls) == 4 and view.connected
        finally:
            await view.close()
            await backend.close()

    asyncio.run(body())


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next() for _ in range(8)]
    for n, delay in enumerate(delays):
        nominal = min(1.0, 0.1 * 2**n)
        assert nominal / 2 <= delay <= nominal, (n, delay)
    assert max(delays) <= 1.0
    backoff.reset()
    assert backoff.next() <= 0.1
    with pytest.raises(ValueError):
        Backoff(1.0, 0.5)


class Proxy:
    """A TCP relay between a client and a store, to cut the network while both processes live."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cut = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if self.cut:
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                writer.transport.abort()
                return
            self._writers |= {writer, up_writer}
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._handlers.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def disconnect(self) -> None:
        """Drop every connection and refuse new ones until ``reconnect()``."""
        self.cut = True
        for writer in list(self._writers):
            writer.transport.abort()

    def reconnect(self) -> None:
        self.cut = False

    async def close(self) -> None:
        self.disconnect()
        if self._server is not None:
            self._server.close()
        # Let the relays see their aborted sockets and end, so none is cancelled with the loop.
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()


def test_config_view_lists_again_after_compaction(tmp_path: Path) -> None:
    """History compacted while the view was cut off: it lists again and reports only the difference."""
    scope = ConfigScope("views", "compacted")
    a, b, c, d = (ConfigKey("views", "compacted", "svc", "1", n) for n in "abcd")
    with start_etcd(tmp_path / "etcd") as etcd:

        async def body() -> None:
            proxy = Proxy(etcd.client_port)
            await proxy.start()
            direct = etcd.backend()
            through = open_backend(f"etcd://127.0.0.1:{proxy.port}")
            seen: list[ConfigEvent] = []
            view = ConfigView(through.config, scope, on_change=seen.extend, backoff=QUICK)
            try:
                for key in (a, b, c):
                    await direct.config.put(key, key.name.encode())
                await view.start(wait=DEADLINE)
                assert contents(view) == {"a": b"a", "b": b"b", "c": b"c"}
                proxy.disconnect()
                await until(lambda: not view.connected, "the view to notice the cut")
                await direct.config.put(b, b"b2")
                await direct.config.delete(c)
                last = await direct.config.put(d, b"d")
                await asyncio.to_thread(etcd.etcdctl, "compact", str(last.store_revision))
                before = len(seen)
                proxy.reconnect()
                assert await view.wait_revision(last.store_revision, DEADLINE), view.last_error
                assert contents(view) == {"a": b"a", "b": b"b2", "d": b"d"}
                assert sorted(summary(seen[before:])) == [
                    ("delete", "c", None),
                    ("put", "b", b"b2"),
                    ("put", "d", b"d"),
                ]
                await until(lambda: view.connected, "the view to follow the store again")
                newest = await direct.config.put(a, b"a2")
                assert await view.wait_revision(newest.store_revision, DEADLINE)
                assert summary(seen[-1:]) == [("put", "a", b"a2")]
            finally:
                await view.close()
                await through.close()
                await direct.close()
                await proxy.close()

        asyncio.run(body())


def test_prefix_view_keeps_the_gateways_consumers_through_an_outage(server: Any) -> None:
    """The gateway's consumers: a PrefixView over /ase/consumers/<project>/ feeding a ConsumerBook."""
    from ase_serving.gateway.consumer_book import ConsumerBook
    from ase_serving.store.consumers import ConsumerStore, prefix

    async def body() -> None:
        backend = server.backend()
        kv = backend.config.kv
        store = ConsumerStore(kv, "views")
        book = ConsumerBook()
        view = PrefixView(kv, prefix("views"), on_change=book.apply, backoff=QUICK)
        try:
            first = await store.add(name="first")
            await kv.txn([Put("/ase/consumers/views-other/x", b"another project")])
            await view.start(wait=DEADLINE)
            assert view.connected and len(book) == 1
            found = book.by_key(first.api_key)
            assert found is not None and found.app_id == first.app_id and found.name == "first"

            await asyncio.to_thread(server.stop)
            await until(lambda: not view.connected, "the view to notice the store is gone")
            assert book.by_key(first.api_key) is not None  # still known while the store is down
            await asyncio.to_thread(server.start)
            rotated = await store.rotate(first.app_id)
            second = await store.add(name="second", services=["echo"], rps=2, sessions=1)
            await until(lambda: book.by_key(second.api_key) is not None, "the added consumer")
            await until(lambda: book.by_key(rotated.api_key) is not None, "the rotated key")
            assert book.by_key(first.api_key) is None
            rec = book.by_app_id(second.app_id)
            assert rec is not None and (rec.services, rec.rps, rec.sessions) == (("echo",), 2, 1)
            await store.remove(second.app_id)
            await until(lambda: book.by_key(second.api_key) is None, "the removed consumer gone")
            assert len(book) == 1 and view.connected
        finally:
            await view.close()
            await backend.close()

    asyncio.run(body())


def test_a_record_that_cannot_be_read_is_skipped_and_reported(server: Any) -> None:
    """One bad record (a config key that is no valid name, an instance that is not JSON) once
    stopped every later change; now the views skip it, say so, and go on."""

    async def body() -> None:
        backend = server.backend()
        kv = backend.config.kv
        registry = backend.registry
        assert registry is not None
        scope = ConfigScope("skip", "default")
        configs: list[ConfigEvent] = []
        config_view = ConfigView(backend.config, scope, on_change=configs.extend, backoff=QUICK)
        registry_view = RegistryView(registry, backoff=QUICK)
        bad_config = "/ase/config/skip/default/svc/1.0/bad name!"
        bad_instance = "/ase/instances/svc/1.0/127.0.0.1:7401"
        try:
            # Bad records already there when the views list...
            await kv.txn([Put(bad_config, b"{}"), Put(bad_instance, b"not json")])
            await backend.config.put(ConfigKey("skip", "default", "svc", "1.0", "good.json"), b"1")
            await config_view.start(wait=DEADLINE)
            await registry_view.start(wait=DEADLINE)
            assert contents(config_view) == {"good.json": b"1"}
            assert set(config_view.skipped()) == {bad_config}
            assert "is not valid" in config_view.skipped()[bad_config]
            assert set(registry_view.skipped()) == {bad_instance} and registry_view.instances() == []

            # ... and more of them arriving by the watch: later good changes still come through.
            await kv.txn([Put(bad_config + "2", b"{}"), Put(bad_instance + "2", b"[1, 2]")])
            await backend.config.put(ConfigKey("skip", "default", "svc", "1.0", "later.json"), b"2")
            await registry.register(Instance("svc", "1.0", "127.0.0.1:7402", {"lic_total": 1}), ttl=60)
            await until(lambda: "later.json" in contents(config_view), "a later config change")
            await until(lambda: len(registry_view.instances()) == 1, "a later instance")
            assert set(config_view.skipped()) == {bad_config, bad_config + "2"}
            assert set(registry_view.skipped()) == {bad_instance, bad_instance + "2"}
            assert config_view.connected and registry_view.connected

            # Deleted, they are no longer reported, and the views are still current.
            await kv.txn([], [bad_config, bad_config + "2", bad_instance, bad_instance + "2"])
            await backend.config.put(ConfigKey("skip", "default", "svc", "1.0", "last.json"), b"3")
            await until(lambda: "last.json" in contents(config_view), "the change after the deletes")
            await until(lambda: not registry_view.skipped(), "the bad instances forgotten")
            assert config_view.skipped() == {}
        finally:
            await config_view.close()
            await registry_view.close()
            await backend.close()

    asyncio.run(body())
