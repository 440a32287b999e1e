"""ASE serving: engine plugins (``wrapper.py``) served behind a validated, load-balanced API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ase_serving.errors import AseError
    from ase_serving.protocol.items import DataItem, DataType, Request, Result, Status
    from ase_serving.wrapper import callback

__all__ = ["AseError", "DataItem", "DataType", "Request", "Result", "Status", "callback"]
__version__ = "0.1.0"

# Imported when first asked for: every process imports this package, and the config centre, the
# LB service and the CLI need none of these (msgspec, the plugin loader).
_LAZY = {
    "AseError": "ase_serving.errors",
    "DataItem": "ase_serving.protocol.items",
    "DataType": "ase_serving.protocol.items",
    "Request": "ase_serving.protocol.items",
    "Result": "ase_serving.protocol.items",
    "Status": "ase_serving.protocol.items",
    "callback": "ase_serving.wrapper",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ase_serving' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
