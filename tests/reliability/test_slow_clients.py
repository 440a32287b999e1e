"""Clients that hold connections without finishing a request (issue 16, item 7): half a request's
headers, or half its body, or nothing at all, are answered 408 and closed after the gateway's
header / body time limits; and a gateway takes at most --max-connections (503 above it)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.gateway.support import Cluster, GatewayProcess, Serving, api_yaml, once_body
from tests.support import WRAPPERS, wait_for

SERVING = Serving(
    schemas=(api_yaml("echo"),),
    loaders=((WRAPPERS / "echo", "--service", "echo"),),
    services=("echo",),
    args=("--header-timeout", "0.5", "--body-timeout", "0.5"),
)


def _connect(gw: GatewayProcess) -> socket.socket:
    host, port = gw.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


BODY = json.dumps(once_body()).encode()
PARTS = {
    "nothing at all": b"",
    "half the headers": b"POST /v1/private/echo HTTP/1.1\r\nHost: gw\r\nContent-Type: appl",
    "half the body": (
        f"POST /v1/private/echo HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()
    + BODY[:10],
}


@pytest.mark.parametrize("part", PARTS, ids=list(PARTS))
def test_a_request_that_stops_half_way_is_408_and_closed(gw: GatewayProcess, part: str) -> None:
    socks = [_connect(gw) for _ in range(20)]
    try:
        start = time.monotonic()
        for sock in socks:
            sock.sendall(PARTS[part])
        answers = [_until_closed(sock) for sock in socks]
        assert time.monotonic() - start < 8  # well before the 10 s socket timeout: closed by the gateway
    finally:
        for sock in socks:
            sock.close()
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer
        header = json.loads(body)["header"]
        assert header["code"] == 10114 and "0.5 s" in header["message"]
    assert gw.post("/v1/private/echo", once_body()).json()["header"]["code"] == 0  # others go on


def test_a_kept_alive_connection_is_timed_on_its_next_request_too(gw: GatewayProcess) -> None:
    with _connect(gw) as sock:
        request = (
            f"POST /v1/private/echo HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY
        sock.sendall(request)
        first = b""
        while b'"code":0' not in first:
            chunk = sock.recv(65536)
            assert chunk
            first += chunk
        sock.sendall(request[:20])  # the next request, never finished
        assert _until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_connections_over_the_limit_get_503(cluster: Cluster) -> None:
    with cluster.gateway("--max-connections", "5", "--header-timeout", "30") as gw:
        gw.wait_route("/v1/private/echo")
        idle = [_connect(gw) for _ in range(5)]
        try:
            wait_for(
                lambda: gw.post("/v1/private/echo", once_body()).status_code == 503, 10, "503 over the limit"
            )
        finally:
            for sock in idle:
                sock.close()
        wait_for(
            lambda: gw.post("/v1/private/echo", once_body()).json()["header"]["code"] == 0,
            10,
            "served again once the idle connections are gone",
        )
