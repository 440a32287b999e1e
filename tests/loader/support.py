"""Shared by the tests of this folder."""

from __future__ import annotations

from pathlib import Path

from ase_serving.protocol.items import Request


def gated(tmp_path: Path, tag: str) -> Request:
    """A request of the ``gated`` test wrapper: it waits for ``tmp_path/gate`` (after writing
    ``tmp_path/started``)."""
    return Request(sid=tag, params={"gate": str(tmp_path / "gate"), "started": str(tmp_path / "started")})
