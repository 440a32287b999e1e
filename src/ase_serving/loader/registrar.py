"""A loader in the service registry: register, heartbeat, report licences, deregister before draining.

**One instance per loader.** The issue says a loader "registers each worker's endpoint"; our loader
exposes ONE gRPC address and its worker processes share it behind the supervisor, so the loader
registers one instance of (service, version) at that address carrying every worker's licences
(``lic_total`` = workers x lic). For the LB that is the same thing: it picks an address and the
supervisor hands the call to a worker with a free slot.

Attributes written (names fixed; the LB and ``asectl cluster status`` read them):

=============  ====================================================================
``lic_total``  licence slots in all (workers x lic)
``lic_idle``   slots free now; written with every heartbeat, and between heartbeats (at
               most every 0.1 s) when it moved enough (:func:`worth_reporting`)
``lic_best``   preferred concurrency (``[loader] lic_best`` in ase.toml; default lic_total)
``live``       True; False while draining (written just before deregistering)
``workers``    worker processes
``modes``      ``once`` and/or ``session``
``metrics_url``  the loader's /metrics, or null
=============  ====================================================================

**The store never blocks the loader.** ``on_ready`` returns at once; registration runs in a
background task. While the store is unreachable the loader keeps serving: the outage is logged
once (not per retry), the task retries with backoff, and registers again when the store is back
(also when the lease expired meanwhile). ``on_draining`` writes ``live: false`` and deregisters
within ``DRAIN_BOUND`` seconds in all, so a dead store never delays a drain; an instance that could
not be deregistered disappears when its lease's TTL runs out.

The address registered is :func:`~ase_serving.loader.advertise.advertised_address`'s. When the
config store lacks the project's service schemas
(:func:`~ase_serving.loader.project_schemas.project_schemas`), the registrar writes the missing
ones under the cluster settings' (project, group). One the store holds with other content is kept,
and a warning says so and how to replace it (the gateway serves the store's copy, so an edit of
ai_api.yml would otherwise change nothing, silently); with ``replace_schemas``
(``asectl loader run --push-schema``) it is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ase_serving import wire
from ase_serving.addr import url
from ase_serving.backoff import Backoff
from ase_serving.cluster_settings import ClusterSettings
from ase_serving.loader.advertise import WILDCARD_HOSTS, advertised_address
from ase_serving.loader.lifecycle import Ready
from ase_serving.loader.project_schemas import project_schemas, same_schema
from ase_serving.store import Backend
from ase_serving.store.base import (
    DEFAULT_GROUP,
    DEFAULT_PROJECT,
    ConfigKey,
    Instance,
    InvalidName,
    LeaseLost,
    NotFound,
    Registration,
    Registry,
    StoreAuthFailed,
    StoreError,
    StoreUnavailable,
)

log = logging.getLogger("ase_serving.loader.registrar")
T = TypeVar("T")

#: How often licence use is looked at, and the shortest gap between two licence reports.
POLL_S = 0.05
REPORT_GAP_S = 0.1
#: Total time ``on_draining`` may spend telling the store (a dead store must not delay the drain).
DRAIN_BOUND = 2.0


def worth_reporting(written: int | None, idle: int) -> bool:
    """Whether free licences moved enough from the last report to write them before the heartbeat.

    Every gateway and LB watching the registry wakes for each write, so a loader under steady load
    (free slots going 120, 118, 121...) must not write ten times a second. Near zero every slot
    counts (a gateway that thinks one is free sends a call); with plenty free a change matters
    once it is a quarter of what is free. The heartbeat writes the exact number anyway."""
    if written is None:
        return True
    step = abs(idle - written)
    return step > 0 and (idle == 0 or written == 0 or step >= max(1, min(idle, written) // 4))


class ClusterRegistrar:
    """serve()'s :class:`~ase_serving.loader.lifecycle.Registrar` for a cluster (see the module doc).

    ``cluster`` is the settings of ``asectl setup``/``init`` (the backend is opened on the loader's
    event loop) or an opened :class:`~ase_serving.store.Backend` (closed in ``on_stopped``).
    """

    def __init__(
        self,
        cluster: ClusterSettings | Backend,
        *,
        ttl: float = 10.0,
        advertise: str | None = None,
        project: str | None = None,
        group: str | None = None,
        schemas: list[tuple[str, bytes]] | None = None,
        sources: dict[str, str] | None = None,
        replace_schemas: bool = False,
        replace_hint: str = "restart the loader with --push-schema",
    ) -> None:
        if ttl < 2:
            raise ValueError(f"a registration TTL must be at least 2 s, not {ttl:g}")
        self.ttl = ttl
        self.advertise = advertise
        #: The schemas to push (None: read from the project when ready), their files, and whether
        #: one the store holds with other content is replaced (else a warning says how).
        self._schemas: Callable[[Ready], list[tuple[str, bytes]]] = (
            (lambda ready: project_schemas(ready.settings)) if schemas is None else (lambda ready: schemas)
        )
        self._sources = sources or {}
        self.replace_schemas = replace_schemas
        self._replace_hint = replace_hint
        if isinstance(cluster, ClusterSettings):
            self._settings: ClusterSettings | None = cluster
            self._backend: Backend | None = None
            self.url = cluster.address
            self.project = project or cluster.project
            self.group = group or cluster.group
        else:
            self._settings = None
            self._backend = cluster
            self.url = cluster.address
            self.project = project or DEFAULT_PROJECT
            self.group = group or DEFAULT_GROUP
        self.registration: Registration | None = None
        self._ready: Ready | None = None
        self._instance: Instance | None = None
        self._task: asyncio.Task[None] | None = None
        self._live = True
        self._written_idle: int | None = None
        self._metrics_url: str | None = None
        self._grpc = ""
        self._schemas_done = False
        self._ever_registered = False
        self._down = False
        self._op_timeout = max(1.0, min(3.0, ttl / 2))
        self._backoff_max = max(1.0, min(5.0, ttl / 2))

    # -- Registrar -------------------------------------------------------------------------------

    async def on_ready(self, ready: Ready) -> None:
        self._ready = ready
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ase-registrar")

    async def on_draining(self) -> None:
        self._live = False
        await self._cancel()
        reg, registry = self.registration, self._registry()
        if reg is None or registry is None:
            return
        try:
            await asyncio.wait_for(self._deregister(registry, reg), DRAIN_BOUND)
        except (StoreError, OSError, asyncio.TimeoutError) as exc:
            log.warning(
                "could not deregister %s from %s (%s): it disappears within its TTL (%g s)",
                reg.instance.address,
                self.url,
                _reason(exc),
                self.ttl,
            )
        else:
            inst = reg.instance
            log.info("deregistered %s %s at %s", inst.service, inst.version, inst.address)
        self.registration = None

    async def on_stopped(self) -> None:
        await self._cancel()
        if self._backend is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._backend.close(), DRAIN_BOUND)
            self._backend = None

    # -- the background task ---------------------------------------------------------------------

    def _registry(self) -> Registry | None:
        return self._backend.registry if self._backend is not None else None

    async def _cancel(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _op(self, aw: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(aw, self._op_timeout)
        except asyncio.TimeoutError:
            raise StoreUnavailable(f"no answer within {self._op_timeout:g} s") from None

    async def _run(self) -> None:
        ready = self._ready
        assert ready is not None
        if self._backend is None:
            assert self._settings is not None
            try:
                self._backend = self._settings.open()
            except StoreError as exc:
                log.error("cannot use the config centre at %s: %s; serving unregistered", self.url, exc)
                return
        registry = self._registry()
        if registry is None:
            log.warning("the config centre at %s keeps no registry: serving unregistered", self.url)
            return
        address = await asyncio.to_thread(
            advertised_address, ready.data_host or ready.host, ready.data_port, self.url, self.advertise
        )
        adv_host = address.rsplit(":", 1)[0] if self.advertise else None
        self._grpc = await asyncio.to_thread(advertised_address, ready.host, ready.port, self.url, adv_host)
        try:
            self._instance = Instance(ready.settings.service, ready.settings.version, address)
        except InvalidName as exc:
            log.error("cannot register: %s; serving unregistered", exc)
            return
        metrics_url = ready.metrics_url
        if metrics_url and ready.host in WILDCARD_HOSTS:
            # rsplit, not split_host_port: an --advertise text is registered as given and must
            # not end the task here.
            host = address.rsplit(":", 1)[0]
            metrics_url = url("http", host, urlsplit(metrics_url).port or 0) + "/metrics"
        self._metrics_url = metrics_url
        backoff = Backoff(0.2, self._backoff_max)
        while True:
            try:
                if self.registration is None:
                    await self._register(registry)
                    backoff.reset()
                if not self._schemas_done:
                    await self._push_schemas()
                await self._heartbeat(registry)
            except LeaseLost:
                log.info("the registration of %s expired in %s: registering again", address, self.url)
                self.registration = None
                await asyncio.sleep(POLL_S)
            except InvalidName as exc:
                log.error("cannot register: %s; serving unregistered", exc)
                return
            except (StoreError, OSError) as exc:
                self._unavailable(exc)
                await asyncio.sleep(backoff.next())
            except Exception:  # never let a bug here end the loader; keep trying, loudly
                log.exception("registration with %s failed", self.url)
                await asyncio.sleep(self._backoff_max)

    def _unavailable(self, exc: BaseException) -> None:
        if self._down:
            return
        self._down = True
        if isinstance(exc, StoreAuthFailed):
            log.error(
                "the config centre at %s refused the account (%s): serving unregistered; "
                "run `asectl setup` with the right account and password",
                self.url,
                _reason(exc),
            )
        elif self._ever_registered:
            log.warning(
                "lost the config centre at %s (%s): serving on and registering again when it is back",
                self.url,
                _reason(exc),
            )
        else:
            log.warning(
                "cannot reach the config centre at %s (%s): serving anyway and registering when it "
                "is back; `asectl init` starts a local one",
                self.url,
                _reason(exc),
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            log.info("the config centre at %s is back", self.url)

    def _attrs(self, idle: int) -> dict[str, Any]:
        ready = self._ready
        assert ready is not None
        s = ready.settings
        total = ready.lic_total
        return {
            "lic_total": total,
            "lic_idle": idle,
            "lic_best": min(s.lic_best, total) if s.lic_best else total,
            "live": self._live,
            "workers": s.workers,
            "modes": list(ready.modes),
            "metrics_url": self._metrics_url,
            "grpc": self._grpc,
            **({"uds": ready.data_uds, "host": wire.host_id()} if ready.data_uds else {}),
            **(
                {
                    "direct": ready.direct,
                    "once_timeout": s.once_timeout_s,
                    "read_timeout": s.read_timeout_s,
                    "session_timeout": s.session_timeout_s,
                }
                if ready.direct
                else {}
            ),
        }

    def _idle(self) -> int:
        ready = self._ready
        assert ready is not None
        return max(0, ready.lic_total - ready.busy())

    async def _register(self, registry: Registry) -> None:
        base = self._instance
        assert base is not None
        idle = self._idle()
        inst = Instance(base.service, base.version, base.address, self._attrs(idle))
        self.registration = await self._op(registry.register(inst, self.ttl))
        self._written_idle = idle
        self._recovered()
        self._ever_registered = True
        log.info("registered %s %s at %s with %s", inst.service, inst.version, inst.address, self.url)

    async def _heartbeat(self, registry: Registry) -> None:
        """Keep the lease alive every ttl/3 and report licences; returns only by raising."""
        loop = asyncio.get_running_loop()
        period = self.ttl / 3
        last_write = next_beat = loop.time()
        next_beat += period
        while True:
            await asyncio.sleep(POLL_S)
            reg = self.registration
            assert reg is not None
            now = loop.time()
            idle = self._idle()
            if now >= next_beat:
                await self._op(registry.keepalive(reg))
                self._recovered()  # the lease outlived an outage
            elif not worth_reporting(self._written_idle, idle) or now - last_write < REPORT_GAP_S:
                continue
            self.registration = await self._op(registry.update(reg, self._attrs(idle)))
            self._written_idle = idle
            last_write = loop.time()
            if now >= next_beat:
                next_beat = last_write + period

    async def _deregister(self, registry: Registry, reg: Registration) -> None:
        with contextlib.suppress(LeaseLost):
            await registry.update(reg, {**reg.instance.attrs, "live": False})
        await registry.deregister(reg)

    async def _push_schemas(self) -> None:
        ready = self._ready
        assert ready is not None and self._backend is not None
        config = self._backend.config
        s = ready.settings
        try:
            for name, content in await asyncio.to_thread(self._schemas, ready):
                key = ConfigKey(self.project, self.group, s.service, s.version, name)
                try:
                    old = await self._op(config.get(key))
                except NotFound:
                    old = None
                if old is not None and same_schema(old.content, content):
                    continue
                if old is not None and not self.replace_schemas:
                    log.warning(
                        "the config centre's %s (revision %d) differs from %s, and the gateway serves "
                        "the config centre's: to replace it, %s",
                        key.path,
                        old.revision,
                        self._sources.get(name, f"this project's {name}"),
                        self._replace_hint,
                    )
                    continue
                item = await self._op(config.put(key, content))
                how = "replaced the schema %s in %s" if old is not None else "pushed the schema %s to %s"
                log.info(how + " (revision %d)", key.path, self.url, item.revision)
        except StoreUnavailable:
            raise  # try again once the store is back
        except StoreError as exc:
            # Refused for good (no write permission, read-only store, a bad project name):
            # say so once; registration does not depend on it.
            log.warning("cannot push the project's schemas to %s: %s", self.url, _reason(exc))
        self._schemas_done = True


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
