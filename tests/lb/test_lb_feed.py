"""RegistryFeed: an in-process Balancer kept fed from a real embedded registry, also through an outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ase_serving.errors import NoLoader
from ase_serving.lb import Balancer
from ase_serving.lb.feed import RegistryFeed, licences
from ase_serving.store import Instance, InstanceEvent
from tests.store.embedded_server import start_embedded
from tests.support import until

S, V = "ocr", "2"


def addresses(lb: Balancer) -> dict[str, tuple[int, int, bool]]:
    return {n.address: (n.total, n.idle, n.live) for n in lb.nodes(S, V)}


def test_licences_from_attrs() -> None:
    full = Instance(S, V, "h:1", {"lic_total": 8, "lic_idle": 3, "lic_best": 6, "live": False})
    assert licences(full) == (8, 3, 6, False)
    # A loader that wrote only its total: all idle, best = total, live.
    assert licences(Instance(S, V, "h:1", {"lic_total": 4})) == (4, 4, None, True)
    assert licences(Instance(S, V, "h:1", {"lic_total": "x", "live": None})) == (0, 0, None, True)


def test_events_report_and_remove_without_a_store() -> None:
    lb = Balancer("poll")
    feed = RegistryFeed(lb)
    a = Instance(S, V, "h:1", {"lic_total": 2, "lic_idle": 1})
    feed.on_change([InstanceEvent("put", a, 5), InstanceEvent("put", Instance(S, V, "h:2", {}), 6)])
    assert addresses(lb) == {"h:1": (2, 1, True), "h:2": (0, 0, True)}
    feed.on_change([InstanceEvent("delete", Instance(S, V, "h:2"), 7)])
    assert addresses(lb) == {"h:1": (2, 1, True)}
    with pytest.raises(RuntimeError, match="no view"):
        asyncio.run(feed.start())


@pytest.mark.timeout(90)
def test_feed_follows_the_registry_and_survives_an_outage(tmp_path: Path) -> None:
    centre = start_embedded(tmp_path / "configd")
    try:
        asyncio.run(_scenario(centre))
    finally:
        centre.kill()


async def _scenario(centre: object) -> None:
    from tests.store.embedded_server import EmbeddedServer

    assert isinstance(centre, EmbeddedServer)
    backend = centre.backend()
    registry = backend.registry
    assert registry is not None
    # A short TTL, so that the outage below lasts several of them.
    lb = Balancer("poll", ttl=1.0)
    feed = RegistryFeed.from_registry(lb, registry)
    assert feed.refresh == pytest.approx(1.0 / 3)
    # Registered before the feed starts: comes with the first list.
    attrs = {"lic_total": 4, "lic_idle": 4, "live": True}
    reg_a = await registry.register(Instance(S, V, "127.0.0.1:7101", attrs), ttl=30)
    await feed.start(wait=10.0)
    try:
        assert feed.connected
        assert addresses(lb) == {"127.0.0.1:7101": (4, 4, True)}
        # Registered while the feed runs: appears; its licence updates arrive as reports.
        reg_b = await registry.register(Instance(S, V, "127.0.0.1:7102", attrs), ttl=30)
        await until(lambda: "127.0.0.1:7102" in addresses(lb), "the second instance", 10)
        reg_b = await registry.update(reg_b, {**attrs, "lic_idle": 1})
        await until(lambda: addresses(lb)["127.0.0.1:7102"] == (4, 1, True), "the idle update", 10)
        assert sorted(lb.pick(S, V, n=2)) == ["127.0.0.1:7101", "127.0.0.1:7102"]
        await registry.deregister(reg_a)
        await until(lambda: "127.0.0.1:7101" not in addresses(lb), "the deregistration", 10)

        # The store goes away: the LB keeps its last view for several of its own TTLs (only the
        # feed's re-reports keep the node: nothing else reports it).
        centre.stop()
        await until(lambda: not feed.connected, "the feed to notice the outage", 10)
        loop = asyncio.get_running_loop()
        end = loop.time() + 3.0  # three TTLs
        while loop.time() < end:
            assert lb.pick(S, V) == ["127.0.0.1:7102"]
            await asyncio.sleep(0.2)
        # ...but a node nobody re-reports still expires (the refresh covers only registry nodes).
        lb.report("other", "1", "127.0.0.1:9", 1, 1)
        await until(lambda: not lb.nodes("other"), "the unregistered node to expire", 5)

        # The store returns: a change made right away arrives.
        centre.start()
        fresh = centre.backend()
        assert fresh.registry is not None
        reg_c = await fresh.registry.register(Instance(S, V, "127.0.0.1:7103", attrs), ttl=30)
        await until(lambda: "127.0.0.1:7103" in addresses(lb), "a registration made after the outage", 20)
        assert feed.connected
        await fresh.registry.deregister(reg_c)
        await fresh.close()
    finally:
        await feed.close()
        await backend.close()
    # Closed: the Balancer keeps what it had, nothing refreshes it any more.
    assert "127.0.0.1:7102" in addresses(lb)
    with pytest.raises(NoLoader):
        lb.pick("nothing", "1")
