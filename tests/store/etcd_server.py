"""A real ``/usr/bin/etcd`` for tests: free loopback ports, data in a tmp dir, log to a file.

    server = start_etcd(tmp_path / "etcd", auth=True)
    try:
        backend = server.backend()
        ...
    finally:
        server.kill()

``stop()`` ends etcd gracefully (SIGTERM) and ``kill()`` with SIGKILL; ``start()`` brings it back on the
same ports with the same data, so a test can restart etcd under a running client. Every etcd runs in its
own process group; ``kill()`` is safe to call more than once (use it in teardown).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from ase_serving.store import Backend, open_backend
from tests.support import stop_group

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
START_DEADLINE = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """One single-member etcd cluster on 127.0.0.1."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.client_url = f"http://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.address = f"etcd://127.0.0.1:{self.client_port}"
        self.account: str | None = None
        self.password: str | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        return [
            ETCD,
            "--name=ase-test",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster=ase-test={self.peer_url}",
            "--initial-cluster-state=new",
            # A single member elects itself after one election timeout: keep both short so
            # (re)starts take well under a second instead of the default ~1-2 s.
            "--heartbeat-interval=20",
            "--election-timeout=200",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
            # Keep every revision until a test compacts explicitly.
            "--auto-compaction-retention=0",
        ]

    def start(self) -> None:
        """(Re)start etcd with the same ports and data; return once it serves requests."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_DEADLINE
        while not self._healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}; log:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"etcd did not become healthy in {START_DEADLINE:g} s; log:\n{self.log()}")
            time.sleep(0.02)

    def _healthy(self) -> bool:
        # /health answers only once the member has a leader and can serve a read.
        try:
            with urllib.request.urlopen(self.client_url + "/health", timeout=2) as resp:
                return b'"health":"true"' in resp.read()
        except (OSError, urllib.error.URLError):
            return False

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _signal(self, sig: int, timeout: float) -> None:
        if self.proc is not None:
            stop_group(self.proc, sig, timeout)

    def stop(self) -> None:
        """End etcd gracefully (SIGTERM; SIGKILL after 10 s)."""
        self._signal(signal.SIGTERM, 10.0)

    def kill(self) -> None:
        """End etcd at once (SIGKILL). Safe to call again."""
        self._signal(signal.SIGKILL, 10.0)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def etcdctl(self, *args: str, user: bool = True) -> str:
        """Run ``etcdctl`` against this server (as root when auth is on); returns stdout."""
        cmd = [ETCDCTL, f"--endpoints={self.client_url}", "--dial-timeout=5s", "--command-timeout=10s"]
        if user and self.account is not None:
            cmd.append(f"--user={self.account}:{self.password}")
        env = {**os.environ, "ETCDCTL_API": "3"}
        done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def enable_auth(self) -> None:
        """Create user ``root`` with a random password and turn etcd auth on."""
        password = secrets.token_urlsafe(12)
        self.etcdctl("user", "add", f"root:{password}", user=False)
        self.etcdctl("user", "grant-role", "root", "root", user=False)
        self.etcdctl("auth", "enable", user=False)
        self.account, self.password = "root", password

    def backend(self) -> Backend:
        """A backend on this server, with its account/password when auth is on."""
        return open_backend(self.address, self.account, self.password)

    def __enter__(self) -> EtcdServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill()


def start_etcd(data_dir: Path, auth: bool = False) -> EtcdServer:
    """Start a fresh etcd with its data in ``data_dir``; with ``auth`` root gets a random password."""
    server = EtcdServer(Path(data_dir))
    server.start()
    if auth:
        try:
            server.enable_auth()
        except BaseException:
            server.kill()
            raise
    return server
