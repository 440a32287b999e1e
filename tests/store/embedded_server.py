"""A real embedded config centre (``python -m ase_serving.store.embedded``) for tests.

    server = start_embedded(tmp_path / "configd")
    try:
        backend = server.backend()          # logged in as admin
        ...
    finally:
        server.kill()

The first start picks a free port and creates ``admin`` (its password is read from the data
directory's ``admin.password``); ``stop()`` ends it with SIGTERM, ``kill()`` with SIGKILL, and
``start()`` brings it back on the same port with the same data, so a test can restart the centre
under a running client. Every server runs in its own process group; ``kill()`` is safe to call
more than once (use it in teardown).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ase_serving.store import Backend, open_backend
from tests.support import measured, read_ready_line, stop_group

START_DEADLINE = 20.0
STOP_DEADLINE = 10.0
READY = "config centre serving on "


class EmbeddedServer:
    """One embedded config centre on 127.0.0.1 with its data in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int = 0, args: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.args = list(args)
        self.url = ""
        self.account = "admin"
        self.password = ""
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc: subprocess.Popen[str] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "ase_serving.store.embedded",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data",
            str(self.data_dir),
            *self.args,
        ]

    def start(self) -> None:
        """(Re)start on the same port and data; return once it printed its ready line."""
        if self.running:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log:
            proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        self.proc = proc
        try:
            line = read_ready_line(proc, lambda text: text.startswith(READY), START_DEADLINE)
        except RuntimeError as exc:
            self.kill()
            raise RuntimeError(f"config centre not ready ({exc}); log:\n{self.log()}") from None
        self.url = line[len(READY) :].split(" ", 1)[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.password = (self.data_dir / "admin.password").read_text().strip()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> int | None:
        return None if self.proc is None else stop_group(self.proc, sig, STOP_DEADLINE)

    def stop(self) -> int | None:
        """End it gracefully (SIGTERM; SIGKILL after 10 s); returns the exit code."""
        return self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """End it at once (SIGKILL to the group). Safe to call again."""
        self._signal(signal.SIGKILL)

    def backend(self, account: str | None = "admin", password: str | None = None) -> Backend:
        """A backend on this server, as ``admin`` by default (``account=None``: anonymous)."""
        if account is not None and password is None and account == self.account:
            password = self.password
        return open_backend(self.url, account, password)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.finish()

    def finish(self) -> None:
        """End it after a test: at once, or gracefully while coverage measures it (``measured``)."""
        self.stop() if measured() else self.kill()


def start_embedded(data_dir: Path, port: int = 0, args: Sequence[str] = ()) -> EmbeddedServer:
    """Start an embedded config centre with its data in ``data_dir`` (port 0: a free one)."""
    server = EmbeddedServer(data_dir, port, args)
    server.start()
    return server
