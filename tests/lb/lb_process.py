"""Start a real ``python -m ase_serving.lb`` process for tests; killed (its group) on exit."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READY = "lb serving on "


class LbProcess:
    """A running LB service: ``address``, ``stderr()``, ``stop()`` (SIGTERM) and ``kill()``."""

    def __init__(self, proc: subprocess.Popen[str], err: Path, line: str) -> None:
        self.proc = proc
        self.err = err
        self.line = line
        self.address = line[len(READY) :].split(" ", 1)[0]

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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

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


def start_lb(*args: str, env: dict[str, str] | None = None, timeout: float = 30.0) -> LbProcess:
    """``python -m ase_serving.lb --port 0 ARGS`` until its ready line; RuntimeError with its stderr."""
    err = Path(tempfile.mkstemp(prefix="ase-lb-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "ase_serving.lb", "--port", "0", *args]
    with err.open("w") as err_fh:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err_fh,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                LbProcess(proc, err, READY).kill()
                raise RuntimeError(f"LB not ready in {timeout:g} s: {err.read_text()}")
            if sel.select(min(left, 0.1)):
                line = proc.stdout.readline()
                if line.startswith(READY):
                    return LbProcess(proc, err, line.strip())
                if not line:
                    code = proc.wait(10)
                    raise RuntimeError(f"LB exited with {code}: {err.read_text()}")
