"""End to end with a real Docker engine: the framework and loader images (`asectl images build`),
`asectl loader build` and `loader test --image` of examples/echo (over gRPC), `asectl init --mode
compose`, calls through the gateway with the first consumer's key (to the loader's data port,
echo:50052, with the cluster's secret from etcd), `asectl down`; and the one-line errors of a base
image or an image that is not on the machine.

Skipped (with the reason) when no engine answers `docker info`; scripts/docker-engine starts one and
scripts/docker-base makes the base images locally (no registry needed).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ase_serving.cluster.compose import ECHO_IMAGE
from ase_serving.cluster.images import (
    FRAMEWORK_IMAGE,
    LOADER_BASE_IMAGE,
    LOADER_DATA_PORT,
    LOADER_PORT,
    DockerError,
    check_engine,
    free_port,
)

REPO = Path(__file__).resolve().parents[2]
ECHO = REPO / "examples" / "echo"


def _engine_reason() -> str | None:
    try:
        check_engine(timeout=15)
    except DockerError as exc:
        return str(exc)
    return None


_REASON = _engine_reason()
pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=f"no Docker engine: {_REASON}"),
    # Base images, three image builds on vfs and a compose project: minutes, more than the suite's
    # per-test ceiling (each step below has its own deadline).
    pytest.mark.timeout(1800),
]


def _asectl(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ase_serving.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )
    sys.stderr.write(proc.stderr[-4000:])
    return proc


@pytest.fixture(scope="session")
def images() -> Iterator[None]:
    """The base images, built as a user builds them: `asectl images build`, one line per step."""
    subprocess.run([str(REPO / "scripts" / "docker-base")], check=True, timeout=900)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    built = _asectl("images", "build", env=env, timeout=1500)
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"built {FRAMEWORK_IMAGE} and {LOADER_BASE_IMAGE} in " in built.stdout
    for tag in (FRAMEWORK_IMAGE, LOADER_BASE_IMAGE):
        assert f"building {tag} (" in built.stderr and f"  {tag}: step 1/" in built.stderr, built.stderr
    yield


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "ASE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO / "src")}


def test_loader_build_test_and_compose(images: None, env: dict[str, str], tmp_path: Path) -> None:
    built = _asectl("loader", "build", str(ECHO), env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert ECHO_IMAGE in built.stdout

    tested = _asectl("loader", "test", str(ECHO), "--image", ECHO_IMAGE, "--json", env=env)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert (
        f"started {ECHO_IMAGE} (container " in tested.stderr and "the loader answers after" in tested.stderr
    )
    report = json.loads(tested.stdout)
    assert report["ok"] and report["cases"], report

    folder = tmp_path / "compose"
    port = free_port()
    up = _asectl(
        "init",
        "--mode",
        "compose",
        "--dir",
        str(folder),
        "--gateway-port",
        str(port),
        "--config-port",
        str(free_port()),
        env=env,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        creds = json.loads((folder / "credentials.json").read_text())
        body = {
            "header": {"app_id": creds["app_id"]},
            "payload": {"text": {"encoding": "utf8", "text": base64.b64encode(b"hi").decode()}},
        }
        answer = _call_echo(f"http://127.0.0.1:{port}", creds, body)
        assert base64.b64decode(answer["payload"]["echo"]["text"]) == b"hi"
        # More calls than the loader has licences (2): each one's licence is free again after it.
        for _ in range(6):
            _call_echo(f"http://127.0.0.1:{port}", creds, body)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            loaders = json.loads(resp.read())["loaders"]
        # The gateway calls the loader's data port (the lean wire), registered as echo:50052.
        data = f"echo:{LOADER_DATA_PORT}"
        assert [(n["address"], n["lic_total"], n["lic_free"]) for n in loaders] == [(data, 2, 2)]
        # init saved the cluster for this machine's asectl: status reads the compose etcd.
        status = _asectl("cluster", "status", "--json", env=env, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        services = {s["serviceId"]: s for s in json.loads(status.stdout)["services"]}
        assert [i["address"] for i in services["echo"]["instances"]] == [data], services
        # The gRPC port beside it, and the cluster secret the data port (on 0.0.0.0) checks callers
        # against, made in etcd by the loader.
        attrs, secret = asyncio.run(_registry_and_secret(Path(env["ASE_HOME"])))
        assert attrs.get("grpc") == f"echo:{LOADER_PORT}", attrs
        assert secret, "no cluster secret in etcd"
        # Its healthcheck (the data port answers the wire's HELLO, /health says serving) passes.
        _wait_healthy("echo")
    finally:
        down = _asectl("down", "--volumes", env=env, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped the compose project" in down.stdout
    volumes = subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True, timeout=60)
    assert "ase_etcd-data" not in volumes.stdout.split(), volumes.stdout


def test_loader_build_without_its_base_image_says_how_to_build_it(env: dict[str, str]) -> None:
    """Not docker's registry error: one line naming the command that builds the base image."""
    absent = "ase-serving-loader:0.0.0-absent"
    built = _asectl(
        "loader", "build", str(ECHO), "--base", absent, "-t", "ase-absent-test:1", env=env, timeout=120
    )
    assert built.returncode == 1
    assert built.stderr == (
        f"error: docker: the loader base image {absent} is not on this machine: build it with "
        "`asectl images build` (a few minutes, once), or name another with --base IMAGE\n"
    )


def test_loader_test_of_an_image_that_is_not_here(env: dict[str, str]) -> None:
    tested = _asectl("loader", "test", str(ECHO), "--image", "ase-absent-test:0", env=env, timeout=120)
    assert tested.returncode == 1
    assert tested.stderr.startswith(
        "error: docker: no image ase-absent-test:0 on this machine: `asectl loader build"
    )
    assert len(tested.stderr.strip().splitlines()) == 1


def test_an_image_whose_loader_stops_is_reported_at_once(images: None, env: dict[str, str]) -> None:
    """The loader base image alone has no project in /app: its loader exits at once, and `loader
    test --image` says so with the container's log, not after waiting its whole timeout."""
    tested = _asectl("loader", "test", str(ECHO), "--image", LOADER_BASE_IMAGE, env=env, timeout=300)
    assert tested.returncode == 1
    # Not "did not answer within 120 s": the stop was seen while waiting.
    assert "is not serving: its container stopped after" in tested.stderr, tested.stderr
    assert "/app: no wrapper.py here" in tested.stderr


def test_a_base_that_cannot_be_pulled_is_named(env: dict[str, str]) -> None:
    """A Python base neither here nor in a reachable registry: the build stops at its FROM, and the
    error names the image, not only docker's registry line."""
    built = _asectl("images", "build", "--python-base", "ase-absent-python:0", env=env, timeout=300)
    assert built.returncode == 1
    assert built.stderr.splitlines()[-1].startswith(
        f"error: docker build of {FRAMEWORK_IMAGE} failed: its base image ase-absent-python:0 is not on "
        "this machine and cannot be pulled"
    ), built.stderr


async def _registry_and_secret(home: Path) -> tuple[dict[str, Any], bytes | None]:
    """The echo instance's attributes in the compose cluster's registry, and the cluster's secret."""
    from ase_serving.cluster_settings import ClusterSettings
    from ase_serving.store.secret import read_secret

    settings = ClusterSettings.load(home)
    assert settings is not None
    backend = settings.open()
    try:
        assert backend.registry is not None
        instances, _ = await backend.registry.instances("echo")
        assert len(instances) == 1, instances
        return dict(instances[0].attrs), await read_secret(backend)
    finally:
        await backend.close()


def _wait_healthy(service: str, timeout: float = 120.0) -> None:
    """Poll the compose service's container until docker reports its healthcheck passing."""
    argv = ["docker", "ps", "--filter", "label=com.docker.compose.project=ase"]
    argv += ["--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Status}}"]
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        if "(healthy)" in status:
            return
        time.sleep(1)
    raise AssertionError(f"{service} was not healthy within {timeout:.0f} s: {status!r}")


def _call_echo(gateway: str, creds: dict[str, str], body: dict[str, object]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    last: object = None
    key = creds["api_key"]
    while time.monotonic() < deadline:
        req = urllib.request.Request(
            f"{gateway}/v1/private/echo",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-Api-Key": str(key)},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                doc: dict[str, Any] = json.loads(resp.read())
                if doc["header"]["code"] == 0:
                    return doc
                last = doc
        except OSError as exc:  # the loader registers and pushes its schema within seconds
            last = exc
        time.sleep(2)
    raise AssertionError(f"echo through the gateway did not answer: {last}")
