"""Helpers for the cluster-side asectl tests: run asectl with a given $ASE_HOME, check one-line errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ase_serving.home import ClusterSettings
from tests.support import ASECTL

_CLUSTER_VARS = (
    "ASE_CONFIG_ADDRESS",
    "ASE_CONFIG_ACCOUNT",
    "ASE_CONFIG_PASSWORD",
    "ASE_PROJECT",
    "ASE_GROUP",
)


def asectl(
    home: Path, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``asectl ARGS`` as a user runs it, with its own ``$ASE_HOME`` and no terminal (stdin closed)."""
    full = {k: v for k, v in os.environ.items() if k not in _CLUSTER_VARS}
    full.update({"ASE_HOME": str(home), **(env or {})})
    return subprocess.run(
        [*ASECTL, *map(str, args)],
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line of a failed command (no traceback, nothing else)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


def set_up(home: Path, address: str, account: str | None, password: str | None) -> None:
    """What `asectl setup` saves, written directly (setup itself is tested in test_setup.py)."""
    ClusterSettings(address, account, password).save(home)
