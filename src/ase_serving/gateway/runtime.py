"""What one gateway process holds: the route table kept current, the LB, the atom, metrics, sids.

:meth:`Gateway.start` (the app's lifespan startup) opens the config centre, starts a
:class:`~ase_serving.store.view.ConfigView` of the settings' (project, group) that feeds the
route table (the disk cache serves while the config centre is down), and the LB (in-process, fed
by the registry, or an LB service). :meth:`Gateway.close` stops them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
from pathlib import Path
from typing import Any

from ase_serving.errors import AseError
from ase_serving.gateway.atom import Atom
from ase_serving.gateway.auth import Auth, KeyAuth, NoAuth, ProxyAuth
from ase_serving.gateway.consumer_book import ConsumerBook
from ase_serving.gateway.limits import Limits
from ase_serving.gateway.metrics import GatewayMetrics
from ase_serving.gateway.picking import LocalPicker, Picker, RemotePicker
from ase_serving.gateway.routes import RouteTable
from ase_serving.gateway.settings import GatewaySettings
from ase_serving.gateway.transport import TransportContext, make_transport
from ase_serving.lb.balancer import NodeInfo
from ase_serving.store import Backend, ConfigScope, open_backend
from ase_serving.store.consumers import prefix as consumers_prefix
from ase_serving.store.view import ConfigView, PrefixView

log = logging.getLogger("ase_serving.gateway")


class Sids:
    """Session ids: ``<sub><pid:04x><counter:08x>@<host>``, unique per gateway process."""

    def __init__(self) -> None:
        self._count = itertools.count(1)
        self._pid = f"{os.getpid() & 0xFFFF:04x}"
        self._host = socket.gethostname().split(".")[0] or "gw"

    def next(self, sub: str) -> str:
        return f"{sub}{self._pid}{next(self._count) & 0xFFFFFFFF:08x}@{self._host}"


def _beside(cache: Path | None, what: str) -> Path | None:
    """The cache file of ``what`` next to the config cache (``gateway-P-G.json`` ->
    ``gateway-P-G.consumers.json``)."""
    return cache.with_name(f"{cache.stem}.{what}{cache.suffix}") if cache is not None else None


def make_auth(settings: GatewaySettings, book: ConsumerBook) -> Auth:
    if settings.auth == "gateway":
        return KeyAuth(
            book, settings.max_skew, public_hosts=settings.public_hosts, replays=not settings.allow_replays
        )
    if settings.auth == "proxy":
        return ProxyAuth(book, settings.trusted_proxies, settings.consumer_header)
    return NoAuth()


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.table = RouteTable(settings)
        self.metrics = GatewayMetrics()
        self.sids = Sids()
        #: The consumers (filled by :attr:`consumers` once started with a config centre).
        self.book = ConsumerBook(store=None)
        self.auth: Auth = make_auth(settings, self.book)
        self.limits = Limits(share=1.0 / settings.workers)
        self.backend: Backend | None = None
        self.view: ConfigView | None = None
        self.consumers: PrefixView | None = None
        self.picker: Picker = LocalPicker(settings.strategy, settings.lb_ttl, None)
        self.atom = Atom(self.picker, settings.once_timeout)
        self.started = False

    #: Seconds a start waits for the config centre when the disk caches can serve meanwhile.
    CACHED_WAIT = 1.0

    async def start(self) -> None:
        """Open the config centre and follow it: the config, the consumers and the loaders, each
        a view cached on disk next to ``cache_file`` (the consumers' file is owner-only: it holds
        their secrets). While the centre is down a start serves the caches after at most
        :attr:`CACHED_WAIT` s (5 s without caches), and the views catch up once it is back."""
        s = self.settings
        if s.config:
            self.backend = open_backend(s.config, s.account, s.password)
            cache = Path(s.cache_file) if s.cache_file else None
            self.view = ConfigView(
                self.backend.config,
                ConfigScope(s.project, s.group),
                cache_file=cache,
                on_change=self.table.apply,
            )
            starts: list[Any] = [self.view]
            kv = getattr(self.backend.config, "kv", None)
            if kv is not None and s.auth != "off":
                self.book.store = s.config
                view = self.consumers = PrefixView(
                    kv,
                    consumers_prefix(s.project),
                    on_change=self.book.apply,
                    cache_file=_beside(cache, "consumers"),
                )
                self.book.unloaded = lambda: None if view.revision else (view.last_error or "starting")
                self.book.stale = lambda: (view.last_error or "not connected") if view.from_cache else None
                starts.append(view)
            elif s.auth == "gateway":
                log.warning("%s holds no consumers: every request will be refused (10401)", s.config)
            if s.lb:
                self.picker = RemotePicker(s.lb)
            else:
                if self.backend.registry is None:
                    log.warning("%s has no registry: no loader can be found", s.config)
                self.picker = LocalPicker(
                    s.strategy, s.lb_ttl, self.backend.registry, cache_file=_beside(cache, "loaders")
                )
            starts.append(self.picker)
            tls = None
            if s.loader_ca:
                import ssl

                tls = ssl.create_default_context(cafile=s.loader_ca)
            context = TransportContext(secret=self.cluster_secret, attrs=self._attrs, tls=tls)
            self.atom = Atom(self.picker, s.once_timeout, make_transport(s.transport, context))
            wait = self.CACHED_WAIT if cache is not None and cache.exists() else 5.0
            await asyncio.gather(*(part.start(wait) for part in starts))
        self.started = True

    def _attrs(self, address: str) -> dict[str, Any]:
        attrs = getattr(self.picker, "attrs", None)
        return attrs(address) if attrs is not None else {}

    async def cluster_secret(self) -> bytes | None:
        """The cluster's secret from the config centre (for loaders that ask for it)."""
        if self.backend is None:
            return None
        from ase_serving.store.secret import read_secret

        return await read_secret(self.backend)

    async def close(self) -> None:
        await self.atom.close()
        await self.picker.close()
        if self.view is not None:
            await self.view.close()
        if self.consumers is not None:
            await self.consumers.close()
        if self.backend is not None:
            await self.backend.close()

    async def _nodes(self) -> list[NodeInfo]:
        try:
            return await self.picker.nodes()
        except AseError:  # an LB service that is down: no nodes to show
            return []

    def _degraded(self) -> dict[str, str]:
        """What keeps this gateway from serving the cluster's current state, by source: a view of
        the config centre that is not connected (it serves the last known state), and records
        the views skipped because they could not be read."""
        out: dict[str, str] = {}
        if self.settings.config:
            views: list[tuple[str, Any]] = [("config", self.view), ("consumers", self.consumers)]
            feed = getattr(self.picker, "feed", None)
            views.append(("registry", getattr(feed, "view", None)))
            for name, view in views:
                if view is None:
                    continue
                if not view.connected:
                    why = view.last_error or "not connected yet"
                    source = f"from cache ({view.cache_file})" if view.from_cache else "the last known state"
                    out[f"{name} view"] = f"not in touch with the config centre ({why}): serving {source}"
                out.update(view.skipped())
        out.update(self.book.bad)
        return out

    async def health(self) -> dict[str, Any]:
        connected = self.view.connected if self.view is not None else False
        degraded = self._degraded() if self.started else {}
        return {
            "status": "starting" if not self.started else ("degraded" if degraded else "ok"),
            "config": {
                "address": self.settings.config,
                # The scope served: what `asectl api create --push` compares its target with.
                "project": self.settings.project,
                "group": self.settings.group,
                "connected": connected,
                "revision": self.view.revision if self.view is not None else 0,
                "last_error": self.view.last_error if self.view is not None else None,
            },
            "services": [
                {"serviceId": s.service_id, "version": s.version, "routes": s.schema.routes}
                for s in self.table.live()
            ],
            "loaders": [
                {
                    "serviceId": n.service,
                    "version": n.version,
                    "address": n.address,
                    "lic_total": n.total,
                    "lic_free": n.avail,
                    "live": n.live,
                }
                for n in await self._nodes()
            ],
            "auth": {
                "mode": self.settings.auth,
                "consumers": len(self.book),
                "connected": self.consumers.connected if self.consumers is not None else False,
                "last_error": self.consumers.last_error if self.consumers is not None else None,
            },
            "problems": {**self.table.problems, **degraded},
            "pid": os.getpid(),
        }
