"""Data items as the seed's wrappers see them: dicts with key/data/len/status/type/desc."""

from __future__ import annotations

from typing import Any

from ase_serving.protocol.items import DataItem, Status


class ItemError(ValueError):
    """A wrapper produced a result item that is not a valid data item."""


def to_wrapper(item: DataItem) -> dict[str, Any]:
    """A data item -> the dict a wrapper reads (``data`` is bytes)."""
    return {
        "key": item.key,
        "data": item.data,
        "len": len(item.data),
        "status": item.status,
        "type": item.type,
        "desc": dict(item.desc),
        "seq": item.seq,
    }


def _int_field(obj: dict[str, Any], name: str, default: int, where: str) -> int:
    value = obj.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ItemError(f"{where}: '{name}' must be an integer, got {value!r}") from None
    return value


_STATUSES = frozenset((0, 1, 2, 3))


def plain_item(obj: Any, default_status: int) -> DataItem | None:
    """The common case of :func:`from_wrapper` at a few dict lookups: a dict whose fields all
    have their exact types (bytes or str data, str key, int status/type/seq, no desc or one of
    str);
    None for anything else, which :func:`from_wrapper` converts or explains."""
    if type(obj) is not dict:
        return None
    get = obj.get
    data, key, status = get("data", b""), get("key", ""), get("status", default_status)
    kind, seq, desc = get("type", 0), get("seq", 0), get("desc")
    if type(data) is str:
        data = data.encode("utf-8")
    if not (
        type(data) is bytes
        and type(key) is str
        and type(status) is int
        and status in _STATUSES
        and type(kind) is int
        and type(seq) is int
    ):
        return None
    if desc:
        if type(desc) is not dict or not all(type(k) is str and type(v) is str for k, v in desc.items()):
            return None
        desc = dict(desc)
    else:
        desc = {}
    return DataItem(key=key, data=data, status=status, type=kind, desc=desc, seq=seq)


def from_wrapper(obj: Any, where: str, default_status: int = Status.ONCE) -> DataItem:
    """A result dict from a wrapper -> a data item; ``str`` data is UTF-8 encoded.

    ``len`` is informative only: the byte length of ``data`` is what travels.
    """
    if isinstance(obj, DataItem):
        return obj
    if not isinstance(obj, dict):
        raise ItemError(f"{where}: a result item must be a dict, got {type(obj).__name__}")
    key = obj.get("key", "")
    if not isinstance(key, str):
        raise ItemError(f"{where}: 'key' must be a string, got {key!r}")
    data = obj.get("data", b"")
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif data is None:
        data = b""
    elif not isinstance(data, bytes):
        raise ItemError(f"{where} ('{key}'): 'data' must be bytes or str, got {type(data).__name__}")
    desc_raw = obj.get("desc") or {}
    if not isinstance(desc_raw, dict):
        raise ItemError(f"{where} ('{key}'): 'desc' must be a dict, got {type(desc_raw).__name__}")
    status = _int_field(obj, "status", default_status, where)
    if status not in (0, 1, 2, 3):
        raise ItemError(f"{where} ('{key}'): 'status' must be 0, 1, 2 or 3, got {status}")
    return DataItem(
        key=key,
        data=data,
        status=status,
        type=_int_field(obj, "type", 0, where),
        desc={str(k): str(v) for k, v in desc_raw.items()},
        seq=_int_field(obj, "seq", 0, where),
    )
