"""How the LB chooses a loader: the per-node state a strategy sees, and the strategies, by name.

A strategy is a small class registered under a name (:func:`register_strategy`); the built-ins
below are registered the same way a third party would register its own. One strategy instance
serves every (service, version) of a :class:`~ase_serving.lb.balancer.Balancer`; what it must
remember per (service, version) lives on the :class:`Pool` and per loader on the :class:`Node`.

==============  ===============================================================================
``load``        most idle licences first, with a pre-authorisation decrement (the default)
``poll``        round robin over live nodes, licences ignored
``loadMini``    exact accounting: the LB counts the licences it handed out (pick +1, release -1)
==============  ===============================================================================

Picking is the hot path (hundreds of thousands per second in-process): the strategies work on
plain attributes of ``__slots__`` objects and avoid allocating on the common ``n == 1`` path.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import ClassVar

from ase_serving.errors import AseError, NoLicence, NoLoader

#: Added to the sort key of a node still under its ``best`` concurrency so that it always ranks
#: above every node past it, whatever their idle counts.
_PREFER = 1 << 40


class Node:
    """One loader instance as the LB sees it: its last report plus the LB's own accounting."""

    __slots__ = ("address", "avail", "best", "floor", "idle", "in_use", "live", "pos", "seen", "total")

    def __init__(self, address: str) -> None:
        self.address = address
        #: Licences in the last report: all, idle, preferred concurrency.
        self.total = 0
        self.idle = 0
        self.best = 0
        #: False while the loader drains: never picked.
        self.live = True
        #: Clock time of the last report (for the TTL purge).
        self.seen = 0.0
        #: Licences the strategy still considers free (``load``: idle minus picks since the
        #: report; ``loadMini``: total minus in use). Only nodes with ``avail > 0`` are picked.
        self.avail = 0
        #: ``load``: picks since the last report; ``loadMini``: licences handed out, not released.
        self.in_use = 0
        #: ``total - best``: a node with ``avail > floor`` runs under its best concurrency.
        self.floor = 0
        #: Index in :attr:`Pool.order` (-1 when not live).
        self.pos = -1


class Pool:
    """The nodes of one (service, version) and the strategy's per-pool state."""

    __slots__ = ("nodes", "oldest", "order", "rr", "service", "version")

    def __init__(self, service: str, version: str) -> None:
        self.service = service
        self.version = version
        self.nodes: dict[str, Node] = {}
        #: Live nodes sorted by address (what the strategies scan); rebuilt on membership changes.
        self.order: list[Node] = []
        #: Where the next scan starts (round robin and tie-breaking).
        self.rr = 0
        #: A lower bound of the oldest ``Node.seen``: no node can have expired before ``oldest + ttl``.
        self.oldest = 0.0

    def rebuild(self) -> None:
        # The turn stays right after the node last picked, wherever joins and leaves move it.
        old, rr = self.order, self.rr
        prev = old[rr - 1] if 0 < rr <= len(old) else None
        self.order = sorted((n for n in self.nodes.values() if n.live), key=lambda n: n.address)
        for node in self.nodes.values():
            node.pos = -1
        for i, node in enumerate(self.order):
            node.pos = i
        if prev is not None and prev.pos >= 0:
            self.rr = prev.pos + 1

    def refuse(self, exclude: Collection[str]) -> AseError:
        """The error for a pick that found nothing: NoLicence if live nodes exist but are full,
        else NoLoader saying how many instances exist and why none could be used."""
        name = f"service {self.service!r} version {self.version!r}"
        excluded = sum(1 for a in exclude if a in self.nodes) if exclude else 0
        usable = [n for n in self.order if not (exclude and n.address in exclude)]
        if usable:
            total = sum(n.total for n in usable)
            return NoLicence(
                f"every licence of {name} is in use ({len(usable)} instance(s), {total} licence(s)); "
                "retry later or start more loaders"
            )
        if not self.nodes:
            return no_loader(self.service, self.version)
        not_live = len(self.nodes) - len(self.order)
        return NoLoader(
            f"no loader for {name}: {len(self.nodes)} instance(s) known, {excluded} excluded by the "
            f"caller, {not_live} not live (draining)"
        )


def no_loader(service: str, version: str) -> NoLoader:
    return NoLoader(
        f"no loader for service {service!r} version {version!r}: none registered (start one with "
        "`asectl loader run` against this cluster, and check the service name and version)"
    )


class Strategy:
    """The base of every strategy: default bookkeeping, and the contract.

    ``pick`` gets the pool with expired nodes already purged and returns 1..n addresses, best
    first, never an excluded or not-live node; when there is none it raises ``pool.refuse(exclude)``.
    It also does the strategy's accounting for the FIRST address only: n-best alternates are
    fallbacks, and a caller that falls back should pick again with the failed one excluded.
    """

    name: ClassVar[str] = ""

    def reported(self, node: Node) -> None:
        """A fresh report was stored on ``node`` (total, idle, best, live, seen)."""
        node.avail = node.idle
        node.in_use = 0

    def pick(self, pool: Pool, n: int, exclude: Collection[str]) -> list[str]:
        raise NotImplementedError

    def release(self, node: Node) -> None:
        """The caller is done with a licence of ``node`` (only ``loadMini`` counts it)."""


class MostFree(Strategy):
    """Shared by ``load`` and ``loadMini``: the node with the largest ``avail`` wins.

    Nodes whose estimated concurrency (``total - avail``) is under their ``best`` rank above all
    others; ties go round robin (the scan starts after the last node picked); a node with
    ``avail <= 0`` is never picked. A pick takes one from ``avail``.
    """

    def pick(self, pool: Pool, n: int, exclude: Collection[str]) -> list[str]:
        order = pool.order
        start = pool.rr
        seq = order if start == 0 or start >= len(order) else order[start:] + order[:start]
        if n == 1:
            top: Node | None = None
            top_key = 0
            for node in seq:
                a = node.avail
                if a > 0:
                    key = a + _PREFER if a > node.floor else a
                    if key > top_key and not (exclude and node.address in exclude):
                        top = node
                        top_key = key
            if top is None:
                raise pool.refuse(exclude)
            self.take(top)
            pool.rr = top.pos + 1
            return [top.address]
        cands = [nd for nd in seq if nd.avail > 0 and not (exclude and nd.address in exclude)]
        if not cands:
            raise pool.refuse(exclude)
        # sort is stable with reverse=True too: equal keys keep the round-robin order.
        cands.sort(key=lambda nd: nd.avail + _PREFER if nd.avail > nd.floor else nd.avail, reverse=True)
        first = cands[0]
        self.take(first)
        pool.rr = first.pos + 1
        return [nd.address for nd in cands[:n]]

    def take(self, node: Node) -> None:
        node.avail -= 1
        node.in_use += 1


class Load(MostFree):
    """``load``: most idle licences first, as the loaders report them, with pre-authorisation.

    Each pick decrements the picked node's idle count locally until the node's next report
    replaces it, so a burst of picks between two reports spreads over the nodes in proportion
    to their idle licences instead of all landing on the one that looked idlest. A node whose
    idle count (minus picks) is 0 is not picked until a report refills it; when every live node
    is at 0 the pick fails with NoLicence (10110). ``release`` does nothing: the next report is
    the truth.
    """

    name = "load"


class LoadMini(MostFree):
    """``loadMini``: exact accounting by the LB itself, for callers that release what they pick.

    The LB counts licences in use per node (pick +1, :meth:`release` -1, never below 0) and
    ignores the reported idle count; free = reported total - in use. The node with the most free
    licences wins; a node with none is not picked, and when every live node is full the pick
    fails with NoLicence (10110). Exact only when every pick is released (also on errors) and
    all picks for the service go through this one LB.
    """

    name = "loadMini"

    def reported(self, node: Node) -> None:
        node.avail = node.total - node.in_use

    def release(self, node: Node) -> None:
        if node.in_use > 0:
            node.in_use -= 1
            node.avail = node.total - node.in_use


class Poll(Strategy):
    """``poll``: exact round robin over the live nodes (sorted by address), licences ignored.

    Every pick moves the turn one node on from the node it returned; excluded nodes are skipped.
    n-best returns the next n nodes in turn.
    """

    name = "poll"

    def pick(self, pool: Pool, n: int, exclude: Collection[str]) -> list[str]:
        order = pool.order
        k = len(order)
        i = pool.rr if pool.rr < k else 0
        out: list[str] = []
        first = -1
        for _ in range(k):
            node = order[i]
            if not (exclude and node.address in exclude):
                if first < 0:
                    first = i
                out.append(node.address)
                if len(out) >= n:
                    break
            i = i + 1 if i + 1 < k else 0
        if first < 0:
            raise pool.refuse(exclude)
        pool.rr = first + 1
        return out


_STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(name: str, cls: type[Strategy]) -> None:
    """Make ``Balancer(strategy=name)`` use ``cls`` (a :class:`Strategy` subclass)."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"strategy {name!r} must be a Strategy subclass, not {cls!r}")
    _STRATEGIES[name] = cls


def strategy_names() -> list[str]:
    return sorted(_STRATEGIES)


def make_strategy(name: str) -> Strategy:
    """A new instance of the strategy registered as ``name``; ValueError naming the known ones."""
    cls = _STRATEGIES.get(name)
    if cls is None:
        raise ValueError(f"unknown LB strategy {name!r}: use one of {', '.join(strategy_names())}")
    return cls()


register_strategy(Load.name, Load)
register_strategy(Poll.name, Poll)
register_strategy(LoadMini.name, LoadMini)
