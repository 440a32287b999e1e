"""Data items as wrappers see them, and the async callback outside a loader."""

from __future__ import annotations

import pytest

from ase_serving.protocol.items import DataItem
from ase_serving.wrapper import callback
from ase_serving.wrapper.items import ItemError, from_wrapper, plain_item, to_wrapper
from ase_serving.wrapper.push import set_sink


def test_round_trip_and_len() -> None:
    item = DataItem(key="a", data=b"abc", status=1, type=1, desc={"encoding": "raw"}, seq=4)
    raw = to_wrapper(item)
    assert raw["len"] == 3 and raw["data"] == b"abc" and raw["desc"] == {"encoding": "raw"}
    assert from_wrapper(raw, "x") == item


def test_str_data_is_utf8_and_len_is_informative() -> None:
    item = from_wrapper({"key": "k", "data": "é", "len": 99, "status": "2", "desc": {"n": 1}}, "x")
    assert item.data == "é".encode() and item.status == 2 and item.desc == {"n": "1"}


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        (5, "a result item must be a dict, got int"),
        ({"key": 1}, "'key' must be a string"),
        ({"key": "k", "data": 1.5}, "'data' must be bytes or str, got float"),
        ({"key": "k", "status": 5}, "'status' must be 0, 1, 2 or 3, got 5"),
        ({"key": "k", "type": "x"}, "'type' must be an integer"),
        ({"key": "k", "desc": ["encoding"]}, "'desc' must be a dict"),
    ],
)
def test_bad_items(obj: object, fragment: str) -> None:
    with pytest.raises(ItemError, match=r"^item 0") as info:
        from_wrapper(obj, "item 0")
    assert fragment in str(info.value)


def test_callback_outside_a_loader_says_how_to_run() -> None:
    set_sink(None)  # another test in this process may have hosted a wrapper
    with pytest.raises(RuntimeError, match="asectl loader test"):
        callback("h", [])


@pytest.mark.parametrize(
    "obj",
    [
        {"key": "a", "data": b"x", "status": 2, "type": 1, "desc": {"encoding": "raw"}, "seq": 4},
        {"key": "a", "data": "héllo"},
        {"data": b""},
        {"key": "a", "data": b"x", "desc": {}},
    ],
)
def test_plain_items_convert_as_from_wrapper_does(obj: dict[str, object]) -> None:
    assert plain_item(obj, 1) == from_wrapper(obj, "here", 1)


@pytest.mark.parametrize(
    "obj",
    [
        {"key": "a", "data": bytearray(b"x")},  # converted, or explained, by from_wrapper
        {"key": "a", "data": b"x", "status": True},
        {"key": "a", "data": b"x", "status": 7},
        {"key": "a", "data": b"x", "type": "0"},
        {"key": "a", "data": b"x", "desc": {"rate": 16000}},
        {"key": 1, "data": b"x"},
        [("key", "a")],
    ],
)
def test_anything_else_is_left_to_from_wrapper(obj: object) -> None:
    assert plain_item(obj, 1) is None
