"""The local process manager behind ``asectl init --mode local`` and ``asectl down``.

A component is a :class:`Component`: a command line, the URL it serves, and a health check.
Each runs in its own session (so ``down`` can signal its whole process group), logs to
``$ASE_HOME/logs/<name>.log`` and is remembered in ``$ASE_HOME/run/<name>.pid`` (JSON: pid, url,
command, log, start time). A pid file whose process is gone, or whose pid now belongs to some
other program, is stale and is removed; so starting twice never runs a second copy, and a crashed
component is simply started again.

Adding a component means adding one :class:`Component` builder to the list that
:mod:`ase_serving.cluster.bringup` runs (the LB and the gateway are two); nothing here names a component.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ase_serving.cluster import owners
from ase_serving.cluster_settings import ase_home
from ase_serving.errors import UserError
from ase_serving.files import write_private

#: Seconds a component may take to become healthy, and a stopping one to exit after SIGTERM.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_POLL = 0.1
_LOG_TAIL = 15


class LocalError(UserError):
    """A component could not be started or stopped; the message says why (with its log tail)."""


@dataclass(frozen=True)
class Component:
    """One background process of a local cluster."""

    #: Short name: pid/log file name and the key in ``ClusterSettings.components`` ("config", "lb").
    name: str
    #: What people call it ("config centre").
    title: str
    argv: list[str]
    url: str
    #: True when the component answers (called repeatedly until it does; must not block for long).
    healthy: Callable[[str], bool]
    #: A string that the process's command line must contain for a pid file to be believed.
    marker: str
    env: dict[str, str] = field(default_factory=dict)
    #: ``(host, port)`` it will listen on: checked free before it starts (port 0: not checked).
    listen: tuple[str, int] | None = None
    #: The flag that chooses that port (``--gateway-port``), named when the port is taken.
    port_flag: str = ""
    #: The pid of the process answering at the URL, from the component's own health answer (None:
    #: cannot tell). A start is believed only when that pid is the started process or its child,
    #: so another program's answer on the port is never taken for ours.
    owner: Callable[[str], int | None] | None = None


@dataclass(frozen=True)
class Running:
    """A component this home's pid files say is running (and whose process is alive)."""

    name: str
    pid: int
    url: str
    log: str
    started: float
    #: False when ``start`` found it already running.
    new: bool = False

    def doc(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "pid": self.pid, "log": self.log, "started": self.new}


class LocalCluster:
    """The processes of the local cluster under one ``$ASE_HOME``."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or ase_home()
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "logs"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def running(self, name: str, marker: str | None = None, prune: bool = True) -> Running | None:
        """The running component ``name``, or None (a stale pid file is removed, unless ``prune``
        is False: ``cluster status`` only looks, and the file still says what was started)."""
        path = self.pid_file(name)
        try:
            doc = orjson.loads(path.read_bytes())
            rec = Running(name, int(doc["pid"]), str(doc["url"]), str(doc["log"]), float(doc["started"]))
            marker = marker or str(doc.get("marker") or "")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            if prune:
                path.unlink(missing_ok=True)
            return None
        if not _alive(rec.pid, marker):
            if prune:
                path.unlink(missing_ok=True)
            return None
        return rec

    def all_running(self) -> list[Running]:
        """Every running component, newest first (the order to stop them in)."""
        if not self.run_dir.is_dir():
            return []
        found = [self.running(p.stem) for p in self.run_dir.glob("*.pid")]
        return sorted((r for r in found if r is not None), key=lambda r: r.started, reverse=True)

    def start(self, comp: Component, timeout: float = START_TIMEOUT) -> Running:
        """Start ``comp`` unless it already runs; return once it is healthy.

        :class:`LocalError` (with the log's tail) if it exits or is not healthy within
        ``timeout``; what this call started is stopped again then.
        """
        current = self.running(comp.name, comp.marker)
        if current is not None:
            if _wait_healthy(comp.healthy, current.url, current.pid, comp.marker, timeout):
                return current
            raise LocalError(
                f"the {comp.title} (pid {current.pid}) runs but is not healthy at {current.url}; "
                f"see {current.log}, or run `asectl down` and try again"
            )
        _check_port(comp)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{comp.name}.log"
        with log.open("ab") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(comp.argv)}\n".encode())
            fh.flush()
            offset = fh.tell()
            try:
                proc = subprocess.Popen(
                    comp.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **comp.env},
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise LocalError(f"cannot start the {comp.title}: {exc}") from None
        url = comp.url
        if url.endswith(":0"):  # port 0: the component chose a free port and says which on its ready line
            url = _ready_url(log, offset, proc, timeout) or url
        rec = Running(comp.name, proc.pid, url, str(log), time.time(), new=True)
        doc = {"pid": rec.pid, "url": rec.url, "log": rec.log, "started": rec.started, "marker": comp.marker}
        doc["argv"] = comp.argv
        write_private(self.pid_file(comp.name), orjson.dumps(doc))
        if _wait_healthy(comp.healthy, rec.url, proc.pid, comp.marker, timeout, proc):
            foreign = _foreign(comp, rec.url, proc.pid)
            if foreign is None:
                return rec
            self.stop(rec)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1)
            raise LocalError(foreign)
        code = proc.poll()
        self.stop(rec)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1)
        why = f"exited with code {code}" if code is not None else f"was not healthy within {timeout:g} s"
        raise LocalError(f"the {comp.title} {why}; its log ({log}) ends with:\n{_tail(log, offset)}")

    def stop(self, rec: Running, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM the component's process group, SIGKILL after ``timeout``; False if it had to be killed."""
        graceful = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rec.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(rec.pid, None) and time.monotonic() < deadline:
            time.sleep(_POLL)
        if _alive(rec.pid, None):
            graceful = False
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(rec.pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while _alive(rec.pid, None) and time.monotonic() < deadline:
                time.sleep(_POLL)
        self.pid_file(rec.name).unlink(missing_ok=True)
        return graceful


def _check_port(comp: Component) -> None:
    """:class:`LocalError` naming who holds the component's port, before anything is started."""
    if comp.listen is None or not comp.listen[1]:
        return
    host, port = comp.listen
    if owners.port_taken(host, port):
        raise LocalError(_taken(comp, port, owners.holder(port)))


def _taken(comp: Component, port: int, who: owners.Holder | None) -> str:
    """One line: which port, who holds it, what to do."""
    held = f"taken by {who}" if who is not None else "taken by a process this user cannot see"
    stop = f"`ASE_HOME={who.ase_home} asectl down` stops that cluster" if who and who.ase_home else "stop it"
    other = f", or choose another port with {comp.port_flag}" if comp.port_flag else ""
    return f"cannot start the {comp.title}: port {port} is {held}; {stop}{other}"


def _foreign(comp: Component, url: str, started: int) -> str | None:
    """Why the healthy answer at ``url`` is not from the process started (pid ``started``), or None."""
    if comp.owner is None:
        return None
    try:
        pid = comp.owner(url)
    except Exception:  # a probe that fails cannot tell; the health check itself passed
        return None
    if pid is None or owners.descends_from(pid, started):
        return None
    if comp.listen is not None and comp.listen[1]:
        return _taken(comp, comp.listen[1], owners.holder(comp.listen[1]))
    return (
        f"cannot start the {comp.title}: what answers at {url} is pid {pid}, "
        f"not the process started (pid {started})"
    )


def _alive(pid: int, marker: str | None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, given a marker, is still our program."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # some other user's process took the pid: not ours
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            stat = (proc / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
            if marker and marker not in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace"
            ):
                return False
        except (OSError, IndexError):
            return False
    return True


def _wait_healthy(
    check: Callable[[str], bool],
    url: str,
    pid: int,
    marker: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if proc is None and not _alive(pid, marker):
            return False
        try:
            if check(url):
                return True
        except Exception:  # any failure of a probe means "not yet"
            pass
        time.sleep(_POLL)
    return False


_READY = re.compile(r" serving on (\S+)")


def _ready_url(log: Path, offset: int, proc: subprocess.Popen[bytes], timeout: float) -> str | None:
    """The address from the component's ready line ``... serving on URL ...`` in its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with log.open("rb") as fh:
            fh.seek(offset)
            found = _READY.search(fh.read().decode(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            return None
        time.sleep(_POLL)
    return None


def _tail(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError as exc:
        return f"(unreadable: {exc})"
    return "\n".join(f"  {line}" for line in lines[-_LOG_TAIL:]) or "  (empty)"
