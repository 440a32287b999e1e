"""The README's Quick start first command, run as a user runs it (keeps the README true)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(180)
def test_quickstart_runs_the_whole_flow() -> None:
    if not (ROOT / ".venv" / "bin" / "asectl").exists():
        pytest.skip("scripts/quickstart uses .venv (made by scripts/install); not present here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASE_")}
    proc = _run(["bash", "scripts/quickstart"], env, 170)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # The loader registered with the local cluster, answered through the gateway, and everything stopped.
    assert "+ asectl init --config-port 0 --gateway-port 0" in out
    address = out.split(" serving on ", 1)[1].split(" ", 1)[0]
    status = out.split("+ asectl cluster status", 1)[1].split("+ curl", 1)[0]
    assert address in status and "2/2" in status and "healthy" in status and "gateway" in status
    assert "/v1/private/echo" in status
    assert "payload.echo.text is base64 too: 'hello ASE'" in out
    assert "loader stopped cleanly" in out
    assert "stopped gateway (pid" in out and "stopped config (pid" in out
    assert "stopped lb" not in out  # a local cluster has no LB service unless `asectl init --lb`


@pytest.mark.timeout(180)
def test_the_printed_curl_command_works_as_printed() -> None:
    if not (ROOT / ".venv" / "bin" / "asectl").exists():
        pytest.skip("scripts/quickstart uses .venv (made by scripts/install); not present here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASE_")}
    proc = _run(["bash", "scripts/quickstart", "--keep"], env, 170)
    out = proc.stdout
    home = out.split("+ export ASE_HOME=", 1)[1].split(" ", 1)[0] if "+ export ASE_HOME=" in out else None
    pid = out.split("still running: the loader (pid ", 1)[1].split(")", 1)[0] if "(pid " in out else None
    try:
        assert proc.returncode == 0, out + proc.stderr
        curl = next(line[2:] for line in out.splitlines() if line.startswith("+ curl "))
        answer = subprocess.run(
            curl, shell=True, capture_output=True, text=True, timeout=30, check=True
        ).stdout
        doc = orjson.loads(answer)
        assert doc["header"]["code"] == 0, doc
        assert base64.b64decode(doc["payload"]["echo"]["text"]) == b"hello ASE"
    finally:
        if pid is not None and pid.isdigit():
            os.kill(int(pid), signal.SIGTERM)
        if home is not None:
            _run([str(ROOT / ".venv" / "bin" / "asectl"), "down"], {**env, "ASE_HOME": home}, 60)
