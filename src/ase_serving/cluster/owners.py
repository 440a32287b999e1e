"""Who holds a port, and whether a process is one we started: what keeps ``asectl init`` and
``asectl cluster status`` from taking another program's answer for their own component.

A health check that only asks a port is fooled by whatever listens there (another cluster's
gateway answers ``/health`` with 200 as well as ours would). So a start first checks that the
port is free (:func:`port_taken`), names whoever holds it (:func:`holder`, from ``/proc``), and
believes a component's answer only when the pid it reports is the started process or one of its
children (:func:`descends_from`). Where ``/proc`` is missing these say "cannot tell" rather than
guess: :func:`holder` returns None, :func:`descends_from` True.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
#: TCP states in /proc/net/tcp that hold a local port: LISTEN (0A) and a bound, unconnected socket (07).
_HOLDING = {"0A", "07"}
_CMDLINE_SHOWN = 120


def port_taken(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails because the address is in use (as the component's own
    bind would: with SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bare, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


@dataclass(frozen=True)
class Holder:
    """A process that holds a port: its pid, command line and the ``$ASE_HOME`` it runs under."""

    pid: int
    command: str
    ase_home: str | None = None

    def __str__(self) -> str:
        home = f", ASE_HOME={self.ase_home}" if self.ase_home else ""
        return f"pid {self.pid} (`{self.command}`{home})"


def _socket_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] not in _HOLDING:
                continue
            local_port = fields[1].rsplit(":", 1)[-1]
            if int(local_port, 16) == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def _command(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    parts = [p.decode(errors="replace") for p in raw.split(b"\0") if p]
    if parts:
        parts[0] = os.path.basename(parts[0])
    text = " ".join(parts) or "?"
    return text if len(text) <= _CMDLINE_SHOWN else text[: _CMDLINE_SHOWN - 3] + "..."


def _ase_home(pid: int) -> str | None:
    # Only this one variable is read: it tells the user which `asectl down` stops that cluster.
    with contextlib.suppress(OSError):
        for entry in (_PROC / str(pid) / "environ").read_bytes().split(b"\0"):
            if entry.startswith(b"ASE_HOME="):
                return entry[len(b"ASE_HOME=") :].decode(errors="replace") or None
    return None


def holder(port: int) -> Holder | None:
    """The process holding TCP ``port`` (the lowest pid when several share the socket, as a
    server's workers do), or None when it cannot be seen (another user's process, no /proc)."""
    inodes = _socket_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    found: list[int] = []
    for proc in _PROC.iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        found.append(int(proc.name))
                        break
    if not found:
        return None
    pid = min(found)
    return Holder(pid, _command(pid), _ase_home(pid))


def _parent(pid: int) -> int | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return None


def descends_from(pid: int, root: int) -> bool:
    """Whether ``pid`` is ``root`` or one of its descendants (a server's worker process).
    True when it cannot be told (no /proc): a missing check must not fail a good start."""
    if pid == root:
        return True
    if not _PROC.is_dir():
        return True
    seen = 0
    current: int | None = pid
    while current is not None and current > 1 and seen < 64:
        current = _parent(current)
        if current == root:
            return True
        seen += 1
    return False


def describe(port: int) -> str:
    """``pid 1234 (`python -m ase_serving.gateway ...`, ASE_HOME=/x)``, or a phrase saying that
    the holder cannot be seen."""
    found = holder(port)
    return str(found) if found is not None else "a process this user cannot see"
