"""Authentication end to end with real processes: a consumer added in a real config centre reaches
a real gateway process (``--auth gateway``), which lets its key and its signature through to a
real loader, over HTTP and WebSocket, and refuses what it must, keeping every secret out of its
log file.

Every message and code of the auth, case by case, is checked in this process by
tests/gateway/test_gateway_auth.py; this module keeps the real path covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from examples.support import example_dir
from tests.gateway.auth_support import (
    ECHO,
    STREAM,
    echoed,
    first_frame,
    hi_body,
    refused,
    signed_headers,
    signed_query,
    ws_text,
)
from tests.gateway.support import ECHO_YAML, Cluster, GatewayProcess, Serving
from tests.support import WRAPPERS, wait_for

SERVING = Serving(
    schemas=(ECHO_YAML,),
    loaders=((WRAPPERS / "echo", "--service", "echo"), (example_dir("stream_echo"), "--lic", "8")),
    services=("echo", "stream_echo"),
    args=("--access-log", "--log-level", "debug"),
    auth=True,
)


async def session(url: str, app_id: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One stream echo session of one frame (status 2): every result frame."""
    frames = []
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(first_frame(app_id, "over ws"))
        with contextlib.suppress(ConnectionClosed):  # an error frame is followed by a 1008 close
            async for msg in ws:
                frames.append(orjson.loads(msg))
    return frames


def ws_refusal(url: str, app_id: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as info:
        asyncio.run(session(url, app_id, headers))
    response = info.value.response
    return response.status_code, orjson.loads(response.body or b"{}")


def test_a_consumer_of_the_config_centre_is_let_through_and_a_bad_signature_is_refused(
    cluster: Cluster, gw: GatewayProcess
) -> None:
    host = urlsplit(gw.url).netloc
    creds = cluster.consumer(name="tests")
    key = {"X-Api-Key": creds["api_key"]}
    wait_for(
        lambda: gw.post(ECHO, hi_body(creds), headers=key).status_code == 200,
        15,
        "the consumer added in the config centre known to the gateway",
    )
    # The happy path: a key and signatures in both forms, over HTTP and in a WebSocket handshake.
    assert echoed(gw.post(ECHO, hi_body(creds), headers=key)) == "hi there"
    signed = signed_headers(creds, host, ECHO, time.time())
    assert echoed(gw.post(ECHO, hi_body(creds), headers=signed)) == "hi there"
    url = f"{gw.ws_url}{STREAM}?{signed_query(creds, host, STREAM, time.time())}"
    assert ws_text(asyncio.run(session(url, creds["app_id"]))) == "over ws"
    # The refusals: no credentials, a wrong secret (HTTP and handshake), 10401 with what to do.
    assert "authentication required" in refused(gw.post(ECHO, hi_body(creds)))
    wrong = signed_headers(creds, host, ECHO, time.time(), secret="not-the-secret")
    assert "the signature does not match" in refused(gw.post(ECHO, hi_body(creds), headers=wrong))
    wrong_secret = {"api_key": creds["api_key"], "api_secret": "nope"}
    status, doc = ws_refusal(
        f"{gw.ws_url}{STREAM}?{signed_query(wrong_secret, host, STREAM, time.time())}", creds["app_id"]
    )
    assert (status, doc["header"]["code"]) == (401, 10401) and "does not match" in doc["header"]["message"]
    # Nothing secret in the real log file, whose access log lines name the requests.
    signature = signed["Authorization"].rsplit('signature="', 1)[1].rstrip('"')
    wait_for(lambda: "sid=" in gw.log(), 5, "access log lines")
    log = gw.log()
    for secret in (creds["api_key"], creds["api_secret"], signature):
        assert secret not in log
