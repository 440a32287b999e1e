"""Run the nginx example (examples/fronts/nginx) for a test: render it onto loopback ports, start it
under a temporary prefix, stop it leaving no process behind.

    cert, key = self_signed(tmp_path)
    with start_nginx(tmp_path / "front", upstream="127.0.0.1:2392", cert=cert, key=key) as front:
        httpx.get(front.https_url + "/health", verify=front.tls_context())

The example is rendered, not copied by hand: :func:`render` replaces the few literal ports and paths
it names, each of which must occur exactly once, so a changed example fails here rather than being
tested as something else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import connect

from tests.gateway.support import b64
from tests.support import spawn, stop_group

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fronts" / "nginx"
#: Debian installs nginx in /usr/sbin, which a non-root PATH may lack.
NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and localhost (a day long) and its key."""
    cert, key = directory / "front.crt", directory / "front.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def render(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        count = text.count(old)
        assert count == 1, f"the nginx example has {old!r} {count} times, the test expects it once"
        text = text.replace(old, new)
    return text


def gateway_conf(upstream: str, http_port: int, https_port: int, cert: Path, key: Path) -> str:
    """examples/fronts/nginx/ase-gateway.conf on loopback ports, with ``upstream`` (HOST:PORT) as its
    only gateway and the given certificate."""
    return render(
        (EXAMPLE / "ase-gateway.conf").read_text(),
        {
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
            "server 127.0.0.1:2392 ": f"server {upstream} ",
            "/etc/nginx/tls/ase-gateway.crt": str(cert),
            "/etc/nginx/tls/ase-gateway.key": str(key),
        },
    )


@dataclass
class Nginx:
    proc: subprocess.Popen[str]
    prefix: Path
    http_port: int
    https_port: int
    cert: Path

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def wss_url(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}"

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test's certificate (so verification is real)."""
        return ssl.create_default_context(cafile=str(self.cert))

    def log(self) -> str:
        return (self.prefix / "logs" / "error.log").read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        """SIGQUIT (graceful) the master, then make sure no nginx process of this group is left."""
        stop_group(self.proc, sig=signal.SIGQUIT, timeout=10.0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # a worker that outlived its master
            raise AssertionError(f"nginx workers outlived their master:\n{self.log()}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def start_nginx(prefix: Path, upstream: str, cert: Path, key: Path, timeout: float = 20.0) -> Iterator[Nginx]:
    """The example's nginx.conf and ase-gateway.conf under ``prefix``, run in the foreground until
    both ports accept connections (``RuntimeError`` with its error log when it exits or the deadline
    passes); stopped when the block ends."""
    assert NGINX is not None
    (prefix / "logs").mkdir(parents=True)
    (prefix / "temp").mkdir()
    shutil.copy(EXAMPLE / "nginx.conf", prefix / "nginx.conf")
    http_port, https_port = free_port(), free_port()
    (prefix / "ase-gateway.conf").write_text(gateway_conf(upstream, http_port, https_port, cert, key))
    # As root, workers would run as nobody, who cannot enter pytest's 0700 temporary directories
    # (temp files, logs): keep them root here.
    main = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    cmd = [
        NGINX,
        "-p",
        str(prefix),
        "-c",
        str(prefix / "nginx.conf"),
        "-e",
        str(prefix / "logs" / "error.log"),
    ]
    cmd += ["-g", main]
    proc, stderr = spawn(cmd, "nginx-")
    front = Nginx(proc, prefix, http_port, https_port, cert)
    try:
        deadline = time.monotonic() + timeout
        while not (_listening(https_port) and _listening(http_port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exit {proc.returncode}"
                    if proc.poll() is not None
                    else f"not listening in {timeout:g} s"
                )
                raise RuntimeError(f"nginx did not start ({why}): {stderr.read_text()}\n{front.log()}")
            time.sleep(0.02)
        yield front
    finally:
        front.stop()


def stream_echo_over_wss(
    url: str, tls: ssl.SSLContext, app_id: str, texts: tuple[str, ...]
) -> tuple[list[dict[str, Any]], int | None]:
    """One stream echo session: ``texts`` as frames 0, 1, ..., 2 (the first with ``app_id``), then
    every result frame until the server closes, and the close code."""

    def frame(status: int, text: str) -> str:
        body: dict[str, Any] = {
            "header": {"status": status},
            "payload": {"text": {"encoding": "utf8", "status": status, "text": b64(text)}},
        }
        if status == 0:
            body["header"]["app_id"] = app_id
            body["parameter"] = {"stream_echo": {}}
        return orjson.dumps(body).decode()

    async def go() -> tuple[list[dict[str, Any]], int | None]:
        got = []
        async with connect(url, ssl=tls) as ws:
            for i, text in enumerate(texts):
                await ws.send(frame(0 if i == 0 else 2 if i == len(texts) - 1 else 1, text))
            with contextlib.suppress(websockets.ConnectionClosed):
                async for msg in ws:
                    got.append(orjson.loads(msg))
            return got, ws.close_code

    return asyncio.run(asyncio.wait_for(go(), 30))
