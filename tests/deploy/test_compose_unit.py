"""The compose project and the docker commands' errors, without a Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from ase_serving.cluster.compose import ComposeOptions, write_project
from ase_serving.cluster.images import loader_dockerfile, project_tag

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


def test_loader_dockerfile_and_tag() -> None:
    assert project_tag(ECHO) == "ase-echo:1.0.0"
    text = loader_dockerfile(ECHO, "base:1")
    assert text.startswith("FROM base:1\n")
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in text
    assert "COPY --chown=10001:10001 . /app" in text


def _no_docker_env(tmp_path: Path) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    return {"PATH": str(bindir), "HOME": str(tmp_path)}


def _docker_commands(env: dict[str, str], tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run each command that needs Docker (loader build, loader test --image, init --mode compose)."""
    commands = (
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
        import pytest

        pytest.skip("no docker CLI here")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/dead.sock"}
    for proc in _docker_commands(env, tmp_path):
        assert proc.returncode == 1, proc
        assert "no Docker engine answers" in proc.stderr
        assert "start it" in proc.stderr
