"""``serve()``: run one loader (data port + gRPC port + worker processes + metrics) until SIGTERM/SIGINT.

Start-up order: bind the data port and the gRPC port (fail fast when one is taken), start the
workers and wait for every ``wrapperInit``, start the metrics endpoint, then report ready. The
loop is uvloop's where it is installed. Shutdown: new calls get
11503 "loader is draining", in-flight work gets ``drain_timeout_s`` to finish, then every worker
runs ``wrapperFini`` and exits.

Registration with a cluster: a :class:`Registrar` is awaited with the ready loader (its data
address, which gateways call, and the gRPC address, licence counters) and again at the start of
the drain, BEFORE new calls are refused, so that gateways stop picking this loader first; the
default does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from ase_serving import wire
from ase_serving.addr import host_port, url
from ase_serving.errors import StartupError
from ase_serving.loader.client import MAX_MESSAGE
from ase_serving.loader.front import DRAINING, DataServer, Front, is_loopback
from ase_serving.loader.grpc_api import LoaderService, add_to_server
from ase_serving.loader.metrics import LoaderMetrics, MetricsServer
from ase_serving.loader.pool import WorkerPool
from ase_serving.loader.settings import LoaderSettings
from ase_serving.rpc import BindError, bind

log = logging.getLogger("ase_serving.loader")


class ServeError(StartupError):
    """The loader cannot start (port taken, wrapper init failed, ...); the message says why."""


@dataclass
class Ready:
    """What a started loader tells its caller."""

    settings: LoaderSettings
    host: str
    port: int
    metrics_url: str | None
    modes: list[str]
    #: Thread-safe: ask the loader to drain and stop (as SIGTERM does).
    stop: Callable[[], None] = field(repr=False, default=lambda: None)
    #: Licence slots in all (workers x lic).
    lic_total: int = 0
    #: Licence slots in use now (call it from the loader's event loop).
    busy: Callable[[], int] = field(repr=False, default=lambda: 0)
    #: The data port (the lean wire) and the host it listens on.
    data_host: str = ""
    data_port: int = 0
    #: The data port's Unix socket (callers on this host), or None.
    data_uds: str | None = None
    #: The workers' own Unix sockets (once calls from this host, straight to a worker).
    direct: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The gRPC (interop) address."""
        return host_port(self.host, self.port)

    @property
    def data_address(self) -> str:
        """The data port's address: what gateways call, and what the loader registers."""
        return host_port(self.data_host or self.host, self.data_port)


class Registrar(Protocol):
    """Cluster registration, awaited on the loader's event loop.

    ``on_ready`` must not block for long (start background tasks for heartbeats); ``on_draining``
    runs before the loader refuses new calls and should deregister; ``on_stopped`` runs last.
    """

    async def on_ready(self, ready: Ready) -> None: ...

    async def on_draining(self) -> None: ...

    async def on_stopped(self) -> None: ...


class NoRegistrar:
    """The default: a standalone loader registers nowhere."""

    async def on_ready(self, ready: Ready) -> None:
        pass

    async def on_draining(self) -> None:
        pass

    async def on_stopped(self) -> None:
        pass


def serve(
    settings: LoaderSettings,
    ready: Callable[[Ready], None] | None = None,
    registrar: Registrar | None = None,
) -> None:
    """Run the loader until SIGTERM/SIGINT (or ``Ready.stop()``); blocks.

    Raises :class:`ServeError` when it cannot start. Signal handlers are installed only when called
    from the main thread; from another thread, stop it with ``Ready.stop``.
    """
    run(_serve(settings, ready, registrar or NoRegistrar()))


def run(main: Awaitable[None]) -> None:
    """``asyncio.run`` on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # Windows
        asyncio.run(main)  # type: ignore[arg-type]
        return
    uvloop.run(main)  # type: ignore[arg-type]


async def _serve(
    settings: LoaderSettings, ready: Callable[[Ready], None] | None, registrar: Registrar
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    metrics = LoaderMetrics(settings.service, settings.version)
    pool = WorkerPool(settings, loop, on_restart=metrics.restarted, on_stats=metrics.direct_calls)
    front = Front(pool, settings, metrics)
    service = LoaderService(front)
    metrics.bind(pool.lic_total, pool.busy, pool.sessions)
    # so_reuseport off: a second loader on the same port must fail, not share it silently.
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ]
    )
    add_to_server(server, service)
    try:
        port = bind(server, settings.host, settings.port, "loader")
    except BindError as exc:
        raise ServeError(str(exc)) from None
    data = _data_server(front, settings)
    try:
        await data.start()
    except OSError as exc:
        raise ServeError(
            f"cannot listen on data port {host_port(data.host, data.port)}: {exc.strerror or exc}; "
            "choose another --data-port"
        ) from None
    if data.uds is not None and settings.direct:
        pool.direct_base = data.uds.removesuffix(".sock")
    metrics_server: MetricsServer | None = None
    await server.start()
    try:
        if settings.metrics_port is not None:
            try:
                metrics_server = MetricsServer(settings.host, settings.metrics_port, metrics, service.health)
            except OSError as exc:
                raise ServeError(
                    f"cannot serve metrics on port {settings.metrics_port}: {exc.strerror}"
                ) from None
            metrics_server.start()
        starting = loop.create_task(pool.start())
        stopped = loop.create_task(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # stopped while the wrappers were still loading
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, StartupError):
                await starting
            await pool.stop(drain_timeout=0, fini_timeout=2.0)
            return
        stopped.cancel()
        try:
            starting.result()
        except StartupError as exc:
            raise ServeError(exc.message) from None
        front.serving()
        metrics_url = None
        if metrics_server is not None:
            metrics_url = url("http", settings.host, metrics_server.port) + "/metrics"
        info = Ready(
            settings,
            settings.host,
            port,
            metrics_url,
            pool.modes,
            stop=lambda: _call_soon(loop, stop.set),
            lic_total=pool.lic_total(),
            busy=pool.busy,
            data_host=data.host,
            data_port=data.port,
            data_uds=data.uds,
            direct=pool.direct_paths(),
        )
        await registrar.on_ready(info)
        if ready is not None:
            ready(info)
        await stop.wait()
        await registrar.on_draining()
        front.state = DRAINING
        pool.drain()
        log.info("draining: %d licence(s) busy", pool.busy())
        if not await pool.wait_idle(settings.drain_timeout_s):
            log.warning("drain timeout (%g s): cancelling the calls still running", settings.drain_timeout_s)
        await server.stop(grace=0.5)
        await data.close()
        await pool.wait_idle(2.0)  # cancelled sessions run wrapperDestroy
        await pool.stop(drain_timeout=0)
    finally:
        with contextlib.suppress(Exception):
            await registrar.on_stopped()
        await server.stop(grace=None)
        await data.close()
        if metrics_server is not None:
            metrics_server.stop()
        if not pool.stopping:
            await pool.stop(drain_timeout=0, fini_timeout=2.0)


def _data_server(front: Front, settings: LoaderSettings) -> DataServer:
    """The data port: loopback unless told otherwise; elsewhere callers must know the secret."""
    host = settings.data_host or settings.host
    tls = None
    if settings.data_tls_cert is not None:
        import ssl

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(settings.data_tls_cert, settings.data_tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ServeError(
                f"cannot load the data port's TLS certificate {settings.data_tls_cert}: {exc}"
            ) from None
    secret = None
    if not is_loopback(host):
        if settings.secret is None:
            raise ServeError(
                f"the data port would listen on {host}, beyond this host, with no cluster secret to "
                "check callers against: run the loader with a config centre (--config), or keep it on "
                "127.0.0.1 (--data-host 127.0.0.1)"
            )
        secret = settings.secret
    uds = None
    if settings.data_uds:
        try:
            uds = wire.uds_path(f"{settings.service}-{settings.version}")
        except OSError as exc:  # a read-only /tmp: gateways on this host use TCP then
            log.warning("no Unix socket for the data port (%s): gateways here use TCP", exc)
    return DataServer(front, host, settings.data_port, secret=secret, tls=tls, uds=uds)


def _call_soon(loop: asyncio.AbstractEventLoop, func: Callable[[], None]) -> None:
    loop.call_soon_threadsafe(func)
