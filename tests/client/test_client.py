"""The client against a real gateway (echo once, stream_echo sessions), sync and async alike."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ase_serving.client import AseClientError, Client
from tests.client.api import Api
from tests.gateway.support import GatewayProcess

KEY, SECRET = "key-never-shown-5b1e", "secret-never-shown-90af"


@pytest.fixture(params=["sync-hmac", "async-hmac", "sync-key", "async-key"])
def api(request: pytest.FixtureRequest, gw: GatewayProcess, consumer: dict[str, str]) -> Api:
    """Each client (sync, async) in each scheme: HMAC signatures, or the API key alone."""
    kind, scheme = request.param.split("-")
    secret = consumer["api_secret"] if scheme == "hmac" else None
    return Api(kind, gw.url, consumer["app_id"], api_key=consumer["api_key"], api_secret=secret)


def test_once_echo(api: Api) -> None:
    result = api.once("binecho", {"upper": 1, "speed": 50}, {"text": "hello ase"}, header={"uid": "u-42"})
    assert (result.code, result.message, result.status) == (0, "success", 3)
    assert result.sid.startswith("ase")
    assert list(result.outputs) == ["text"]
    assert result["text"].text == "HELLO ASE"
    assert result["text"].type == "text" and result["text"].status == 3


def test_once_by_route(api: Api) -> None:
    assert api.once("/v1/private/binecho", None, {"text": "by route"})["text"].text == "by route"


def test_binary_bytes_go_out_and_come_back_base64(api: Api) -> None:
    blob = bytes(range(256)) * 3
    result = api.once(
        "binecho",
        payload={
            "text": {"text": blob, "encoding": "raw"},
            "audio": {"audio": blob[::-1], "encoding": "raw"},
        },
    )
    assert result["text"].data == blob
    assert result["audio"].data == blob[::-1] and result["audio"].type == "audio"
    # The wire form is base64 of exactly those bytes (checked by an encoder of the test's own).
    assert result.raw["payload"]["audio"]["audio"] == base64.b64encode(blob[::-1]).decode()
    with pytest.raises(ValueError, match="not UTF-8 text"):
        _ = result["audio"].text


def test_a_schema_violation_is_an_exception_with_the_code_and_message(api: Api) -> None:
    with pytest.raises(AseClientError) as info:
        api.once("binecho", {"speed": 500}, {"text": "x"})
    err = info.value
    assert (err.code, err.http_status) == (10163, 400)
    assert "speed" in err.message and "maximum of 100" in err.message
    assert err.sid.startswith("ase") and err.message in str(err)


def test_an_unknown_service_or_route_is_10404(api: Api) -> None:
    with pytest.raises(AseClientError) as info:
        api.once("nosuch", None, {"text": "x"})
    assert info.value.code == 10404 and "nosuch" in info.value.message
    with pytest.raises(AseClientError) as info:
        api.once("/v1/private/nosuch", None, {"text": "x"})
    assert (info.value.code, info.value.http_status) == (10404, 404)
    assert "/v1/private/nosuch" in info.value.message
    with pytest.raises(AseClientError) as info:
        api.session("/v1/private/nosuch", [("end", {"text": "x"})])
    assert (info.value.code, info.value.http_status) == (10404, 404)


def test_a_stream_echo_session_frames_in_results_out(api: Api) -> None:
    got = api.session(
        "stream_echo", [("send", {"text": "one "}), ("send", {"text": "two "}), ("end", {"text": "three"})]
    )
    assert [r.status for r in got] == [0, 1, 2]
    assert "".join(r["echo"].text for r in got) == "one two three"
    assert len({r.sid for r in got}) == 1 and got[0].sid.startswith("ase")


def test_each_result_comes_before_the_next_frame_is_sent(api: Api) -> None:
    steps = [("send", {"text": "a"}), ("recv",)]
    for i in range(3):
        steps += [("send", {"text": f"f{i}"}), ("recv",)]
    steps += [("end", {"text": "z"})]
    got = api.session("stream_echo", steps)
    assert [r["echo"].text for r in got] == ["a", "f0", "f1", "f2", "z"]
    assert got[-1].status == 2


def test_a_one_frame_session(api: Api) -> None:
    got = api.session("stream_echo", [("end", {"text": "only"})])
    assert [(r.status, r["echo"].text) for r in got] == [(2, "only")]


def test_an_error_frame_raises_with_its_code(api: Api) -> None:
    audio = {"audio": {"audio": b"\x00\x00", "encoding": "raw"}}
    with pytest.raises(AseClientError) as info:
        api.session("stream_echo", [("send", {"text": "ok"}), ("end", audio)])
    assert info.value.code == 10163 and "audio" in info.value.message, info.value


def test_a_frame_after_the_last_is_refused_before_it_is_sent(api: Api) -> None:
    with pytest.raises(AseClientError) as info:
        api.session("stream_echo", [("end", {"text": "a"}), ("send", {"text": "late"})])
    assert info.value.code == 10202


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, deterministically."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_an_unreachable_gateway_says_where_and_what_to_do(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    for kind in ("sync", "async"):
        with pytest.raises(AseClientError) as info:
            Api(kind, url, api_key=KEY, api_secret=SECRET).once("/v1/private/binecho", None, {"text": "x"})
        err = info.value
        assert err.code == -1 and err.http_status is None
        assert f"{url}/v1/private/binecho" in err.message and "asectl init" in err.message
        with pytest.raises(AseClientError) as info:
            Api(kind, url, api_key=KEY).session("/v1/private/binecho", [("end", {"text": "x"})])
        assert f"ws://127.0.0.1:{closed_port}/v1/private/binecho" in info.value.message
        for exc in (err, info.value):
            assert KEY not in str(exc) and SECRET not in str(exc) and KEY not in repr(exc.args)


class _Html(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>not a gateway</html>")

    def log_message(self, *_args: object) -> None:
        pass


def test_an_answer_that_is_not_the_protocol_is_a_clear_error() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(AseClientError, match=r"not JSON.*is this the ASE gateway") as info:
            Api("sync", f"http://127.0.0.1:{server.server_port}").once("/x", None, {"text": "x"})
        assert info.value.code == -1 and info.value.http_status == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_secrets_stay_out_of_reprs_and_errors(gw: GatewayProcess, consumer: dict[str, str]) -> None:
    key, secret = consumer["api_key"], consumer["api_secret"]
    with Client(gw.url, consumer["app_id"], key, secret) as client:
        with pytest.raises(AseClientError) as info:
            client.once("binecho", {"speed": 500}, {"text": "x"})
        with client.session("stream_echo") as s:
            s.send({"text": "a"})
            shown = [repr(client), repr(s), str(info.value), repr(info.value), repr(client.credentials)]
            s.end()
            shown += [repr(r) for r in s]
    with (
        Client(gw.url, consumer["app_id"], key, "not-the-secret") as client,
        pytest.raises(AseClientError) as info,
    ):
        client.once("binecho", None, {"text": "x"})
    assert info.value.code == 10401
    shown += [str(info.value), repr(info.value)]
    for text in shown:
        assert key not in text and secret not in text and "not-the-secret" not in text, text


def test_the_route_is_looked_up_once(gw: GatewayProcess, consumer: dict[str, str]) -> None:
    seen: list[str] = []
    with Client(gw.url, consumer["app_id"], consumer["api_key"]) as client:
        client._http.event_hooks["request"].append(lambda req: seen.append(f"{req.method} {req.url.path}"))
        for _ in range(3):
            client.once("binecho", payload={"text": "x"})
    assert seen == ["GET /openapi/binecho.json"] + ["POST /v1/private/binecho"] * 3
