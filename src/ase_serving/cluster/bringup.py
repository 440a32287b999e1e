"""``asectl init --mode local`` and ``asectl down``: which components a local cluster has, in order.

First the config centre (the embedded server, data in ``$ASE_HOME/configd``), unless an existing
one is named (``etcd://...``, or another embedded server's URL); then every component in
:data:`COMPONENTS`, each built from the options and the config centre's address. Once all are
healthy, the address, credentials, LB and component URLs are saved with
:meth:`ClusterSettings.save`, so every later command with the same ``$ASE_HOME`` works without
``asectl setup``.

The saved account (``admin`` of a centre init started) is what commands and loaders use; the
gateway and the LB service init starts run with the embedded centre's account ``gateway`` (role
gateway: reads everything, consumer secrets included, writes nothing), which init makes on first
use with its password in ``configd/gateway.password`` (0600).
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from ase_serving import addr
from ase_serving.cluster.access import check_access, run_with_backend
from ase_serving.cluster.local import Component, LocalCluster, LocalError, Running
from ase_serving.cluster_settings import CREDENTIALS_FILE, ClusterSettings, SettingsError, ase_home
from ase_serving.files import write_private
from ase_serving.store import Backend, StoreAuthFailed, StoreError, open_backend

CONFIG_PORT = 2390
LB_PORT = 2391
GATEWAY_PORT = 2392
#: The LB's lean-wire port: what ``python -m ase_serving.gateway --lb`` names.
LB_WIRE_PORT = 2393
_PROBE_TIMEOUT = 2.0
#: The account of the gateway and LB service that init starts with an embedded centre of its own.
SERVING_ACCOUNT = "gateway"
SERVING_PASSWORD_FILE = "gateway.password"


@dataclass(frozen=True)
class InitOptions:
    host: str = "127.0.0.1"
    config_port: int = CONFIG_PORT
    lb_port: int = LB_PORT
    #: An existing config centre to use instead of starting the embedded one.
    config: str | None = None
    account: str | None = None
    password: str | None = None
    #: Start the LB service (a gateway started by init balances in its own process).
    lb: bool = False
    #: The LB's lean-wire port; None: the LB's default (2393, or a free one when ``lb_port`` is 0).
    lb_wire_port: int | None = None
    gateway_port: int = GATEWAY_PORT
    gateway: bool = True
    gateway_workers: int = 1


@dataclass
class FirstConsumer:
    """The consumer ``asectl init`` made (or found) for this machine."""

    app_id: str
    credentials: Path
    new: bool

    def doc(self) -> dict[str, Any]:
        return {"app_id": self.app_id, "credentials": str(self.credentials), "new": self.new}


@dataclass
class InitResult:
    settings: ClusterSettings
    settings_path: Path
    components: list[Running]
    consumer: FirstConsumer | None = None
    #: The account the gateway and the LB service run with.
    serving_account: str | None = None

    def doc(self) -> dict[str, Any]:
        return {
            "mode": "local",
            "address": self.settings.address,
            "account": self.settings.account,
            "gateway_account": self.serving_account,
            "lb": self.settings.lb,
            "components": [c.doc() for c in self.components],
            "settings": str(self.settings_path),
            "consumer": self.consumer.doc() if self.consumer is not None else None,
        }


def store_healthy(address: str) -> bool:
    """The config centre answers a ping (no credentials needed)."""

    async def ping() -> None:
        backend = open_backend(address)
        try:
            await asyncio.wait_for(backend.config.ping(), _PROBE_TIMEOUT)
        finally:
            await backend.close()

    try:
        asyncio.run(ping())
    except (StoreError, OSError, TimeoutError):
        return False
    return True


def lb_up(address: str) -> bool:
    from ase_serving.lb.client import lb_healthy

    if inspect.iscoroutinefunction(lb_healthy):
        return bool(asyncio.run(lb_healthy(address, _PROBE_TIMEOUT)))
    return bool(lb_healthy(address, _PROBE_TIMEOUT))


def embedded_component(opts: InitOptions, data: Path) -> Component:
    module = "ase_serving.store.embedded"
    argv = [sys.executable, "-m", module, "--host", opts.host, "--port", str(opts.config_port)]
    url = addr.url("http", opts.host, opts.config_port)
    argv += ["--data", str(data)]
    listen = (opts.host, opts.config_port)
    return Component(
        "config", "config centre", argv, url, store_healthy, module, listen=listen, port_flag="--config-port"
    )


def gateway_up(url: str) -> bool:
    """The gateway's /health answers 200 (its config view has started)."""
    import httpx

    return httpx.get(f"{url}/health", timeout=_PROBE_TIMEOUT).status_code == 200


def gateway_pid(url: str) -> int | None:
    """The pid the gateway at ``url`` reports in /health (a worker's, with several workers)."""
    import httpx

    pid = httpx.get(f"{url}/health", timeout=_PROBE_TIMEOUT).json().get("pid")
    return pid if isinstance(pid, int) else None


def _cluster_env(settings: ClusterSettings) -> dict[str, str]:
    # Credentials go by environment, not argv, so `ps` does not show the password.
    env = {
        "ASE_CONFIG_ADDRESS": settings.address,
        "ASE_PROJECT": settings.project,
        "ASE_GROUP": settings.group,
    }
    if settings.account:
        env["ASE_CONFIG_ACCOUNT"] = settings.account
    if settings.password:
        env["ASE_CONFIG_PASSWORD"] = settings.password
    return env


def lb_component(opts: InitOptions, settings: ClusterSettings) -> Component | None:
    if not opts.lb:
        return None
    module = "ase_serving.lb"
    argv = [sys.executable, "-m", module, "--host", opts.host, "--port", str(opts.lb_port)]
    if opts.lb_wire_port is not None:
        argv += ["--wire-port", str(opts.lb_wire_port)]
    # loadMini: exact counts for gateways started with `--lb HOST:WIRE_PORT` (each releases what it
    # picks); `load` would wait for the loaders' next reports, which do not come per request.
    argv += ["--strategy", "loadMini"]
    address = addr.host_port(opts.host, opts.lb_port)
    env = _cluster_env(settings)
    argv += ["--config", settings.address]
    listen = (opts.host, opts.lb_port)
    return Component("lb", "LB service", argv, address, lb_up, module, env, listen, "--lb-port")


def gateway_component(opts: InitOptions, settings: ClusterSettings) -> Component | None:
    """The gateway, with an LB of its own in its process (fed by the registry, as the LB service is)."""
    if not opts.gateway:
        return None
    module = "ase_serving.gateway"
    argv = [sys.executable, "-m", module, "--host", opts.host, "--port", str(opts.gateway_port)]
    argv += ["--workers", str(opts.gateway_workers), "--config", settings.address]
    url = addr.url("http", opts.host, opts.gateway_port)
    env = _cluster_env(settings)
    listen = (opts.host, opts.gateway_port)
    return Component(
        "gateway", "gateway", argv, url, gateway_up, module, env, listen, "--gateway-port", gateway_pid
    )


#: The components started after the config centre, in order; each builder gets the options and the
#: settings so far (address + credentials) and returns None when the options leave it out.
COMPONENTS: list[Callable[[InitOptions, ClusterSettings], Component | None]] = [
    lb_component,
    gateway_component,
]


def _check(settings: ClusterSettings) -> None:
    async def run() -> None:
        backend = settings.open()
        try:
            await check_access(backend, settings.account)
        finally:
            await backend.close()

    asyncio.run(run())


def _base_settings(home: Path) -> ClusterSettings:
    """Keep the region, project and group chosen earlier (by setup or a previous init)."""
    try:
        old = ClusterSettings.load(home)
    except SettingsError:
        old = None
    if old is None:
        return ClusterSettings(address="")
    return ClusterSettings(address="", region=old.region, project=old.project, group=old.group)


def init_local(opts: InitOptions, home: Path | None = None) -> InitResult:
    """Start (or find running) every component and save the settings.

    Raises :class:`LocalError` or :class:`StoreError`; what this call started is stopped then.
    """
    home = home or ase_home()
    cluster = LocalCluster(home)
    settings = _base_settings(home)
    up: list[Running] = []
    try:
        if opts.config:
            settings.address, settings.account, settings.password = opts.config, opts.account, opts.password
            _check(settings)
            serving = settings
        else:
            data = home / "configd"
            rec = cluster.start(embedded_component(opts, data))
            up.append(rec)
            settings.address = rec.url
            settings.account = opts.account or "admin"
            settings.password = opts.password or _admin_password(data)
            _check(settings)
            serving = serving_settings(settings, data)
        settings.components = {"config": settings.address}
        for build in COMPONENTS:
            comp = build(opts, serving)
            if comp is None:
                continue
            rec = cluster.start(comp)
            up.append(rec)
            settings.components[comp.name] = rec.url
            if comp.name == "lb":
                settings.lb = rec.url
        path = settings.save(home)
        consumer = first_consumer(settings, home)
    except BaseException:
        for rec in reversed(up):
            if rec.new:
                cluster.stop(rec)
        raise
    return InitResult(settings, path, up, consumer, serving.account)


def serving_settings(settings: ClusterSettings, data: Path) -> ClusterSettings:
    """``settings`` with the embedded centre's account :data:`SERVING_ACCOUNT` (role gateway),
    made now if it is not there yet (its password in ``data/gateway.password``, 0600); ``settings``
    as they are when that account cannot be had (it exists with another password, or the account
    of ``settings`` may not add accounts)."""
    from ase_serving.store.embedded.client import EmbeddedKV

    path = data / SERVING_PASSWORD_FILE

    async def logs_in(password: str) -> bool:
        kv = EmbeddedKV(settings.address, SERVING_ACCOUNT, password)
        try:
            await kv.status()
        except StoreAuthFailed:
            return False
        finally:
            await kv.close()
        return True

    async def work(backend: Backend) -> str | None:
        try:
            password = path.read_text().strip()
        except FileNotFoundError:
            password = ""
        if password and await logs_in(password):
            return password
        if not password:
            password = secrets.token_urlsafe(24)
            # The file first, as for admin.password: an account whose password is lost is of no use.
            write_private(path, (password + "\n").encode())
        kv = getattr(backend.config, "kv", None)
        if not isinstance(kv, EmbeddedKV):
            return None
        try:
            await kv.add_account(SERVING_ACCOUNT, password, "gateway")
        except StoreError:
            return None
        return password

    try:
        password = run_with_backend(settings, work)
    except (StoreError, OSError):
        password = None
    if password is None:
        return settings
    return replace(settings, account=SERVING_ACCOUNT, password=password)


def first_consumer(settings: ClusterSettings, home: Path) -> FirstConsumer | None:
    """The project's first consumer, added (its credentials saved in ``$ASE_HOME/credentials.json``,
    0600) when the project has none; the saved one when it still exists; None when the project has
    consumers of its own (then `asectl consumer add` makes one for this machine)."""
    from ase_serving.store.consumers import ConsumerStore

    path = home / CREDENTIALS_FILE

    async def work(backend: Backend) -> FirstConsumer | None:
        kv = getattr(backend.config, "kv", None)
        if kv is None:
            return None
        store = ConsumerStore(kv, settings.project)
        saved = _saved_credentials(path)
        records = await store.list()
        if saved is not None and any(r.app_id == saved.get("app_id") for r in records):
            return FirstConsumer(str(saved["app_id"]), path, new=False)
        if records:
            return None
        creds = await store.add(name="default")
        write_private(path, orjson.dumps(creds.doc(), option=orjson.OPT_INDENT_2) + b"\n")
        return FirstConsumer(creds.app_id, path, new=True)

    return run_with_backend(settings, work)


def _saved_credentials(path: Path) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _admin_password(data: Path) -> str:
    path = data / "admin.password"
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise LocalError(f"cannot read the config centre's admin password from {path}: {exc}") from None


def down_local(home: Path | None = None) -> list[tuple[Running, bool]]:
    """Stop every component the pid files name, newest first; (component, stopped gracefully)."""
    cluster = LocalCluster(home)
    return [(rec, cluster.stop(rec)) for rec in cluster.all_running()]
