"""The in-process Balancer: each strategy's distribution, exclusion, n-best, liveness, TTL and errors."""

from __future__ import annotations

from collections import Counter

import pytest

from ase_serving import errors
from ase_serving.errors import NoLicence, NoLoader
from ase_serving.lb import Balancer, Strategy, register_strategy, strategy_names
from ase_serving.lb.strategies import Pool

S, V = "asr", "1.0"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def picks(lb: Balancer, count: int, **kwargs: object) -> Counter[str]:
    return Counter(lb.pick(S, V, **kwargs)[0] for _ in range(count))  # type: ignore[arg-type]


# -- load -------------------------------------------------------------------------------------------
def test_load_prefers_idle_nodes_proportionally_and_never_picks_a_full_one() -> None:
    lb = Balancer("load")
    lb.report(S, V, "a:1", total=8, idle=8)
    lb.report(S, V, "b:1", total=8, idle=4)
    lb.report(S, V, "c:1", total=8, idle=0)
    # The first picks all go to the idlest node until it is no idler than the next one.
    assert [lb.pick(S, V)[0] for _ in range(4)] == ["a:1"] * 4
    # Then they alternate; over the 12 idle licences each node gets exactly its idle count.
    rest = picks(lb, 8)
    assert rest == Counter({"a:1": 4, "b:1": 4})
    assert "c:1" not in rest
    # Every reported idle licence is pre-authorised: the next pick is refused, not sent to c.
    with pytest.raises(NoLicence) as exc:
        lb.pick(S, V)
    assert exc.value.code == errors.NO_LICENCE
    assert "3 instance(s)" in exc.value.message
    # A report refills a node: only that node takes picks again.
    lb.report(S, V, "c:1", total=8, idle=2)
    assert picks(lb, 2) == Counter({"c:1": 2})


def test_load_spreads_a_burst_of_concurrent_picks() -> None:
    # 100 picks with no report in between (what 100 requests arriving at once look like): the
    # pre-authorisation decrement spreads them in proportion to the idle licences.
    lb = Balancer("load")
    for addr, idle in (("a:1", 60), ("b:1", 30), ("c:1", 10), ("d:1", 0)):
        lb.report(S, V, addr, total=64, idle=idle)
    got = picks(lb, 100)
    assert got == Counter({"a:1": 60, "b:1": 30, "c:1": 10})
    # Equal nodes: a burst splits evenly, in round-robin order.
    lb2 = Balancer("load")
    for addr in ("a:1", "b:1", "c:1", "d:1"):
        lb2.report(S, V, addr, total=32, idle=32)
    assert [lb2.pick(S, V)[0] for _ in range(8)] == ["a:1", "b:1", "c:1", "d:1"] * 2
    assert picks(lb2, 100) == Counter({"a:1": 25, "b:1": 25, "c:1": 25, "d:1": 25})


def test_load_prefers_nodes_under_their_best_concurrency() -> None:
    lb = Balancer("load")
    # a: 16 idle but already running its preferred concurrency (4 in use, best 4);
    # b: fewer idle licences but under its best. b wins until it reaches its best.
    lb.report(S, V, "a:1", total=20, idle=16, best=4)
    lb.report(S, V, "b:1", total=8, idle=6, best=5)
    # b runs 2 (8 - 6) of its best 5: three picks fit under it, then a (most idle) takes over.
    assert [lb.pick(S, V)[0] for _ in range(3)] == ["b:1"] * 3
    assert lb.pick(S, V) == ["a:1"]


def test_report_replaces_the_pre_authorised_count() -> None:
    lb = Balancer("load")
    lb.report(S, V, "a:1", total=4, idle=4)
    assert picks(lb, 4) == Counter({"a:1": 4})
    with pytest.raises(NoLicence):
        lb.pick(S, V)
    lb.report(S, V, "a:1", total=4, idle=1)
    assert lb.pick(S, V) == ["a:1"]
    # release does not count for load: the next report is the truth.
    lb.release(S, V, "a:1")
    with pytest.raises(NoLicence):
        lb.pick(S, V)


# -- poll -------------------------------------------------------------------------------------------
def test_poll_is_exact_round_robin_and_ignores_licences() -> None:
    lb = Balancer("poll")
    lb.report(S, V, "b:1", total=4, idle=0)
    lb.report(S, V, "a:1", total=4, idle=4)
    lb.report(S, V, "c:1", total=4, idle=1)
    assert [lb.pick(S, V)[0] for _ in range(9)] == ["a:1", "b:1", "c:1"] * 3
    # An excluded node is skipped without losing the turn order of the others.
    assert [lb.pick(S, V, exclude=["b:1"])[0] for _ in range(4)] == ["a:1", "c:1", "a:1", "c:1"]
    # n-best: the next n in turn; the turn moves one node on.
    assert lb.pick(S, V, n=2) == ["a:1", "b:1"]
    assert lb.pick(S, V, n=5) == ["b:1", "c:1", "a:1"]
    # A node that joins takes its place in the rotation (sorted by address); the turn stays
    # right after the node picked last (b), wherever the join moves it in the list.
    lb.report(S, V, "0:1", total=4, idle=4)
    lb.report(S, V, "bb:1", total=4, idle=4)
    assert [lb.pick(S, V)[0] for _ in range(10)] == ["bb:1", "c:1", "0:1", "a:1", "b:1"] * 2
    # A node that leaves: the turn goes on with the next one.
    lb.remove(S, V, "c:1")
    assert [lb.pick(S, V)[0] for _ in range(4)] == ["bb:1", "0:1", "a:1", "b:1"]


# -- loadMini ----------------------------------------------------------------------------------------
def test_load_mini_exact_accounting_never_exceeds_total() -> None:
    lb = Balancer("loadMini")
    lb.report(S, V, "a:1", total=3, idle=3)
    lb.report(S, V, "b:1", total=5, idle=0)  # idle is ignored: the LB counts for itself
    held: list[str] = []
    for _ in range(8):
        held.append(lb.pick(S, V)[0])
        in_use = Counter(held)
        assert in_use["a:1"] <= 3
        assert in_use["b:1"] <= 5
    assert Counter(held) == Counter({"a:1": 3, "b:1": 5})
    with pytest.raises(NoLicence):
        lb.pick(S, V)
    # A release frees exactly one licence on that node, and it is the one picked next.
    lb.release(S, V, "a:1")
    assert lb.pick(S, V) == ["a:1"]
    with pytest.raises(NoLicence):
        lb.pick(S, V)
    # Reports do not reset the count (only releases do); releases never go below 0.
    lb.report(S, V, "b:1", total=5, idle=5)
    with pytest.raises(NoLicence):
        lb.pick(S, V)
    for _ in range(10):
        lb.release(S, V, "b:1")
    assert {n.address: n.in_use for n in lb.nodes(S, V)} == {"a:1": 3, "b:1": 0}
    assert picks(lb, 5) == Counter({"b:1": 5})


def test_load_mini_spreads_under_churn() -> None:
    # Picks and releases interleaved: every node stays within its total, load stays even.
    lb = Balancer("loadMini")
    for addr in ("a:1", "b:1", "c:1"):
        lb.report(S, V, addr, total=4, idle=4)
    held: list[str] = []
    for step in range(300):
        if len(held) < 10:
            held.append(lb.pick(S, V)[0])
        if step % 3 == 2:
            lb.release(S, V, held.pop(0))
        counts = Counter(held)
        assert max(counts.values()) <= 4
        assert max(counts.values()) - min(counts.get(a, 0) for a in ("a:1", "b:1", "c:1")) <= 1


# -- shared behaviour ------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["load", "poll", "loadMini"])
def test_exclude_and_n_best(strategy: str) -> None:
    lb = Balancer(strategy)
    lb.report(S, V, "a:1", total=64, idle=64)
    lb.report(S, V, "b:1", total=64, idle=48)
    lb.report(S, V, "c:1", total=64, idle=32)
    for _ in range(20):
        assert lb.pick(S, V, exclude=("a:1", "c:1")) == ["b:1"]
    best = lb.pick(S, V, n=3)
    assert sorted(best) == ["a:1", "b:1", "c:1"]
    two = lb.pick(S, V, n=2, exclude=["b:1"])
    assert sorted(two) == ["a:1", "c:1"]
    with pytest.raises(NoLoader) as exc:
        lb.pick(S, V, exclude=["a:1", "b:1", "c:1"])
    assert exc.value.code == errors.NO_LOADER
    assert "3 instance(s) known, 3 excluded" in exc.value.message


def test_load_n_best_is_ordered_by_idle() -> None:
    lb = Balancer("load")
    lb.report(S, V, "a:1", total=8, idle=2)
    lb.report(S, V, "b:1", total=8, idle=7)
    lb.report(S, V, "c:1", total=8, idle=5)
    lb.report(S, V, "d:1", total=8, idle=0)
    assert lb.pick(S, V, n=4) == ["b:1", "c:1", "a:1"]  # never the full one
    # Only the first is pre-authorised: the alternates are fallbacks.
    assert {n.address: n.avail for n in lb.nodes(S, V)} == {"a:1": 2, "b:1": 6, "c:1": 5, "d:1": 0}


@pytest.mark.parametrize("strategy", ["load", "poll", "loadMini"])
def test_nodes_that_are_not_live_are_never_picked(strategy: str) -> None:
    lb = Balancer(strategy)
    lb.report(S, V, "a:1", total=8, idle=8, live=False)
    lb.report(S, V, "b:1", total=2, idle=2)
    assert set(picks(lb, 2)) == {"b:1"}
    lb.report(S, V, "b:1", total=2, idle=2, live=False)
    with pytest.raises(NoLoader) as exc:
        lb.pick(S, V)
    assert "2 instance(s) known, 0 excluded by the caller, 2 not live (draining)" in exc.value.message
    # live again -> picked again
    lb.report(S, V, "a:1", total=8, idle=8)
    assert lb.pick(S, V) == ["a:1"]
    assert [n.live for n in lb.nodes(S, V)] == [True, False]


def test_ttl_purges_silent_nodes() -> None:
    clock = Clock()
    lb = Balancer("poll", ttl=10.0, clock=clock)
    lb.report(S, V, "a:1", total=1, idle=1)
    lb.report(S, V, "b:1", total=1, idle=1)
    clock.now += 6
    lb.report(S, V, "b:1", total=1, idle=1)  # b keeps reporting, a goes silent
    clock.now += 4.5  # a: 10.5 s old, b: 4.5 s
    # Purged lazily by pick: only b is left.
    assert set(picks(lb, 4)) == {"b:1"}
    assert [n.address for n in lb.nodes()] == ["b:1"]
    assert lb.nodes()[0].age == pytest.approx(4.5)
    clock.now += 6
    assert lb.purge() == 1
    assert lb.nodes() == [] and lb.services() == []
    with pytest.raises(NoLoader, match="none registered"):
        lb.pick(S, V)
    # purge() on a quiet balancer drops nothing it should keep.
    lb.report(S, V, "c:1", total=1, idle=1)
    clock.now += 9.9
    assert lb.purge() == 0
    assert lb.pick(S, V) == ["c:1"]


def test_unknown_service_is_no_loader_with_a_clear_message() -> None:
    lb = Balancer()
    lb.report(S, V, "a:1", total=1, idle=1)
    for service, version in (("tts", "1.0"), (S, "2.0")):
        with pytest.raises(NoLoader) as exc:
            lb.pick(service, version)
        assert exc.value.code == 11503
        assert f"service {service!r} version {version!r}" in exc.value.message
        assert "none registered" in exc.value.message


def test_remove_and_services() -> None:
    lb = Balancer()
    lb.report(S, V, "a:1", total=1, idle=1)
    lb.report("tts", "2", "b:1", total=1, idle=1)
    assert lb.services() == [(S, V), ("tts", "2")]
    assert lb.remove(S, V, "a:1") is True
    assert lb.remove(S, V, "a:1") is False
    with pytest.raises(NoLoader):
        lb.pick(S, V)
    assert [(n.service, n.address) for n in lb.nodes()] == [("tts", "b:1")]


def test_report_clamps_its_numbers() -> None:
    lb = Balancer()
    lb.report(S, V, "a:1", total=4, idle=9, best=0)
    lb.report(S, V, "b:1", total=-1, idle=-3, best=9)
    a, b = lb.nodes(S, V)
    assert (a.total, a.idle, a.best) == (4, 4, 4)
    assert (b.total, b.idle, b.best) == (0, 0, 0)


def test_strategies_are_registered_by_name() -> None:
    assert {"load", "poll", "loadMini"} <= set(strategy_names())
    with pytest.raises(ValueError, match="unknown LB strategy 'nope': use one of"):
        Balancer("nope")

    class First(Strategy):
        """Always the first live node by address (a toy for the registry)."""

        def pick(self, pool: Pool, n: int, exclude: object) -> list[str]:
            if not pool.order:
                raise pool.refuse(())
            return [pool.order[0].address]

    register_strategy("first", First)
    lb = Balancer("first")
    lb.report(S, V, "b:1", total=1, idle=1)
    lb.report(S, V, "a:1", total=1, idle=1)
    assert picks(lb, 3) == Counter({"a:1": 3})
    with pytest.raises(TypeError):
        register_strategy("bad", dict)  # type: ignore[arg-type]
