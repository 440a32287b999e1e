"""The README's Quick start first command, run as a user runs it (keeps the README true)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_quickstart_runs_the_whole_flow() -> None:
    if not (ROOT / ".venv" / "bin" / "asectl").exists():
        pytest.skip("scripts/quickstart uses .venv (made by scripts/install); not present here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASE_")}
    proc = subprocess.run(
        ["bash", "scripts/quickstart"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # The loader registered with the local cluster, answered the call, and everything stopped.
    assert "+ asectl init --config-port 0 --lb-port 0" in out
    address = out.split(" serving on ", 1)[1].split(" ", 1)[0]
    status = out.split("+ asectl cluster status", 1)[1].split("+ asectl loader call", 1)[0]
    assert address in status and "2/2" in status and "healthy" in status
    assert '"text_utf8": "hello"' in out
    assert "loader stopped cleanly" in out
    assert "stopped lb (pid" in out and "stopped config (pid" in out
