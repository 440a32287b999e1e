"""The peers of ``bench/peers.py``: mosec and LitServe, each installed in a venv of its own
(pinned versions), and their echo apps for our request and response layout."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import loadgen
from gateway_servers import SERVER_CPU, taskset

# -- the peers ------------------------------------------------------------------------------------
#: Written next to each peer's app: the echo every peer runs, and the "serving on" line the bench
#: waits for (the port is the bench's choice: mosec takes no port 0).
PEER_ECHO = '''
"""The echo of bench/peers.py's peer apps (generated; no ase_serving here)."""
import argparse
import base64
import itertools

import orjson

loads = orjson.loads
dumps = orjson.dumps
_count = itertools.count(1)


def announce(name):
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args, _ = ap.parse_known_args()
    print(f"{name} serving on http://{args.address}:{args.port}", flush=True)
    return args.address, args.port


def echo(body, prefix):
    """Our gateway's answer to the once body: each payload text base64-decoded and re-encoded."""
    out = {}
    for entry in body["payload"].values():
        data = base64.b64decode(entry["text"], validate=True)
        out["echo"] = {"encoding": "utf8", "status": 3, "text": base64.b64encode(data).decode()}
    return {"header": {"code": 0, "message": "success", "sid": f"{prefix}{next(_count):08x}"}, "payload": out}
'''

MOSEC_APP = '''
"""bench/peers.py's mosec echo (generated): one worker on /inference, orjson in and out."""
from mosec import Server, Worker

from peer_echo import announce, dumps, echo, loads


class Echo(Worker):
    def deserialize(self, data):
        return loads(data)

    def serialize(self, data):
        return dumps(data)

    def forward(self, data):
        return echo(data, "mosec")


if __name__ == "__main__":
    announce("mosec")  # mosec reads --address, --port and --log-level from the command line itself
    server = Server()
    server.append_worker(Echo, num=1)
    server.run()
'''

LITSERVE_APP = '''
"""bench/peers.py's LitServe echo (generated): LitServe's defaults (/predict, one worker)."""
import litserve as ls

from peer_echo import announce, echo


class Echo(ls.LitAPI):
    def setup(self, device):
        pass

    def predict(self, x):
        return echo(x, "litserve")


if __name__ == "__main__":
    host, port = announce("litserve")
    server = ls.LitServer(Echo())
    server.run(host=host, port=port, log_level="warning", generate_client_file=False, access_log=False)
'''


@dataclass(frozen=True)
class Peer:
    key: str
    package: str
    version: str
    route: str
    app: str
    args: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.package} {self.version}"


PEERS = (
    Peer("mosec", "mosec", "0.9.8", "/inference", MOSEC_APP, ("--log-level", "warning")),
    Peer("litserve", "litserve", "0.2.19", "/predict", LITSERVE_APP),
)
#: What a reader needs to know of a peer's venv besides the peer itself.
PEER_DEPS = ("orjson", "uvicorn", "fastapi", "starlette", "uvloop", "httptools", "pyzmq", "msgspec")


class PeerError(Exception):
    """A peer that cannot be installed or started; it is skipped and the reason reported."""


def no_urls(text: str) -> str:
    """``text`` without addresses (pip's errors name the index it used)."""
    return re.sub(r"\b[a-z][a-z0-9+.-]*://\S+", "<url>", text)


def install_peer(peer: Peer, cache: Path) -> Path:
    """The Python of the peer's venv under ``cache``; created, with the peer and the orjson release
    our gateway runs, when not there (or when a previous install did not finish)."""
    venv = cache / f"{peer.package}-{peer.version}"
    py, stamp = venv / "bin" / "python", venv / ".ase-bench-installed"
    if stamp.is_file() and py.exists():
        return py
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    print(f"installing {peer.label} into {venv} (once; reused next time) ...", flush=True)
    want = [f"{peer.package}=={peer.version}", f"orjson=={metadata.version('orjson')}"]
    for cmd in (
        [sys.executable, "-m", "venv", str(venv)],
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *want],
    ):
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            res = subprocess.CompletedProcess(cmd, -1, "", f"{type(exc).__name__}: {exc}")
        if res.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            lines = [ln for ln in res.stderr.splitlines() if not ln.startswith("WARNING:")] or ["?"]
            raise PeerError(f"`{shlex.join(cmd[2:])}` failed: {no_urls(' / '.join(lines[-3:]))}")
    stamp.write_text(" ".join(want) + "\n")
    return py


def peer_versions(py: Path, peer: Peer) -> dict[str, str]:
    """The versions of the peer and of the libraries it serves with, as installed in its venv."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    cmd = [str(py), "-c", code, peer.package, *PEER_DEPS]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    doc: dict[str, str] = json.loads(res.stdout) if res.returncode == 0 else {}
    return doc


@contextlib.contextmanager
def peer_server(peer: Peer, py: Path, appdir: Path, pin: bool) -> Iterator[loadgen.LoaderServer]:
    """The peer's echo app on a free port, every process of it pinned to the server CPU."""
    (appdir / "peer_echo.py").write_text(textwrap.dedent(PEER_ECHO).lstrip())
    app = appdir / f"{peer.key}_app.py"
    app.write_text(textwrap.dedent(peer.app).lstrip())
    cmd = [*taskset(SERVER_CPU, pin), str(py), str(app), "--address", "127.0.0.1"]
    cmd += ["--port", str(loadgen.free_port()), *peer.args]
    with loadgen.serving(cmd, None) as server:
        yield server
