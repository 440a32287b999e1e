"""The transport-neutral request and result model, and the public JSON protocol."""

from ase_serving.protocol.items import (
    DataItem,
    DataType,
    OutputSpec,
    Request,
    Result,
    Status,
)

__all__ = ["DataItem", "DataType", "OutputSpec", "Request", "Result", "Status"]
