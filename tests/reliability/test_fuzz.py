"""Fuzz of the public protocol (issue 16, "a suite that keeps it so"): once request bodies and
session frames made by hypothesis, mixing the protocol's structure with wrong types, numbers out
of range, deep nesting, unicode, missing and unknown fields, bad base64, wrong statuses and bytes
that are not JSON, sent to a real gateway in front of the real examples (echo, stream_echo).

The promise kept: no 5xx from client input, and every answer in the protocol (a JSON
``{"header": {"code", "message", "sid"}}``, a session's error frame and a close code other than
1011), nothing hangs, and afterwards a good request and a good session still succeed (no licence
leaked). ``ASE_FUZZ_EXAMPLES`` sets how many examples each test runs (default 120; CI runs the
default, derandomized, so a run is the same every time).
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from examples.support import example_dir
from tests.gateway.support import Cluster, GatewayProcess, once_body, results
from tests.support import wait_for

EXAMPLES = int(os.environ.get("ASE_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ECHO, STREAM = "/v1/private/echo", "/v1/private/stream_echo"
#: Close codes a session refused for its input may end with (never 1011, the server's failure).
CLIENT_CLOSES = {1000, 1003, 1007, 1008, 1009, 1013}

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def gw(cluster: Cluster) -> Iterator[GatewayProcess]:
    cluster.loader(example_dir("echo"))
    cluster.loader(example_dir("stream_echo"), "--lic", "2")
    with cluster.gateway() as gateway:
        gateway.wait_route(ECHO)
        gateway.wait_route(STREAM)
        wait_for(lambda: _good_once(gateway), 20, "the echo loader")
        yield gateway


# -- strategies ---------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
#: Any JSON value, nested a little or (below) very deep.
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def _deep(draw: st.DrawFn) -> Any:
    value: Any = draw(_scalars)
    for _ in range(draw(st.integers(min_value=200, max_value=1200))):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


_odd = st.one_of(_json, _deep())
_b64 = st.one_of(
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
    st.text(max_size=16),  # mostly not base64
    _odd,
)
_status = st.one_of(st.sampled_from([0, 1, 2, 3]), _odd)


@st.composite
def _item(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(_odd)
    item: dict[str, Any] = {}
    field = draw(st.sampled_from(["text", "audio", "image", "video", "other", "nope"]))
    item[field] = draw(_b64)
    for key in draw(st.lists(st.sampled_from(["encoding", "status", "seq", "format", "extra"]), max_size=3)):
        item[key] = draw(
            _status if key == "status" else st.integers(-(2**40), 2**40) if key == "seq" else _odd
        )
    return item


@st.composite
def _body(draw: st.DrawFn, service: str, first: bool = True) -> Any:
    """A once body or a session frame: the protocol's shape with any part of it made wrong."""
    if draw(st.integers(0, 19)) == 0:
        return draw(_odd)  # not even an object
    body: dict[str, Any] = {}
    if draw(st.integers(0, 5)):
        header: Any = {}
        if first and draw(st.integers(0, 5)):
            header["app_id"] = draw(st.one_of(st.just("test"), _odd))
        if draw(st.booleans()):
            header["status"] = draw(_status)
        for key in draw(st.lists(st.text(max_size=6), max_size=2)):
            header[key] = draw(_odd)
        body["header"] = header if draw(st.integers(0, 9)) else draw(_odd)
    if first and draw(st.booleans()):
        body["parameter"] = draw(
            st.one_of(st.fixed_dictionaries({service: st.dictionaries(st.text(max_size=8), _odd)}), _odd)
        )
    if draw(st.integers(0, 5)):
        names = draw(st.lists(st.sampled_from(["text", "audio", "x", ""]), max_size=3, unique=True))
        body["payload"] = {name: draw(_item()) for name in names} if draw(st.integers(0, 9)) else draw(_odd)
    for key in draw(st.lists(st.text(max_size=6), max_size=2)):
        body[key] = draw(_odd)
    return body


def _wire(draw: st.DrawFn, body: Any) -> bytes:
    """The bytes sent: the body's JSON, now and then cut short or not UTF-8."""
    try:
        raw = orjson.dumps(body)
    except (orjson.JSONEncodeError, TypeError):  # nested past what orjson writes: send it anyway
        raw = (b"[" * 300) + b"1" + (b"]" * 300)
    choice = draw(st.integers(0, 19))
    if choice == 0:
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if choice == 1:
        return b"\xff\xfe" + raw
    return raw


@st.composite
def _once_bytes(draw: st.DrawFn) -> bytes:
    return _wire(draw, draw(_body("echo")))


@st.composite
def _frames(draw: st.DrawFn) -> list[bytes | str]:
    """A session: a first frame, maybe later frames, some sent as binary messages."""
    frames = [_wire(draw, draw(_body("stream_echo")))]
    for _ in range(draw(st.integers(0, 3))):
        frames.append(_wire(draw, draw(_body("stream_echo", first=False))))
    return [f if draw(st.integers(0, 4)) == 0 else f.decode("utf-8", "replace") for f in frames]


# -- checks -------------------------------------------------------------------------------------


def _protocol_header(doc: Any) -> dict[str, Any]:
    assert isinstance(doc, dict) and isinstance(doc.get("header"), dict), doc
    header: dict[str, Any] = doc["header"]
    assert isinstance(header.get("code"), int), doc
    return header


def _good_once(gw: GatewayProcess) -> bool:
    resp = gw.post(ECHO, once_body("still fine", app_id="test"))
    return resp.status_code == 200 and resp.json()["header"]["code"] == 0


async def _session(gw: GatewayProcess, frames: list[bytes | str]) -> tuple[list[Any], int | None]:
    async with connect(f"{gw.ws_url}{STREAM}", open_timeout=30, close_timeout=5) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            # A well-behaved end, so that a session the fuzz left open is not held until its
            # read timeout (the gateway refuses it if the session is over already).
            await ws.send(orjson.dumps({"header": {"status": 2}}).decode())
        except ConnectionClosed:
            pass  # the gateway ended it after an earlier frame: its answer follows
        got = await asyncio.wait_for(results(ws), 30)  # nothing hangs
        return got, ws.close_code


def _good_session(gw: GatewayProcess) -> bool:
    text = base64.b64encode(b"ok").decode()
    payload = {"text": {"encoding": "utf8", "text": text, "status": 2}}
    first = {"header": {"app_id": "test", "status": 2}, "payload": payload}
    got, close = asyncio.run(_session(gw, [orjson.dumps(first).decode()]))
    return close == 1000 and bool(got) and all(_protocol_header(m)["code"] == 0 for m in got)


# -- the fuzz -----------------------------------------------------------------------------------


def test_once_bodies_never_get_a_5xx(gw: GatewayProcess) -> None:
    seen: dict[int, int] = {}
    with httpx.Client(base_url=gw.url, timeout=30.0) as client:

        @FUZZ
        @given(raw=_once_bytes())
        def one(raw: bytes) -> None:
            resp = client.post(ECHO, content=raw, headers={"content-type": "application/json"})
            assert resp.status_code < 500, (raw[:300], resp.status_code, resp.text[:300])
            header = _protocol_header(resp.json())
            assert (header["code"] == 0) == (resp.status_code == 200), resp.text[:300]
            seen[resp.status_code] = seen.get(resp.status_code, 0) + 1

        one()
    assert sum(seen.values()) >= EXAMPLES and set(seen) - {200}, seen  # mostly refusals
    assert _good_once(gw)


def test_session_frames_never_end_with_a_server_error(gw: GatewayProcess) -> None:
    closes: dict[int | None, int] = {}

    @FUZZ
    @given(frames=_frames())
    def one(frames: list[bytes | str]) -> None:
        got, close = asyncio.run(_session(gw, frames))
        assert close in CLIENT_CLOSES, (frames, close, got)
        for message in got:
            header = _protocol_header(message)
            assert header["code"] < 10500 or header["code"] >= 20000 or header["code"] == 10110, got
        closes[close] = closes.get(close, 0) + 1

    one()
    assert sum(closes.values()) >= EXAMPLES, closes
    # Every licence came back: a good session and a good once request still work.
    wait_for(lambda: _good_session(gw), 30, "a good session after the fuzz")
    assert _good_once(gw)
