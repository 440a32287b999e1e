"""The loader of ``asectl loader run``, without the command line tool's modules.

``asectl loader run`` parses its options (:class:`RunOptions`, defined here once) with Typer
(:mod:`.loader_run`), then :func:`start`
replaces the process with ``python -m ase_serving.cli.loader_serve [FLAGS] -- FOLDER`` (``exec``:
the same pid, standard streams, environment and working directory), which serves until
SIGTERM/Ctrl-C. It parses ``loader run``'s argument and flags with an argparse parser of the same
fields, so it can be started so directly too: the loader without the command line tool's start, a
Python start saved (the tests start loaders so).
The loader keeps whatever its process imported for as long as it serves: Typer, Click and
Rich are several MB of it. Where ``exec`` is not available
(Windows), or ``ASE_LOADER_EXEC=0``, the loader runs in the command's own process instead.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ase_serving.addr import announce
from ase_serving.cli.become import become
from ase_serving.cli.loader_lines import api_lines, definition_line
from ase_serving.envflags import argv, flag, flags_of, parser
from ase_serving.errors import UserError

if TYPE_CHECKING:
    from ase_serving.cluster_settings import ClusterSettings
    from ase_serving.loader.lifecycle import Registrar

#: Loggers of libraries that log every request, poll or frame; kept at WARNING.
QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "aetcd", "grpc", "_cygrpc", "asyncio")


@dataclass
class RunOptions:
    """The options of ``asectl loader run``, defined here only: each field is the command's argument
    or one of its options (:func:`~ase_serving.envflags.flag`; :mod:`.loader_run` builds the command
    from them), in the order its help lists them. None: from ase.toml or the default."""

    folder: Path = flag(Path(), "The wrapper project (the folder with wrapper.py).", argument=True)
    service: str | None = flag(None, "Service name (default: [service] name or the folder name).")
    version: str | None = flag(None, "Service version (default: [service] version or 1.0.0).")
    workers: int | None = flag(None, "Worker processes, each with its own copy of the engine.")
    lic: int | None = flag(None, "Licence slots (concurrent calls/sessions) per worker.")
    port: int | None = flag(None, "gRPC (interop) port; 0 picks a free one.")
    host: str | None = flag(None, "Address to listen on.")
    data_port: int | None = flag(None, "Data port (what gateways call); 0 picks a free one.")
    data_tls_cert: Path | None = flag(None, "TLS on the data port: a PEM certificate chain.")
    data_tls_key: Path | None = flag(None, "The key of --data-tls-cert (if not in that file).")
    data_host: str | None = flag(
        None,
        "Address of the data port (default: --host). Beyond loopback, callers must prove they know "
        "the cluster's secret.",
    )
    metrics_port: int | None = flag(
        None, "HTTP port of /metrics and /health; 0 picks a free one, -1 turns it off."
    )
    standalone: bool = flag(False, "Do not register with the cluster.")
    ttl: float = flag(10.0, "Seconds the registration outlives the last heartbeat.", min=2.0)
    advertise: str | None = flag(
        None,
        "HOST or HOST:PORT to register (default: the listening address, or for 0.0.0.0 this host's "
        "address towards the config centre).",
        env="ASE_LOADER_ADVERTISE",
    )
    log_level: str = flag("info", "debug, info, warning or error.")
    push_schema: bool = flag(
        False,
        "Replace the config centre's copy of the project's schema when it differs (after an edit of "
        "ai_api.yml).",
    )

    def to_argv(self) -> list[str]:
        """The argument and flags that give these options to :func:`parse` (what :func:`start`
        passes on to ``python -m ase_serving.cli.loader_serve``)."""
        given = {k: v for k, v in asdict(self).items() if v is not None}
        return argv(flags_of(RunOptions), given)


def parse(args: list[str]) -> RunOptions:
    """``loader run``'s argument and flags (an argparse parser of RunOptions' fields; of the
    environment, only a flag's own variable) -> RunOptions."""
    ap = parser(RunOptions, "python -m ase_serving.cli.loader_serve", "Serve a wrapper project.", None)
    return RunOptions(**vars(ap.parse_args(args)))


def abort(message: str, code: int = 1) -> NoReturn:
    """Fail with a one-line reason on stderr (no traceback) and exit ``code``."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def start(opts: RunOptions) -> None:
    """Become the loader: ``exec`` a lean Python serving ``opts``, else serve in this process."""
    if os.environ.get("ASE_LOADER_EXEC", "1") != "0":
        become("ase_serving.cli.loader_serve", opts.to_argv())
    serve_options(opts)


def main(args: list[str] | None = None) -> None:
    opts = parse(sys.argv[1:] if args is None else args)
    try:
        serve_options(opts)
    except UserError as exc:  # as asectl's commands print one (run in its process, asectl does)
        abort(str(exc), exc.exit_code)


def serve_options(opts: RunOptions) -> None:
    """Load the project, register with the cluster (unless standalone) and serve until stopped.

    A :class:`~ase_serving.errors.UserError` (no ase.toml, a port taken, ...) is left to the caller
    to print."""
    from ase_serving.loader.front import is_loopback
    from ase_serving.loader.lifecycle import Ready, serve
    from ase_serving.loader.project import load_project
    from ase_serving.loader.project_schemas import read_project_api

    level = getattr(logging, opts.log_level.upper(), None)
    if not isinstance(level, int):
        abort(f"--log-level must be debug, info, warning or error, not {opts.log_level!r}")
    for option, port, lowest in (
        ("--port", opts.port, 0),
        ("--data-port", opts.data_port, 0),
        ("--metrics-port", opts.metrics_port, -1),
    ):
        if port is not None and not lowest <= port <= 65535:
            abort(f"{option} {port} is not a port: give {lowest}..65535 (0 picks a free one)")
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    # Libraries that log every request, heartbeat, poll or frame (the store clients, gRPC's core,
    # the event loop): not news, even at --log-level debug, which is for the loader's own lines.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    metrics_port = opts.metrics_port
    settings = load_project(
        opts.folder,
        service=opts.service,
        version=opts.version,
        workers=opts.workers,
        lic=opts.lic,
        host=opts.host,
        port=opts.port,
        metrics_port=None if metrics_port is None or metrics_port < 0 else metrics_port,
    )
    if metrics_port is not None and metrics_port < 0:
        settings.metrics_port = None
    if opts.data_port is not None:
        settings.data_port = opts.data_port
    if opts.data_host is not None:
        settings.data_host = opts.data_host
    if opts.data_tls_cert is not None:
        settings.data_tls_cert = opts.data_tls_cert
        settings.data_tls_key = opts.data_tls_key

    if opts.push_schema and opts.standalone:
        abort("--push-schema writes the schema to the cluster's config centre: drop --standalone", 2)
    cluster = None if opts.standalone else _cluster(quiet=opts.push_schema)
    if opts.push_schema and cluster is None:
        abort("--push-schema needs a cluster to push to: run `asectl init` (or `asectl setup`) first")
    # The API definition is checked before anything starts: a broken one would be served by no
    # gateway (the Api class is imported, in a child process, only when the schema is pushed).
    api = read_project_api(settings, code=cluster is not None)
    if api.problems:
        abort(definition_line(settings.service, api.problems, str(opts.folder)))
    for warning in api.warnings:  # an alias read as the right word, a file that cannot be pushed
        print(f"warning: {warning}", file=sys.stderr, flush=True)

    def ready(info: Ready) -> None:
        s = info.settings
        details = (
            f"({s.workers} worker{'s' if s.workers != 1 else ''} x {s.lic} "
            f"licence{'s' if s.lic != 1 else ''}); grpc {info.address}"
        )
        if info.metrics_url:
            details += f"; metrics {info.metrics_url}"
        lines = api_lines(s.service, gateway, api.service)
        announce(f"loader {s.service} {s.version}", info.data_address, details, *lines)

    registrar = None
    if cluster is not None:
        rerun = f"run `asectl loader run {shlex.quote(str(opts.folder))} --push-schema`"
        registrar = _cluster_registrar(
            cluster,
            opts.ttl,
            opts.advertise,
            schemas=api.schemas,
            sources=api.sources,
            replace_schemas=opts.push_schema,
            replace_hint=rerun,
        )
    if registrar is not None and not is_loopback(settings.data_host or settings.host):
        settings.secret = _cluster_secret()
    gateway = _gateway_url() if registrar is not None else None
    try:
        serve(settings, ready=ready, registrar=registrar)
    except KeyboardInterrupt:
        sys.exit(0)


def _cluster_secret() -> bytes:
    """The cluster's secret (made now if the config centre has none), for a data port beyond loopback."""
    import asyncio

    from ase_serving.cluster_settings import ClusterSettings
    from ase_serving.store import StoreError
    from ase_serving.store.secret import ensure_secret

    cluster = ClusterSettings.load()
    assert cluster is not None

    async def fetch() -> bytes | None:
        backend = cluster.open()
        try:
            return await ensure_secret(backend)
        finally:
            await backend.close()

    try:
        secret = asyncio.run(fetch())
    except (StoreError, OSError) as exc:
        abort(
            f"cannot read the cluster's secret from {cluster.address}: {exc}; the data port listens beyond "
            "loopback and needs it (or use --data-host 127.0.0.1)"
        )
    if secret is None:
        abort(
            f"the config centre at {cluster.address} cannot hold the cluster's secret: keep the data port "
            "on loopback (--data-host 127.0.0.1)"
        )
    return secret


def _gateway_url() -> str | None:
    from ase_serving.cluster_settings import ClusterSettings, SettingsError

    try:
        cluster = ClusterSettings.load()
    except SettingsError:
        return None
    return cluster.components.get("gateway") if cluster is not None else None


def _cluster(quiet: bool = False) -> ClusterSettings | None:
    """The cluster set up under $ASE_HOME, or None (said on stderr unless ``quiet``) when none is."""
    from ase_serving.cluster_settings import ClusterSettings
    from ase_serving.store import StoreError, backend_kind

    cluster = ClusterSettings.load()
    if cluster is None and not quiet:
        print(
            "no cluster set up (run `asectl init`, or `asectl setup` to use an existing one): "
            "serving standalone",
            file=sys.stderr,
            flush=True,
        )
    if cluster is None:
        return None
    try:
        backend_kind(cluster.address)
    except StoreError as exc:
        abort(f"{exc}; run `asectl setup` again, or use --standalone")
    return cluster


def _cluster_registrar(cluster: ClusterSettings, ttl: float, advertise: str | None, **push: Any) -> Registrar:
    from ase_serving.loader.registrar import ClusterRegistrar

    return ClusterRegistrar(cluster, ttl=ttl, advertise=advertise, **push)


if __name__ == "__main__":
    main()
