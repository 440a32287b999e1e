"""Async session results: a wrapper calls ``callback(handle, items)`` from any thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: (handle, raw result items, ret) -> None; set by the process that hosts the wrapper.
Sink = Callable[[str, list[Any], int], None]

_lock = threading.Lock()
_sink: Sink | None = None


def set_sink(sink: Sink | None) -> None:
    """Install the function that receives callbacks (one per process: the engine host)."""
    global _sink
    with _lock:
        _sink = sink


def callback(handle: str, items: list[Any], ret: int = 0) -> None:
    """Push results of session ``handle`` (data item dicts, as ``wrapperRead`` returns them).

    ``ret`` non-zero ends the session with that error code. An item with status 2 ends it normally.
    May be called from any thread, also after ``wrapperRead`` returned.
    """
    sink = _sink
    if sink is None:
        raise RuntimeError(
            "ase_serving.wrapper.callback() was called outside a loader: "
            "run the wrapper with `asectl loader run` or `asectl loader test`"
        )
    sink(handle, list(items), int(ret))
