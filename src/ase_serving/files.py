"""Where the tool keeps its files (``$ASE_HOME``), and files only their owner may read
(credentials, caches of consumers, pid files)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ase_home() -> Path:
    """``$ASE_HOME``, default ``~/.ase``."""
    return Path(os.environ.get("ASE_HOME") or "~/.ase").expanduser()
