"""The internal request model: what the gateway's atom stage hands to a loader, transport-free."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Status(enum.IntEnum):
    """Frame / data item status (PROTOCOL.md)."""

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


@dataclass(slots=True)
class DataItem:
    """One data item: an input frame of one stream, or one result."""

    key: str
    data: bytes = b""
    status: int = Status.ONCE
    type: int = DataType.TEXT
    desc: dict[str, str] = field(default_factory=dict)
    seq: int = 0


@dataclass(slots=True)
class OutputSpec:
    """An output the caller asks for, with the wanted encoding/compress/format."""

    key: str
    type: int = DataType.TEXT
    desc: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Request:
    """A once request, or the first frame of a session (then ``items`` is that frame's data)."""

    service_id: str = ""
    version: str = ""
    sid: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    expect: list[OutputSpec] = field(default_factory=list)
    psr_ids: list[str] = field(default_factory=list)
    items: list[DataItem] = field(default_factory=list)
    status: int = Status.ONCE
    timeout_s: float = 0.0


@dataclass(slots=True)
class Result:
    """A once result, or one result frame of a session."""

    code: int = 0
    message: str = "success"
    items: list[DataItem] = field(default_factory=list)
    status: int = Status.ONCE
    sid: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0
