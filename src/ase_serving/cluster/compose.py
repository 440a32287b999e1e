"""``asectl init --mode compose``: a docker-compose project (etcd, LB, gateway, the echo loader)
written to a folder and started; ``asectl down`` stops it.

The compose folder is remembered in ``$ASE_HOME/compose.json`` so that ``down`` finds it. etcd's
client port is published on 127.0.0.1 so that this machine can add the first consumer (its
credentials in ``DIR/credentials.json``); the echo loader pushes its own schema on start.

The gateway calls the echo loader on its data port (:data:`LOADER_DATA_PORT`, the lean wire) over
the compose network: the loader registers ``echo:50052`` (its gRPC port, 50051, goes into the
registration's attributes). That port listens on 0.0.0.0, so callers must prove they know the
cluster's secret; the loader makes it in etcd (``/ase/secrets/wire``) before it starts, and the
gateway reads it from there.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from ase_serving.cluster.images import FRAMEWORK_IMAGE, LOADER_DATA_PORT, DockerError, check_engine
from ase_serving.cluster_settings import ClusterSettings, ase_home
from ase_serving.files import write_private
from ase_serving.store.base import DEFAULT_GROUP, DEFAULT_PROJECT

ETCD_IMAGE = "quay.io/coreos/etcd:v3.5.17"
ECHO_IMAGE = "ase-echo:1.0.0"
COMPOSE_FILE = "compose.yaml"
# The compose project's name: given with `-p` (docker-compose 1.x rejects a top-level `name:`) and
# written to the folder's .env, so that `docker compose ps` run there by hand finds the same project.
COMPOSE_PROJECT = "ase"
MARKER = "compose.json"
GATEWAY_PORT = 2392
ETCD_PORT = 2379
#: The echo loader's /metrics and /health port inside the compose network (its healthcheck asks it).
LOADER_METRICS_PORT = 9090
_UP_TIMEOUT = 600.0


@dataclass(frozen=True)
class ComposeOptions:
    folder: Path
    gateway_port: int = GATEWAY_PORT
    etcd_port: int = ETCD_PORT
    image: str = FRAMEWORK_IMAGE
    loader_image: str = ECHO_IMAGE
    etcd_image: str = ETCD_IMAGE
    project: str = DEFAULT_PROJECT
    group: str = DEFAULT_GROUP


def _py_health(url: str) -> list[str]:
    code = f"import urllib.request as u; u.urlopen('{url}', timeout=3)"
    return ["CMD", "python3", "-c", code]


def _tcp_health(port: int) -> list[str]:
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), 3).close()"
    return ["CMD", "python3", "-c", code]


def _loader_health(data_port: int, metrics_port: int) -> list[str]:
    """What the gateway needs of a loader: its data port answering the lean wire (the first frame,
    the handshake's HELLO, arrives) and its /health saying it serves with a worker ready."""
    code = (
        "import socket, urllib.request as u; "
        f"s = socket.create_connection(('127.0.0.1', {data_port}), 3); s.settimeout(3); "
        "assert s.recv(1), 'no HELLO'; s.close(); "
        f"u.urlopen('http://127.0.0.1:{metrics_port}/health', timeout=3)"
    )
    return ["CMD", "python3", "-c", code]


def compose_doc(opts: ComposeOptions) -> dict[str, Any]:
    """The compose file, as a document."""
    env = {
        "ASE_CONFIG_ADDRESS": "etcd://etcd:2379",
        "ASE_PROJECT": opts.project,
        "ASE_GROUP": opts.group,
    }
    check = {"interval": "3s", "timeout": "5s", "retries": 40, "start_period": "5s"}
    healthy = {"condition": "service_healthy"}
    etcd_cmd = [
        "etcd",
        "--name=etcd",
        "--data-dir=/etcd-data",
        "--listen-client-urls=http://0.0.0.0:2379",
        "--advertise-client-urls=http://etcd:2379",
        "--listen-peer-urls=http://0.0.0.0:2380",
    ]
    return {
        "services": {
            "etcd": {
                "image": opts.etcd_image,
                "command": etcd_cmd,
                "volumes": ["etcd-data:/etcd-data"],
                "ports": [f"127.0.0.1:{opts.etcd_port}:2379"],
                "healthcheck": {"test": ["CMD", "etcdctl", "endpoint", "health"], **check},
                "restart": "unless-stopped",
            },
            "lb": {
                "image": opts.image,
                "command": [
                    "python",
                    "-m",
                    "ase_serving.lb",
                    "--host",
                    "0.0.0.0",
                    "--port",
                    "2391",
                    # The lean-wire port: what a gateway's `--lb lb:2393` names (2391: gRPC).
                    "--wire-port",
                    "2393",
                    "--config",
                    "etcd://etcd:2379",
                    # For gateways started with `--lb lb:2393`: exact counts when every pick goes
                    # through this one LB (`load` trusts the loaders' reports, not per request).
                    "--strategy",
                    "loadMini",
                ],
                "environment": dict(env),
                "depends_on": {"etcd": healthy},
                "healthcheck": {"test": _tcp_health(2391), **check},
                "restart": "unless-stopped",
            },
            "gateway": {
                "image": opts.image,
                "command": [
                    *("python", "-m", "ase_serving.gateway", "--host", "0.0.0.0", "--port", "2392"),
                    # Balances in-process (exact counts, as one gateway holds every licence it
                    # picks), as `asectl init`'s gateway does: no LB hop per request. More gateways
                    # sharing exact counts: add `--lb lb:2393` (a pick and a batched release on the
                    # LB's lean wire per request; bench/deploy_compose.py, bench/lb_picks.py).
                    *("--config", "etcd://etcd:2379"),
                ],
                "environment": dict(env),
                "ports": [f"127.0.0.1:{opts.gateway_port}:2392"],
                "depends_on": {"etcd": healthy, "lb": healthy},
                "healthcheck": {"test": _py_health("http://127.0.0.1:2392/health"), **check},
                "restart": "unless-stopped",
            },
            "echo": {
                "image": opts.loader_image,
                # After the image's entry point (`asectl loader run /app --host 0.0.0.0 --port
                # 50051`): the data port, fixed and registered under the service's name here.
                "command": [
                    *("--data-port", str(LOADER_DATA_PORT)),
                    *("--metrics-port", str(LOADER_METRICS_PORT)),
                    *("--advertise", f"echo:{LOADER_DATA_PORT}"),
                ],
                "environment": dict(env),
                "expose": [str(LOADER_DATA_PORT)],
                "depends_on": {"etcd": healthy},
                "healthcheck": {"test": _loader_health(LOADER_DATA_PORT, LOADER_METRICS_PORT), **check},
                "restart": "unless-stopped",
            },
        },
        "volumes": {"etcd-data": {}},
    }


def compose_command() -> list[str]:
    """``docker compose`` (the plugin) or ``docker-compose``, whichever this machine has."""
    exe = check_engine()
    probe = subprocess.run([exe, "compose", "version"], capture_output=True, timeout=20, check=False)
    if probe.returncode == 0:
        return [exe, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise DockerError(
        "docker compose: neither the `docker compose` plugin nor `docker-compose` is installed; "
        "install one (apt-get install docker-compose) or use `asectl init --mode local`"
    )


def write_project(opts: ComposeOptions) -> Path:
    opts.folder.mkdir(parents=True, exist_ok=True)
    path = opts.folder / COMPOSE_FILE
    path.write_text(yaml.safe_dump(compose_doc(opts), sort_keys=False))
    (opts.folder / ".env").write_text(f"COMPOSE_PROJECT_NAME={COMPOSE_PROJECT}\n")
    return path


def _run_compose(cmd: list[str], folder: Path, args: list[str], timeout: float) -> None:
    """``COMPOSE -p ase -f FOLDER/compose.yaml ARGS`` in ``folder``; DockerError when it fails."""
    path = folder / COMPOSE_FILE
    proc = subprocess.run(
        [*cmd, "-p", COMPOSE_PROJECT, "-f", str(path), *args], cwd=folder, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        what = " ".join([*cmd, *args])
        raise DockerError(f"`{what}` failed (exit {proc.returncode}) in {folder}")


def _gateway_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=3) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


@dataclass
class ComposeResult:
    folder: Path
    gateway: str
    etcd: str
    credentials: Path | None
    settings_path: Path

    def doc(self) -> dict[str, Any]:
        return {
            "mode": "compose",
            "folder": str(self.folder),
            "gateway": self.gateway,
            "address": self.etcd,
            "credentials": str(self.credentials) if self.credentials else None,
            "settings": str(self.settings_path),
        }


def init_compose(
    opts: ComposeOptions, home: Path | None = None, timeout: float = _UP_TIMEOUT
) -> ComposeResult:
    """Write the project, ``up -d`` it, wait for the gateway's health, add the first consumer."""
    from ase_serving.cluster.bringup import first_consumer

    cmd = compose_command()
    write_project(opts)
    home = home or ase_home()
    home.mkdir(parents=True, exist_ok=True)
    folder = opts.folder.resolve()
    write_private(home / MARKER, orjson.dumps({"folder": str(folder), "command": cmd}) + b"\n")
    _run_compose(cmd, folder, ["up", "-d"], timeout)
    gateway = f"http://127.0.0.1:{opts.gateway_port}"
    deadline = time.monotonic() + timeout
    while not _gateway_healthy(gateway):
        if time.monotonic() > deadline:
            raise DockerError(f"the gateway at {gateway} was not healthy within {timeout:.0f} s")
        time.sleep(1.0)
    etcd = f"etcd://127.0.0.1:{opts.etcd_port}"
    settings = ClusterSettings(
        address=etcd,
        project=opts.project,
        group=opts.group,
        components={"config": etcd, "gateway": gateway},
    )
    consumer = first_consumer(settings, folder)
    # This machine's asectl (consumer, api, config, cluster status) now talks to this cluster.
    saved = settings.save(home)
    return ComposeResult(folder, gateway, etcd, consumer.credentials if consumer else None, saved)


def down_compose(home: Path | None = None, timeout: float = 300.0, volumes: bool = False) -> Path | None:
    """``compose down`` the project ``init --mode compose`` started under this home (None: none);
    ``volumes`` also removes its etcd data volume."""
    marker = (home or ase_home()) / MARKER
    if not marker.is_file():
        return None
    doc = orjson.loads(marker.read_bytes())
    folder = Path(doc["folder"])
    cmd = [str(c) for c in doc["command"]]
    _run_compose(cmd, folder, ["down", *(["-v"] if volumes else [])], timeout)
    marker.unlink()
    return folder
