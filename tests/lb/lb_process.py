"""Start a real ``python -m ase_serving.lb`` process for tests; killed (its group) on exit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import ASECTL, read_ready_line, spawn, stop_group

READY = "lb serving on "


class LbProcess:
    """A running LB service: ``address`` (gRPC), ``wire`` (its lean-wire port), ``stderr()``,
    ``stop()`` (SIGTERM) and ``kill()``."""

    def __init__(self, proc: subprocess.Popen[str], err: Path, line: str) -> None:
        self.proc = proc
        self.err = err
        self.line = line
        self.address = line[len(READY) :].split(" ", 1)[0]
        found = re.search(r"; lean wire on (\S+)$", line)
        self.wire = found.group(1) if found else ""

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for the exit code (killed on timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return self.proc.returncode

    def kill(self) -> None:
        stop_group(self.proc, signal.SIGKILL)

    def __enter__(self) -> LbProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill()


def run_lb(
    *args: str, env: dict[str, str] | None = None, timeout: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """Run the LB to completion (for start-up failures); its output captured."""
    cmd = [sys.executable, "-m", "ase_serving.lb", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False
    )


def start_lb(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30.0, asectl: bool = False
) -> LbProcess:
    """``python -m ase_serving.lb --port 0 ARGS`` (``asectl lb serve ...`` with ``asectl``; so a
    free lean-wire port too, unless ARGS name one) until its ready line; RuntimeError with its stderr."""
    head = [*ASECTL, "lb", "serve"] if asectl else [sys.executable, "-m", "ase_serving.lb"]
    proc, err = spawn([*head, "--port", "0", *args], "ase-lb-", env)
    try:
        line = read_ready_line(proc, lambda text: text.startswith(READY), timeout)
    except RuntimeError as exc:
        LbProcess(proc, err, READY).kill()
        raise RuntimeError(f"LB not ready ({exc}): {err.read_text()}") from None
    return LbProcess(proc, err, line.strip())
