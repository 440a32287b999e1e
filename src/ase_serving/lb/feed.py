"""Keep a :class:`~ase_serving.lb.balancer.Balancer` fed from the service registry.

Loaders register an :class:`~ase_serving.store.base.Instance` per endpoint with licence attrs
(``lic_total``, ``lic_idle``, ``lic_best``, ``live``) and update them as their licences are used.
A :class:`~ase_serving.store.view.RegistryView` follows the registry and calls
:meth:`RegistryFeed.on_change` with every change: a put becomes a report, a delete a removal.

The Balancer drops nodes that were not reported for ``ttl`` seconds, but the registry view only
speaks on change, and not at all while the store is unreachable. So the feed re-reports every
instance it knows every ``ttl / 3`` seconds: nodes leave the LB when the registry says so
(deregistration, lease expiry), not because the store went quiet or down. The LB keeps picking
from its last known view until the store returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from ase_serving.lb.balancer import Balancer
from ase_serving.store.base import Instance, InstanceEvent, Registry

log = logging.getLogger("ase_serving.lb")


def licences(inst: Instance) -> tuple[int, int, int | None, bool]:
    """(total, idle, best, live) from an instance's attrs; idle defaults to total, best to None."""
    total = inst.lic("lic_total")
    idle = inst.lic("lic_idle", total)
    best = inst.lic("lic_best") or None
    return total, idle, best, inst.attrs.get("live", True) is not False


class RegistryFeed:
    """Reports the registry's instances to a Balancer and keeps their TTL fresh.

    ``view`` is anything with ``start()``, ``close()`` and ``instances()`` that calls
    :meth:`on_change` (a RegistryView built with ``on_change=feed.on_change``); it may be set
    after construction, which :meth:`from_registry` does. ``refresh``: seconds between
    re-reports (default ``balancer.ttl / 3``).
    """

    def __init__(self, balancer: Balancer, view: Any = None, refresh: float | None = None) -> None:
        self.balancer = balancer
        self.view = view
        self.refresh = refresh if refresh is not None else balancer.ttl / 3
        self._known: dict[tuple[str, str, str], Instance] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_registry(
        cls,
        balancer: Balancer,
        registry: Registry,
        refresh: float | None = None,
        cache_file: Path | None = None,
    ) -> RegistryFeed:
        """A feed with its own RegistryView over ``registry`` (cached in ``cache_file``)."""
        from ase_serving.store.view import RegistryView

        feed = cls(balancer, refresh=refresh)
        feed.view = RegistryView(registry, on_change=feed.on_change, cache_file=cache_file)
        return feed

    @property
    def connected(self) -> bool:
        """Whether the view is in touch with the store now."""
        return bool(getattr(self.view, "connected", False))

    def on_change(self, events: list[InstanceEvent]) -> None:
        """Apply registry changes, in order: put -> report, delete -> remove."""
        for ev in events:
            inst = ev.instance
            key = (inst.service, inst.version, inst.address)
            if ev.kind == "put":
                self._known[key] = inst
                self._report(inst)
            else:
                self._known.pop(key, None)
                self.balancer.remove(inst.service, inst.version, inst.address)

    def attrs(self, address: str) -> dict[str, Any]:
        """The attrs of a registered instance at ``address`` ({} when none is known)."""
        for (_s, _v, addr), inst in self._known.items():
            if addr == address:
                return inst.attrs
        return {}

    def _report(self, inst: Instance) -> None:
        total, idle, best, live = licences(inst)
        self.balancer.report(inst.service, inst.version, inst.address, total, idle, best, live)

    def refresh_all(self) -> None:
        """Re-report every known instance (keeps them from expiring in the Balancer)."""
        for inst in self._known.values():
            self._report(inst)

    async def start(self, wait: float = 5.0) -> None:
        """Start the view (returns after its first list, or after ``wait`` s while it retries)
        and the refresh task."""
        if self.view is None:
            raise RuntimeError("RegistryFeed has no view: pass one or use RegistryFeed.from_registry")
        if self._task is not None:
            raise RuntimeError("this feed was already started")
        await self.view.start(wait)
        # Instances the view listed before on_change was wired (a view started elsewhere).
        for inst in self.view.instances():
            key = (inst.service, inst.version, inst.address)
            if key not in self._known:
                self._known[key] = inst
                self._report(inst)
        self._task = asyncio.create_task(self._refresh_loop(), name="ase lb feed refresh")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            try:
                self.refresh_all()
            except Exception:  # a bad instance must not stop the refresh of the others
                log.exception("lb feed: refresh failed")

    async def close(self) -> None:
        """Stop the refresh and the view (the Balancer keeps what it has)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.view is not None:
            await self.view.close()
