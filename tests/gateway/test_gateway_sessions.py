"""Sessions over WebSocket through a real gateway: frames in, results out, and every way one ends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from examples.support import example_dir
from tests.gateway.support import (
    GatewayProcess,
    Serving,
    api_yaml,
    first_frame,
    frame,
    results,
    unb64,
)
from tests.support import WRAPPERS, wait_for

# stream_echo pushes the schema of its own ai_api.yml; the test wrappers get theirs from here.
SERVING = Serving(
    schemas=(
        api_yaml("session_sync", "session", "read_timeout: 1\nmax_frame: 2000", "echo"),
        api_yaml("session-async", "session", "session_timeout: 3", "up"),
    ),
    loaders=(
        (example_dir("stream_echo"), "--lic", "8"),
        (WRAPPERS / "session_sync", "--lic", "4"),
        (WRAPPERS / "session_async", "--lic", "4"),
    ),
    services=("stream_echo", "session_sync", "session-async"),
)


def test_stream_echo_frames_in_results_out_then_a_normal_close(gw: GatewayProcess) -> None:
    async def go() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(f"{gw.ws_url}/v1/private/stream_echo") as ws:
            await ws.send(first_frame("stream_echo", 0, "one "))
            await ws.send(frame(1, "two "))
            await ws.send(frame(2, "three"))
            got = await results(ws)
            return got, ws.close_code

    got, close = asyncio.run(go())
    assert close == 1000
    assert [r["header"]["code"] for r in got] == [0, 0, 0]
    assert [r["header"]["status"] for r in got] == [0, 1, 2]
    assert b"".join(unb64(r["payload"]["echo"]["text"]) for r in got) == b"one two three"
    sids = {r["header"]["sid"] for r in got}
    assert len(sids) == 1 and next(iter(sids)).startswith("ase")


def test_a_frame_at_a_time_gets_each_result_before_the_next(gw: GatewayProcess) -> None:
    async def go() -> list[bytes]:
        out = []
        async with connect(f"{gw.ws_url}/v1/private/stream_echo") as ws:
            await ws.send(first_frame("stream_echo", 0, "a"))
            out.append(unb64(orjson.loads(await ws.recv())["payload"]["echo"]["text"]))
            for i in range(5):
                await ws.send(frame(1, f"f{i}"))
                out.append(unb64(orjson.loads(await ws.recv())["payload"]["echo"]["text"]))
            await ws.send(frame(2, "end"))
            out.append(unb64(orjson.loads(await ws.recv())["payload"]["echo"]["text"]))
        return out

    assert asyncio.run(go()) == [b"a", b"f0", b"f1", b"f2", b"f3", b"f4", b"end"]


def error_of(got: list[dict[str, Any]]) -> dict[str, Any]:
    assert got, "no frame before the close"
    last: dict[str, Any] = got[-1]["header"]
    assert last["status"] == 2 and last["code"] != 0, got
    return last


def test_no_frame_within_read_timeout_is_10114(gw: GatewayProcess) -> None:
    async def go() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(f"{gw.ws_url}/v1/private/session_sync") as ws:
            await ws.send(first_frame("session_sync", 0, "hi"))
            return await results(ws), ws.close_code

    got, close = asyncio.run(go())
    err = error_of(got)
    assert err["code"] == 10114 and "read_timeout" in err["message"]
    assert close == 1011


def test_a_session_longer_than_session_timeout_is_10114(gw: GatewayProcess, tmp_path: Path) -> None:
    # session-async holds its final result until the gate file exists: it never does here.
    async def go() -> list[dict[str, Any]]:
        async with connect(f"{gw.ws_url}/v1/private/session-async") as ws:
            await ws.send(first_frame("session-async", 0, "a", gate=str(tmp_path / "never")))
            await ws.send(frame(2, "b"))
            return await results(ws)

    err = error_of(asyncio.run(go()))
    assert err["code"] == 10114 and "session_timeout" in err["message"]


def test_a_frame_after_the_last_is_10202(gw: GatewayProcess, tmp_path: Path) -> None:
    async def go() -> list[dict[str, Any]]:
        async with connect(f"{gw.ws_url}/v1/private/session-async") as ws:
            await ws.send(first_frame("session-async", 0, "a", gate=str(tmp_path / "gate")))
            await ws.send(frame(2, "b"))
            await ws.send(frame(1, "late"))
            return await results(ws)

    err = error_of(asyncio.run(go()))
    assert err["code"] == 10202, err


@pytest.mark.parametrize(
    ("first", "later", "code", "words"),
    [
        ("{oops", None, 10160, "not valid JSON"),
        ('{"header": {"status": 0}}', None, 10313, "header.app_id"),
        ('{"header": {"app_id": "a", "status": 1}}', None, 10163, "first frame"),
        (None, '{"header": {"status": 0}}', 10163, "frames after the first"),
        (None, '{"header": {"status": 1}, "payload": {"text": {"text": "!!"}}}', 10161, "base64"),
        (None, '{"header": {"status": 1}, "payload": {"audio": {"audio": "AA=="}}}', 10163, "audio"),
    ],
)
def test_bad_frames_end_the_session_with_an_error_frame(
    gw: GatewayProcess, first: str | None, later: str | None, code: int, words: str
) -> None:
    async def go() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(f"{gw.ws_url}/v1/private/stream_echo") as ws:
            await ws.send(first or first_frame("stream_echo", 0, "ok"))
            if later is not None:
                await ws.send(later)
            return await results(ws), ws.close_code

    got, close = asyncio.run(go())
    err = error_of(got)
    assert err["code"] == code and words in err["message"], err
    assert close == 1008


def test_a_wrapper_error_ends_the_session_with_its_code(gw: GatewayProcess) -> None:
    async def go() -> list[dict[str, Any]]:
        async with connect(f"{gw.ws_url}/v1/private/session_sync") as ws:
            await ws.send(first_frame("session_sync", 0, "a", fail_write="1"))
            return await results(ws)

    err = error_of(asyncio.run(go()))
    assert err["code"] == 10077 and "write refused" in err["message"]


def test_a_client_that_leaves_mid_session_frees_the_licence_at_once(
    gw: GatewayProcess, tmp_path: Path
) -> None:
    async def go() -> None:
        ws = await connect(f"{gw.ws_url}/v1/private/session_sync")
        await ws.send(first_frame("session_sync", 0, "a", marker=str(tmp_path)))
        assert orjson.loads(await ws.recv())["header"]["code"] == 0  # the loader's session is open
        assert gw.metric("ase_gateway_sessions_open", service="session_sync") == 1
        ws.transport.abort()  # gone without a close frame

    asyncio.run(go())
    # wrapperDestroy writes its marker: within a second of the client leaving.
    wait_for(lambda: list(tmp_path.glob("destroyed-*")), 1.0, "wrapperDestroy after the client left")
    wait_for(
        lambda: gw.metric("ase_gateway_sessions_open", service="session_sync") == 0, 1.0, "session closed"
    )


def test_websocket_on_an_unknown_route_is_refused_in_the_handshake(
    gw: GatewayProcess,
) -> None:
    async def status(path: str) -> tuple[int, bytes]:
        try:
            async with connect(f"{gw.ws_url}{path}"):
                pass
        except InvalidStatus as exc:
            return exc.response.status_code, exc.response.body or b""
        raise AssertionError(f"{path}: the handshake succeeded")

    code, body = asyncio.run(status("/v1/private/none"))
    assert code == 404 and orjson.loads(body)["header"]["code"] == 10404


def test_session_metrics(gw: GatewayProcess) -> None:
    before = gw.metric("ase_gateway_requests_total", service="stream_echo", mode="session", code="0")

    async def go() -> None:
        async with connect(f"{gw.ws_url}/v1/private/stream_echo") as ws:
            await ws.send(first_frame("stream_echo", 2, "x"))
            await results(ws)

    asyncio.run(go())
    wait_for(
        lambda: (
            gw.metric("ase_gateway_requests_total", service="stream_echo", mode="session", code="0")
            == before + 1
        ),
        2,
        "the session counted",
    )
    assert gw.metric("ase_gateway_session_frames_total", service="stream_echo", direction="out") >= 1


def test_a_frame_over_the_service_limit_is_10413(gw: GatewayProcess) -> None:
    async def go() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(f"{gw.ws_url}/v1/private/session_sync") as ws:
            await ws.send(first_frame("session_sync", 0, "small"))
            await ws.send(frame(1, "x" * 3000))
            return await results(ws), ws.close_code

    got, close = asyncio.run(go())
    err = error_of(got)
    assert err["code"] == 10413 and "2000" in err["message"], err
    assert close == 1008
