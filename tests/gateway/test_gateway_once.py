"""Once requests over HTTP through a real gateway to real loaders: the answer, and every error code
of docs/protocol.md that the gateway produces for a once request, with its HTTP status and message."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gateway.support import ECHO_YAML as ECHO
from tests.gateway.support import GatewayProcess, Serving, api_yaml, b64, once_body, unb64
from tests.support import WRAPPERS, wait_for

SERVING = Serving(
    schemas=(
        ECHO,
        api_yaml("error"),
        api_yaml("raiser"),
        api_yaml("slow", extra="queue_timeout: 0.5"),
        api_yaml("sleepy"),
        api_yaml("nobody"),
        api_yaml("session_sync", interface="session"),
    ),
    loaders=(
        (WRAPPERS / "echo", "--service", "echo"),
        (WRAPPERS / "error", "--service", "error"),
        (WRAPPERS / "raiser", "--service", "raiser"),
        (WRAPPERS / "slow", "--service", "slow", "--lic", "1"),
        (WRAPPERS / "slow", "--service", "sleepy", "--lic", "1"),
    ),
    services=("echo", "error", "raiser", "slow", "sleepy"),
    routes=("nobody", "session_sync"),
    args=("--once-timeout", "1.5"),
)


def header(resp: object) -> dict[str, object]:
    doc = resp.json()  # type: ignore[attr-defined]
    h: dict[str, object] = doc["header"]
    return h


def test_echo_once_answers_in_the_protocol_layout(gw: GatewayProcess) -> None:
    resp = gw.post("/v1/private/echo", once_body("héllo", service="echo", upper="1", speed=5))
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["header"]["code"] == 0 and doc["header"]["message"] == "success"
    assert str(doc["header"]["sid"]).startswith("ech")  # the schema's sub
    entry = doc["payload"]["text"]
    assert unb64(entry["text"]) == "héllo".encode().upper()  # the test wrapper upper-cases bytes
    assert entry["status"] == 3


def test_every_request_gets_its_own_sid(gw: GatewayProcess) -> None:
    sids = {header(gw.post("/v1/private/echo", once_body()))["sid"] for _ in range(5)}
    sids.add(header(gw.post("/v1/private/echo", b"{"))["sid"])
    assert len(sids) == 6


@pytest.mark.parametrize(
    ("body", "code", "status", "words"),
    [
        (b"{not json", 10160, 400, "not valid JSON"),
        (b"[1, 2]", 10160, 400, "JSON object"),
        ({"header": {"app_id": "a"}, "payload": {"text": {"text": "%%%"}}}, 10161, 400, "payload.text.text"),
        ({"header": {}, "payload": {"text": {"text": "aGk="}}}, 10313, 400, "header.app_id"),
        ({"payload": {"text": {"text": "aGk="}}}, 10313, 400, "header.app_id"),
        ({"header": {"app_id": "a"}, "payload": {}}, 10163, 400, "payload.text is required"),
        (
            once_body(service="echo", speed=500),
            10163,
            400,
            "parameter.echo.speed: 500 is greater than the maximum of 100",
        ),
        (once_body(service="echo", upper="2"), 10163, 400, "parameter.echo.upper"),
        (once_body(service="echo", colour="red"), 10163, 400, "'colour' was unexpected"),
        (
            {"header": {"app_id": "a", "status": 7}, "payload": {"text": {"text": "aGk="}}},
            10163,
            400,
            "header.status",
        ),
    ],
)
def test_bad_requests_name_the_problem(
    gw: GatewayProcess, body: object, code: int, status: int, words: str
) -> None:
    resp = gw.post("/v1/private/echo", body)
    assert resp.status_code == status, resp.text
    h = header(resp)
    assert h["code"] == code, h
    assert words in str(h["message"]), h
    assert str(h["sid"]).startswith("ech")


def test_unknown_route_is_10404(gw: GatewayProcess) -> None:
    resp = gw.post("/v1/private/nothing-here", once_body())
    assert resp.status_code == 404
    assert header(resp)["code"] == 10404 and "/v1/private/nothing-here" in str(header(resp)["message"])


def test_a_body_over_the_service_limit_is_10413(gw: GatewayProcess) -> None:
    resp = gw.post("/v1/private/echo", once_body("x" * 5000))
    assert resp.status_code == 413
    assert header(resp)["code"] == 10413 and "4096" in str(header(resp)["message"])
    # Without Content-Length (chunked), the limit holds too.
    chunks = iter([b'{"header": {"app_id": "a"}, "payload": {"text": {"text": "', b"A" * 6000, b'"}}}'])
    resp = gw.client.post("/v1/private/echo", content=chunks)
    assert resp.status_code == 413 and header(resp)["code"] == 10413


def test_a_wrapper_code_comes_back_with_its_message(gw: GatewayProcess) -> None:
    resp = gw.post("/v1/private/error", once_body())
    assert resp.status_code == 500
    assert header(resp)["code"] == 10042
    assert "refuses this input" in str(header(resp)["message"])


def test_an_exception_in_the_wrapper_is_10910(gw: GatewayProcess) -> None:
    resp = gw.post("/v1/private/raiser", once_body())
    assert resp.status_code == 500
    assert header(resp)["code"] == 10910


def test_no_loader_is_11503(gw: GatewayProcess) -> None:
    resp = gw.post("/v1/private/nobody", once_body())
    assert resp.status_code == 503
    h = header(resp)
    assert h["code"] == 11503 and "nobody" in str(h["message"]) and "asectl loader run" in str(h["message"])


def test_a_slow_engine_is_10114(gw: GatewayProcess) -> None:
    start = time.monotonic()
    resp = gw.post("/v1/private/sleepy", once_body(service="sleepy", sleep="4"))
    assert resp.status_code == 504, resp.text
    assert header(resp)["code"] == 10114
    assert time.monotonic() - start < 4


def test_busy_licences_queue_then_429_with_retry_after(gw: GatewayProcess, tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(
            gw.post, "/v1/private/slow", once_body(service="slow", gate=str(gate), started=str(started))
        )
        # The slow loader has one worker with one licence: the holder runs once its marker exists.
        wait_for(lambda: list(tmp_path.glob("started.*")), 10, "the slow request running")
        start = time.monotonic()
        refused = gw.post("/v1/private/slow", once_body(service="slow"))
        waited = time.monotonic() - start
        assert refused.status_code == 429, refused.text
        assert header(refused)["code"] == 10110
        assert refused.headers["retry-after"] == "1"
        assert "0.5 s" in str(header(refused)["message"])
        assert waited >= 0.45  # it waited for the queue timeout before giving up
        # A request that waits while the licence is held gets it once it is freed.
        queued = pool.submit(gw.post, "/v1/private/slow", once_body(service="slow"))
        wait_for(
            lambda: gw.metric("ase_gateway_requests_total", service="slow", mode="once", code="10110") >= 1,
            5,
            "the refusal counted",
        )
        gate.touch()
        assert holder.result(10).status_code == 200
        assert queued.result(10).status_code == 200
    assert gw.metric("ase_gateway_queue_wait_seconds_count", service="slow") >= 1


def test_modes_the_schema_does_not_serve_are_refused(gw: GatewayProcess) -> None:
    resp = gw.post("/v1/private/session_sync", once_body())
    assert resp.status_code == 405
    assert "WebSocket" in str(header(resp)["message"])
    resp = gw.client.get("/v1/private/echo")
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"


def test_metrics_count_requests_by_service_and_code(gw: GatewayProcess) -> None:
    before = gw.metric("ase_gateway_requests_total", service="echo", mode="once", code="0")
    for _ in range(3):
        gw.post("/v1/private/echo", once_body())
    gw.post("/v1/private/echo", b"nope")
    assert gw.metric("ase_gateway_requests_total", service="echo", mode="once", code="0") == before + 3
    assert gw.metric("ase_gateway_requests_total", service="echo", mode="once", code="10160") >= 1
    assert gw.metric("ase_gateway_request_seconds_count", service="echo", mode="once") >= 4


def test_base64_payload_round_trips_binary(gw: GatewayProcess) -> None:
    data = bytes(range(256)) * 4
    body = {"header": {"app_id": "a"}, "payload": {"text": {"encoding": "raw", "text": b64(data)}}}
    resp = gw.post("/v1/private/echo", body)
    assert resp.status_code == 200, resp.text
    assert unb64(resp.json()["payload"]["text"]["text"]) == data


def _http(sock: socket.socket, request: bytes) -> None:
    sock.sendall(request)


def _response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response from ``sock`` (head, body by its content-length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    assert len(body) == length, "more than one response"
    return head, body


def test_keep_alive_and_100_continue_over_a_raw_socket(gw: GatewayProcess) -> None:
    """The gateway holds a response's head until its body (one write): responses still come one
    per request on a kept-alive connection, and "100 Continue" is not held back."""
    host, port = gw.url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps(once_body("keep")).encode()
    post = (
        f"POST /v1/private/echo HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for _ in range(3):
            _http(sock, post + b"\r\n" + body)
            head, got = _response(sock)
            assert head.startswith(b"HTTP/1.1 200 ") and json.loads(got)["header"]["code"] == 0
        # The client waits for "100 Continue" before it sends the body.
        _http(sock, post + b"Expect: 100-continue\r\n\r\n")
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(65536)
            assert chunk
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        rest = interim.partition(b"\r\n\r\n")[2]
        assert rest == b""
        _http(sock, body)
        head, got = _response(sock)
        assert (
            head.startswith(b"HTTP/1.1 200 ") and unb64(json.loads(got)["payload"]["text"]["text"]) == b"keep"
        )
        # A page of the small app answers on the same connection too.
        _http(sock, f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head, got = _response(sock)
        assert head.startswith(b"HTTP/1.1 200 ") and json.loads(got)["status"] == "ok"
