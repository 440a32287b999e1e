"""The internal request model: what the gateway's atom stage hands to a loader, transport-free.

The types are :mod:`msgspec` structs encoded as MessagePack arrays: the lean wire
(:mod:`ase_serving.wire`) sends them between the gateway, the loader and its workers as they
are, with no conversion step. Field order is the wire order: add fields only at the end, with a
default.
"""

from __future__ import annotations

import enum

import msgspec


class Status(enum.IntEnum):
    """Frame / data item status (docs/protocol.md)."""

    BEGIN = 0
    CONTINUE = 1
    END = 2
    ONCE = 3


class DataType(enum.IntEnum):
    """Data item type; the public protocol names the data field after it."""

    TEXT = 0
    AUDIO = 1
    IMAGE = 2
    VIDEO = 3
    OTHER = 4

    @property
    def field(self) -> str:
        """The name of the base64 data field in the public JSON (``text``, ``audio``, ...)."""
        return self.name.lower()

    @classmethod
    def from_field(cls, name: str) -> DataType | None:
        try:
            return cls[name.upper()]
        except KeyError:
            return None


class DataItem(msgspec.Struct, array_like=True):
    """One data item: an input frame of one stream, or one result."""

    key: str
    data: bytes = b""
    status: int = Status.ONCE
    type: int = DataType.TEXT
    desc: dict[str, str] = {}
    seq: int = 0


class OutputSpec(msgspec.Struct, array_like=True):
    """An output the caller asks for, with the wanted encoding/compress/format."""

    key: str
    type: int = DataType.TEXT
    desc: dict[str, str] = {}


class Request(msgspec.Struct, array_like=True):
    """A once request, or the first frame of a session (then ``items`` is that frame's data)."""

    service_id: str = ""
    version: str = ""
    sid: str = ""
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    expect: list[OutputSpec] = []
    psr_ids: list[str] = []
    items: list[DataItem] = []
    status: int = Status.ONCE
    timeout_s: float = 0.0


class Frame(msgspec.Struct, array_like=True):
    """A session frame after the first: its status (1 continue, 2 last) and data items."""

    status: int = Status.CONTINUE
    items: list[DataItem] = []


class Result(msgspec.Struct, array_like=True):
    """A once result, or one result frame of a session."""

    code: int = 0
    message: str = "success"
    items: list[DataItem] = []
    status: int = Status.ONCE
    sid: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0
