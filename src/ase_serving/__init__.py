"""ASE serving: engine plugins (``wrapper.py``) served behind a validated, load-balanced API."""

from ase_serving.errors import AseError
from ase_serving.protocol.items import DataItem, DataType, Request, Result, Status
from ase_serving.wrapper import callback

__all__ = ["AseError", "DataItem", "DataType", "Request", "Result", "Status", "callback"]
__version__ = "0.1.0"
