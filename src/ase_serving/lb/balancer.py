"""The seed's bypass load balancer as a library: loaders report licences, callers ask for an address.

The LB is not in the data path: a gateway asks "which loader for (service, version)?", gets one
address (or the n best), and calls the loader itself. The gateway runs a :class:`Balancer`
in-process, fed from the registry (:mod:`ase_serving.lb.feed`), or asks the LB service
(:mod:`ase_serving.lb.service`) when several gateways must share one view.

::

    lb = Balancer("load", ttl=10.0)
    lb.report("asr", "1.0", "10.0.0.5:9000", total=8, idle=8)
    addr = lb.pick("asr", "1.0")[0]          # NoLoader (11503) / NoLicence (10110) when none
    ...call the loader at addr...
    lb.release("asr", "1.0", addr)           # counts for loadMini; a no-op for the others

Not thread-safe: use it from one asyncio loop (or one thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from ase_serving.lb.strategies import Node, Pool, make_strategy, no_loader


@dataclass(frozen=True)
class NodeInfo:
    """A snapshot of one node, for status pages and the ``Nodes`` RPC."""

    service: str
    version: str
    address: str
    total: int
    idle: int
    best: int
    live: bool
    #: Licences the strategy still considers free (see :class:`~ase_serving.lb.strategies.Node`).
    avail: int
    #: ``load``: picks since the last report; ``loadMini``: licences handed out and not released.
    in_use: int
    #: Seconds since the last report.
    age: float


class Balancer:
    """Loader addresses by (service, version), chosen by a named strategy.

    ``strategy``: ``load`` (default), ``poll``, ``loadMini`` or any name given to
    :func:`~ase_serving.lb.strategies.register_strategy`. ``ttl``: a node whose last report is
    older than this is dropped (lazily on pick, or by :meth:`purge`). ``clock``: monotonic
    seconds (injectable for tests).

    :attr:`on_capacity`, when set, is called with (service, version) whenever a change may have
    made licences of that pair pickable: a report of a live node with licences to spare, a node
    added, a node's live flag changed, a node removed (then pickers learn there may be none).
    Callers waiting for a licence use it instead of polling.
    """

    def __init__(
        self, strategy: str = "load", ttl: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, not {ttl!r}")
        self.strategy_name = strategy
        self._strategy = make_strategy(strategy)
        self.ttl = float(ttl)
        self._clock = clock
        self._pools: dict[tuple[str, str], Pool] = {}
        self.on_capacity: Callable[[str, str], None] | None = None

    # -- reports ----------------------------------------------------------------------------
    def report(
        self,
        service: str,
        version: str,
        address: str,
        total: int,
        idle: int,
        best: int | None = None,
        live: bool = True,
    ) -> None:
        """Store a loader's licence report (adds the node if new; refreshes its TTL).

        ``idle`` is clamped to 0..total; ``best`` (the preferred concurrency) defaults to
        ``total`` and is clamped to 1..total; a node reported with ``live=False`` stays known
        (for status) but is never picked.
        """
        key = (service, version)
        pool = self._pools.get(key)
        now = self._clock()
        if pool is None:
            pool = self._pools[key] = Pool(service, version)
            pool.oldest = now
        node = pool.nodes.get(address)
        changed = node is None
        if node is None:
            node = pool.nodes[address] = Node(address)
            if len(pool.nodes) == 1:
                pool.oldest = now
        total = max(0, int(total))
        node.total = total
        node.idle = min(max(0, int(idle)), total)
        node.best = total if best is None or best <= 0 else min(int(best), total)
        node.floor = total - node.best
        if node.live != live:
            node.live = bool(live)
            changed = True
        node.seen = now
        self._strategy.reported(node)
        if changed:
            pool.rebuild()
        if self.on_capacity is not None and (changed or (node.live and node.avail > 0)):
            self.on_capacity(service, version)

    def remove(self, service: str, version: str, address: str) -> bool:
        """Forget a node (its loader deregistered); False if it was not known."""
        pool = self._pools.get((service, version))
        if pool is None or pool.nodes.pop(address, None) is None:
            return False
        if pool.nodes:
            pool.rebuild()
        else:
            del self._pools[(service, version)]
        if self.on_capacity is not None:
            self.on_capacity(service, version)
        return True

    # -- picks ------------------------------------------------------------------------------
    def pick(self, service: str, version: str, n: int = 1, exclude: Collection[str] = ()) -> list[str]:
        """One address (or up to ``n``, best first) of a live loader of (service, version).

        Never returns an address in ``exclude`` (addresses the caller found broken). Raises
        :class:`~ase_serving.errors.NoLoader` (11503) when no usable instance exists, with a
        message saying how many are known, excluded and draining, and
        :class:`~ase_serving.errors.NoLicence` (10110) when the strategy counts every licence in use.
        """
        pool = self._pools.get((service, version))
        if pool is None:
            raise no_loader(service, version)
        now = self._clock()
        if now - pool.oldest > self.ttl:
            self._expire(pool, now)
            if not pool.nodes:
                raise no_loader(service, version)
        return self._strategy.pick(pool, n if n > 1 else 1, exclude)

    def release(self, service: str, version: str, address: str) -> None:
        """The caller finished with a licence it picked on ``address`` (unknown nodes are ignored)."""
        pool = self._pools.get((service, version))
        if pool is not None:
            node = pool.nodes.get(address)
            if node is not None:
                self._strategy.release(node)

    # -- status and expiry ------------------------------------------------------------------
    def nodes(self, service: str | None = None, version: str | None = None) -> list[NodeInfo]:
        """Snapshot of the nodes of (service, version), or of every service when None, sorted."""
        self.purge()
        now = self._clock()
        out = []
        for (svc, ver), pool in sorted(self._pools.items()):
            if (service is not None and svc != service) or (version is not None and ver != version):
                continue
            for addr in sorted(pool.nodes):
                nd = pool.nodes[addr]
                out.append(
                    NodeInfo(
                        svc,
                        ver,
                        addr,
                        nd.total,
                        nd.idle,
                        nd.best,
                        nd.live,
                        nd.avail,
                        nd.in_use,
                        now - nd.seen,
                    )
                )
        return out

    def services(self) -> list[tuple[str, str]]:
        """Every (service, version) with at least one node, sorted."""
        return sorted(self._pools)

    def purge(self) -> int:
        """Drop every node whose last report is older than ``ttl``; returns how many were dropped."""
        now = self._clock()
        dropped = 0
        for pool in list(self._pools.values()):
            if now - pool.oldest > self.ttl:
                dropped += self._expire(pool, now)
        return dropped

    def _expire(self, pool: Pool, now: float) -> int:
        limit = now - self.ttl
        gone = [a for a, nd in pool.nodes.items() if nd.seen < limit]
        for addr in gone:
            del pool.nodes[addr]
        if not pool.nodes:
            del self._pools[(pool.service, pool.version)]
            return len(gone)
        pool.oldest = min(nd.seen for nd in pool.nodes.values())
        if gone:
            pool.rebuild()
        return len(gone)
