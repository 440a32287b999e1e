"""Client input that once broke the gateway (issue 16, items 1 and 5): an integer out of range or
JSON nested past what can be written back. Each is a 4xx naming the field, over HTTP and as a
session's error frame with a close code, and a licence picked for it always comes back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.gateway.support import GatewayProcess, Serving, api_yaml, first_frame, once_body, results
from tests.support import WRAPPERS

#: Licences of the session loader: fewer than the bad sessions sent, so a leak would show.
LIC = 2


SERVING = Serving(
    schemas=(api_yaml("session_sync", "session", "", "echo"), api_yaml("echo")),
    loaders=((WRAPPERS / "session_sync", "--lic", str(LIC)), (WRAPPERS / "echo", "--service", "echo")),
    services=("session_sync", "echo"),
)


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def _session(gw: GatewayProcess, first: str) -> tuple[list[dict[str, Any]], int | None]:
    async def go() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(f"{gw.ws_url}/v1/private/session_sync") as ws:
            await ws.send(first)
            return await results(ws), ws.close_code

    return asyncio.run(go())


def _session_code(gw: GatewayProcess, first: str) -> int:
    got, _close = _session(gw, first)
    return int(got[-1]["header"]["code"]) if got else -1


def _with(first: str, **changes: Any) -> str:
    body = orjson.loads(first)
    for path, value in changes.items():
        node = body
        *parents, last = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return json.dumps(body)  # the stdlib's: no depth limit of 254, ints of any size


BAD_FRAMES = {
    "seq over int32": ("payload__text__seq", 2**31, "seq"),
    "seq over int64": ("payload__text__seq", 2**64, "seq"),
    "header extra nested 300 deep": ("header__extra", _nested(300), "header.extra"),
    "payload attribute nested 300 deep": ("payload__text__rate", _nested(300), "payload.text"),
    "parameter nested 300 deep": ("parameter__session_sync__p", _nested(300), "parameter.session_sync"),
}


@pytest.mark.parametrize("case", BAD_FRAMES, ids=list(BAD_FRAMES))
def test_a_bad_first_frame_is_an_error_frame_and_its_licence_comes_back(
    gw: GatewayProcess, case: str
) -> None:
    path, value, field = BAD_FRAMES[case]
    bad = _with(first_frame("session_sync", 0, "hi"), **{path: value})
    # More bad sessions than licences: a licence lost on each would leave none.
    for _ in range(LIC + 2):
        got, close = _session(gw, bad)
        assert got, "no error frame before the close"
        header = got[-1]["header"]
        assert header["code"] in (10160, 10163) and header["status"] == 2, header
        if header["code"] == 10163:
            assert field in header["message"], header
        assert close == 1008  # the request's fault, a clean close (not 1006)
    assert _session_code(gw, first_frame("session_sync", 2, "fine")) == 0


BAD_BODIES = {
    "seq over int32": ("payload__text__seq", 2**31, "seq"),
    "header extra nested 300 deep": ("header__extra", _nested(300), "header.extra"),
    "payload attribute nested 300 deep": ("payload__text__rate", _nested(300), "payload.text"),
    "parameter nested 300 deep": ("parameter__echo__upper", _nested(300), "parameter.echo"),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_a_bad_once_body_is_a_4xx_naming_the_field(gw: GatewayProcess, case: str) -> None:
    path, value, field = BAD_BODIES[case]
    body = _with(json.dumps(once_body()), **{path: value})
    resp = gw.post("/v1/private/echo", body)
    assert resp.status_code == 400, resp.text
    header = resp.json()["header"]
    assert header["code"] == 10163 and field in header["message"] and header["sid"], header
    assert gw.post("/v1/private/echo", once_body()).json()["header"]["code"] == 0
