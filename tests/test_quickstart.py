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
    # It ends saying how to go on with asectl; the activation line it prints works as printed.
    closing = out.split("+ asectl down", 1)[1].split("# to use asectl yourself, in your shell", 1)[1]
    lines = [line[len("#   ") :].split("   #", 1)[0].strip() for line in closing.splitlines()[1:]]
    assert lines[0] == ". .venv/bin/activate", closing  # run from the repository's root
    assert lines[1:] == [
        "asectl init",
        "asectl loader run examples/echo",
        'asectl call echo --data text="hello ASE"',
    ]
    assert "export ASE_HOME=DIR" in closing
    found = _run(["bash", "-c", f"{lines[0]} && command -v asectl"], env, 30)
    assert found.returncode == 0 and os.path.samefile(
        found.stdout.strip(), ROOT / ".venv" / "bin" / "asectl"
    ), found


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
        # The lines it ends with, run as printed in a shell of one's own, reach the running cluster.
        closing = out.split("# to use asectl on it, in your shell:\n", 1)[1].split("# stop them with:", 1)[0]
        commands = [line.removeprefix("#   ") for line in closing.splitlines()]
        assert commands[:2] == [". .venv/bin/activate", f"export ASE_HOME={home}"], closing
        shell = _run(["bash", "-c", "set -e\n" + "\n".join(commands)], env, 60)
        assert shell.returncode == 0, shell.stdout + shell.stderr
        assert "healthy" in shell.stdout and "/v1/private/echo" in shell.stdout
        assert shell.stdout.rstrip().endswith("hello ASE"), shell.stdout
    finally:
        if pid is not None and pid.isdigit():
            os.kill(int(pid), signal.SIGTERM)
        if home is not None:
            _run([str(ROOT / ".venv" / "bin" / "asectl"), "down"], {**env, "ASE_HOME": home}, 60)
