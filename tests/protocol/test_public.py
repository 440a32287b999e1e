"""The public JSON body <-> the request model (docs/protocol.md), without a schema."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from ase_serving import errors
from ase_serving.errors import AseError, BadRequest
from ase_serving.protocol.items import DataItem, DataType, Result, Status
from ase_serving.protocol.public import (
    frame_from_public,
    param_text,
    parse_body,
    request_from_public,
    result_to_public,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BODY: dict[str, Any] = {
    "header": {"app_id": "app1", "uid": "u-42", "status": 3},
    "parameter": {
        "image-detect": {
            "vcn": "x",
            "speed": 100,
            "ratio": 0.5,
            "fast": True,
            "tags": ["a", "b"],
            "boxes": {"encoding": "utf8", "compress": "raw", "format": "json"},
        }
    },
    "payload": {
        "image1": {"encoding": "jpg", "status": 3, "seq": 7, "width": 640, "image": b64(b"\xff\xd8jpg")}
    },
}


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"'])
def test_bad_json_is_10160(raw: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        parse_body(raw)
    assert info.value.code == errors.BAD_JSON == 10160


def test_parse_body_accepts_str() -> None:
    assert parse_body('{"header": {}}') == {"header": {}}


def test_request_fields() -> None:
    req = request_from_public(orjson.loads(orjson.dumps(BODY)), sid="s1")
    assert req.service_id == "image-detect" and req.sid == "s1" and req.status == Status.ONCE
    # The sid among the headers, as the gateway sends it.
    assert req.headers == {"app_id": "app1", "uid": "u-42", "status": "3", "sid": "s1"}
    # Parameters reach the wrapper as strings; objects and arrays as JSON.
    assert req.params == {"vcn": "x", "speed": "100", "ratio": "0.5", "fast": "true", "tags": '["a","b"]'}
    (spec,) = req.expect
    assert spec.key == "boxes" and spec.desc == {"encoding": "utf8", "compress": "raw", "format": "json"}
    (item,) = req.items
    assert item.key == "image1" and item.data == b"\xff\xd8jpg" and item.type == DataType.IMAGE
    assert item.status == 3 and item.seq == 7
    assert item.desc == {"encoding": "jpg", "width": "640"}


def test_bad_base64_is_10161() -> None:
    body = {"payload": {"a": {"audio": "not base64!"}}}
    with pytest.raises(BadRequest) as info:
        request_from_public(body)
    assert info.value.code == errors.BAD_BASE64
    assert "payload.a.audio" in info.value.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"payload": {"a": {"encoding": "raw"}}}, "exactly one data field"),
        ({"payload": {"a": {"text": "", "audio": ""}}}, "found text, audio"),
        ({"payload": {"a": {"text": 5}}}, "'payload.a.text' must be a base64 string"),
        ({"payload": {"a": "x"}}, "'payload.a' must be a JSON object"),
        ({"payload": {"a": {"text": "", "status": 9}}}, "'payload.a.status' must be 0, 1, 2 or 3"),
        ({"header": {"status": 5}}, "'header.status' must be 0, 1, 2 or 3"),
        ({"header": []}, "'header' must be a JSON object"),
        ({"parameter": {"a": {}, "b": {}}}, "several services (a, b)"),
        ({"parameter": {"a": 1}}, "'parameter.a' must be a JSON object"),
    ],
)
def test_bad_bodies_are_10163_with_the_field(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        request_from_public(body)
    assert info.value.code == errors.SCHEMA_MISMATCH
    assert fragment in info.value.message


def test_named_service_picks_its_parameters() -> None:
    req = request_from_public({"parameter": {"a": {"x": 1}, "b": {"y": 2}}}, service_id="b")
    assert req.params == {"y": "2"}


def test_empty_body_is_a_valid_request() -> None:
    req = request_from_public({})
    assert req.items == [] and req.params == {} and req.status == Status.ONCE


def test_param_text() -> None:
    assert [param_text(v) for v in ("s", False, 3, 1.5, {"a": 1}, None)] == [
        "s",
        "false",
        "3",
        "1.5",
        '{"a":1}',
        "null",
    ]


def test_frames_default_to_continue() -> None:
    status, items = frame_from_public({"payload": {"a": {"audio": b64(b"pcm")}}})
    assert status == Status.CONTINUE
    assert items == [DataItem(key="a", data=b"pcm", status=1, type=DataType.AUDIO)]
    status, items = frame_from_public({"header": {"status": 2}})
    assert (status, items) == (2, [])


def test_result_to_public_success() -> None:
    result = Result(
        items=[
            DataItem(key="boxes", data=b"[1]", desc={"encoding": "utf8", "format": "json"}),
            DataItem(key="odd", data=b"\x00", type=99, status=2),
        ],
        sid="s9",
    )
    body = result_to_public(result)
    assert body == {
        "header": {"code": 0, "message": "success", "sid": "s9"},
        "payload": {
            "boxes": {"encoding": "utf8", "format": "json", "status": 3, "text": b64(b"[1]")},
            "odd": {"status": 2, "other": b64(b"\x00")},  # an unknown type travels as `other`
        },
    }
    assert result_to_public(Result(status=1), session=True)["header"]["status"] == 1


def test_result_to_public_error_has_no_payload() -> None:
    body = result_to_public(Result(code=10042, message="refused", sid="s"), session=True)
    assert body == {"header": {"code": 10042, "message": "refused", "sid": "s", "status": 3}}


def test_error_tree() -> None:
    assert isinstance(errors.error_for(errors.TIMEOUT, "slow"), errors.Timeout)
    assert isinstance(errors.error_for(errors.BAD_BASE64, "b"), BadRequest)
    err = errors.error_for(10042, "x")
    assert isinstance(err, errors.WrapperFailure) and err.code == 10042
    assert str(AseError("m", 5)) == "5: m"
    assert errors.http_status(errors.NO_LICENCE) == 429
    assert errors.http_status(10042) == 500
