"""``asectl api web`` as a process: its one line (the URL with the token), Ctrl-C to stop it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.support import ASECTL, read_ready_line, spawn, stop_group

READY = "api design page serving on "


class PageProcess:
    """A running ``asectl api web``: its URL (with the token), base URL, token and stderr."""

    def __init__(self, proc: subprocess.Popen[str], stderr_path: Path, line: str) -> None:
        self.proc, self.stderr_path, self.line = proc, stderr_path, line
        self.url = line.split(READY, 1)[1].split(" ", 1)[0]
        parts = urlsplit(self.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.token = parse_qs(parts.query)["token"][0]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def interrupt(self, timeout: float = 15.0) -> int:
        """Ctrl-C (SIGINT to the process), then its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout)
        return self.proc.returncode

    def stop(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.interrupt()
        stop_group(self.proc, signal.SIGKILL)


def start_page(folder: Path, home: Path, *args: str, timeout: float = 30.0) -> PageProcess:
    """``asectl api web FOLDER --no-open ARGS`` with ``$ASE_HOME`` = ``home``, until its line."""
    cmd = [*ASECTL, "api", "web", str(folder), "--no-open", *args]
    proc, err = spawn(cmd, "ase-page-", {"ASE_HOME": str(home)})
    try:
        line = read_ready_line(proc, lambda text: READY in text, timeout)
    except RuntimeError as exc:
        stop_group(proc, signal.SIGKILL)
        raise RuntimeError(f"asectl api web not ready ({exc}): {err.read_text()}") from None
    return PageProcess(proc, err, line.strip())


#: The ``pages`` fixture: ``pages(folder, home, *flags)`` -> a running page, stopped after the test.
StartPage = Callable[..., PageProcess]
