"""The compose project and the docker commands' errors, without a Docker engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ase_serving.cluster.compose import LOADER_METRICS_PORT, ComposeOptions, write_project
from ase_serving.cluster.images import LOADER_DATA_PORT, LOADER_PORT, loader_dockerfile, project_tag

REPO = Path(__file__).resolve().parents[2]
ECHO = REPO / "examples" / "echo"


def _asectl(args: list[str], env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**env, "ASE_HOME": str(home), "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, "-m", "ase_serving.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=home,
    )


def test_compose_file(tmp_path: Path) -> None:
    doc = yaml.safe_load(write_project(ComposeOptions(tmp_path / "c", gateway_port=18080)).read_text())
    services = doc["services"]
    assert set(services) == {"etcd", "lb", "gateway", "echo"}
    assert services["etcd"]["image"].startswith("quay.io/coreos/etcd:v3.5.")
    assert services["etcd"]["healthcheck"]["test"] == ["CMD", "etcdctl", "endpoint", "health"]
    assert "etcd-data:/etcd-data" in services["etcd"]["volumes"]
    assert "etcd-data" in doc["volumes"]
    for name in ("lb", "gateway", "echo"):
        svc = services[name]
        assert svc["depends_on"]["etcd"] == {"condition": "service_healthy"}
        assert svc["environment"]["ASE_CONFIG_ADDRESS"] == "etcd://etcd:2379"
        assert svc["healthcheck"]["test"][:2] == ["CMD", "python3"]
    assert services["gateway"]["depends_on"]["lb"] == {"condition": "service_healthy"}
    assert "/health" in services["gateway"]["healthcheck"]["test"][-1]
    assert services["gateway"]["ports"] == ["127.0.0.1:18080:2392"]
    assert services["gateway"]["command"][:3] == ["python", "-m", "ase_serving.gateway"]
    lb = services["lb"]["command"]
    assert lb[lb.index("--port") + 1] == "2391" and lb[lb.index("--wire-port") + 1] == "2393"


def test_compose_loader_serves_on_its_data_port(tmp_path: Path) -> None:
    """The echo loader: a fixed data port, exposed on the compose network and registered as
    echo:50052 (what the gateway calls); its healthcheck asks that port and /health."""
    assert (LOADER_PORT, LOADER_DATA_PORT) == (50051, 50052)
    doc = yaml.safe_load(write_project(ComposeOptions(tmp_path / "c")).read_text())
    echo = doc["services"]["echo"]
    command = echo["command"]
    assert command[command.index("--data-port") + 1] == "50052"
    assert command[command.index("--advertise") + 1] == "echo:50052"
    assert "--data-host" not in command  # 0.0.0.0 (the image's --host): the secret from etcd
    assert "--standalone" not in command
    assert echo["expose"] == ["50052"]
    assert "ports" not in echo  # reached over the compose network only
    check = echo["healthcheck"]["test"][-1]
    assert "('127.0.0.1', 50052)" in check and "recv" in check
    assert f"127.0.0.1:{LOADER_METRICS_PORT}/health" in check
    metrics = command[command.index("--metrics-port") + 1]
    assert metrics == str(LOADER_METRICS_PORT)


def test_loader_image_ports() -> None:
    """The loader base image serves gRPC on 50051 and the data port on 50052 and exposes both."""
    text = (REPO / "docker" / "loader.Dockerfile").read_text()
    (entry,) = [line for line in text.splitlines() if line.startswith("ENTRYPOINT")]
    argv = json.loads(entry.removeprefix("ENTRYPOINT"))
    assert argv[argv.index("--port") + 1] == str(LOADER_PORT)
    assert argv[argv.index("--data-port") + 1] == str(LOADER_DATA_PORT)
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert f"EXPOSE {LOADER_PORT} {LOADER_DATA_PORT}" in text.splitlines()


def test_loader_dockerfile_and_tag() -> None:
    assert project_tag(ECHO) == "ase-echo:1.0.0"
    text = loader_dockerfile(ECHO, "base:1")
    assert text.startswith("FROM base:1\n")
    # examples/echo's requirements.txt is a comment only: no pip step (a layer and seconds saved).
    assert "requirements" not in text and "pip install" not in text
    assert "COPY --chown=10001:10001 . /app" in text


def _no_docker_env(tmp_path: Path) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    return {"PATH": str(bindir), "HOME": str(tmp_path)}


def _docker_commands(env: dict[str, str], tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run each command that needs Docker (images build, loader build, loader test --image, init
    --mode compose)."""
    commands = (
        ["images", "build"],
        ["loader", "build", str(ECHO)],
        ["loader", "test", str(ECHO), "--image", "x:1"],
        ["init", "--mode", "compose", "--dir", str(tmp_path / "c")],
    )
    return [_asectl(args, env, tmp_path) for args in commands]


def test_no_docker_cli(tmp_path: Path) -> None:
    env = _no_docker_env(tmp_path)
    for proc in _docker_commands(env, tmp_path):
        assert proc.returncode == 1, proc
        assert "no docker command on PATH" in proc.stderr
        assert "apt-get install docker.io" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_dead_engine(tmp_path: Path) -> None:
    import shutil

    if shutil.which("docker") is None:
        pytest.skip("no docker CLI here")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/dead.sock"}
    for proc in _docker_commands(env, tmp_path):
        assert proc.returncode == 1, proc
        assert "no Docker engine answers" in proc.stderr
        assert "start it" in proc.stderr


def test_loader_test_image_runs_standalone_on_grpc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`loader test --image` runs the image standalone (no config centre, so no cluster secret):
    the data port on the container's loopback, the gRPC port published; a docker stand-in records
    the command."""
    from ase_serving.cluster.images import DockerError, test_image

    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "argv"
    fake = bindir / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = info ]; then echo 28.0.0; exit 0; fi\n'
        'if [ "$1" = image ]; then echo sha256:0; exit 0; fi\n'  # the image is here
        f'printf "%s\\n" "$@" > {log}\n'
        'echo "no such image" >&2; exit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    with pytest.raises(DockerError, match="no such image"):
        test_image(ECHO, "ase-echo:1.0.0")
    argv = log.read_text().splitlines()
    assert argv[0] == "run" and "ase-echo:1.0.0" in argv
    published = argv[argv.index("-p") + 1]
    assert published.startswith("127.0.0.1:") and published.endswith(f":{LOADER_PORT}")
    after = argv[argv.index("ase-echo:1.0.0") + 1 :]
    assert after == ["--standalone", "--data-host", "127.0.0.1"]
