"""Per-consumer limits under concurrent load, and ``--auth proxy`` (a front proxy's consumer header,
believed only from the addresses the gateway trusts), with real gateways and loaders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from examples.support import example_dir
from tests.gateway.support import Cluster, GatewayProcess, b64, once_body
from tests.support import WRAPPERS, wait_for

ECHO = "/v1/private/echo"
STREAM = "/v1/private/stream_echo"


@pytest.fixture(scope="module")
def loaders(cluster: Cluster) -> Cluster:
    from tests.gateway.support import ECHO_YAML

    cluster.put_schema(ECHO_YAML)
    cluster.loader(WRAPPERS / "echo", "--service", "echo", "--lic", "64")
    cluster.loader(example_dir("stream_echo"), "--lic", "8")
    return cluster


@pytest.fixture(scope="module")
def gw(loaders: Cluster) -> Iterator[GatewayProcess]:
    """Not the shared ``gw`` of tests/gateway/conftest.py: the loaders are the module's ``loaders``
    fixture, which the proxy-mode tests use without this gateway (they start gateways of their
    own), so that running one of them alone starts no gateway more."""
    with loaders.serving("echo", "stream_echo", auth=True) as gateway:
        yield gateway


def known(gw: GatewayProcess, creds: dict[str, str]) -> None:
    body = once_body(app_id=creds["app_id"])
    wait_for(
        lambda: gw.post(ECHO, body, headers={"X-Api-Key": creds["api_key"]}).status_code in (200, 429),
        15,
        "the consumer and the echo loader known to the gateway",
    )


def test_requests_per_second_are_limited_under_concurrent_load(cluster: Cluster, gw: GatewayProcess) -> None:
    rps = 5
    creds = cluster.consumer(name="limited", rps=rps)
    known(gw, creds)
    body = orjson.dumps(once_body(app_id=creds["app_id"]))
    headers = {"X-Api-Key": creds["api_key"], "content-type": "application/json"}

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            return client.post(ECHO, content=body, headers=headers)

    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(40)))
    elapsed = time.monotonic() - start
    ok = [r for r in answers if r.status_code == 200]
    over = [r for r in answers if r.status_code == 429]
    assert len(ok) + len(over) == len(answers), [r.text for r in answers if r.status_code not in (200, 429)]
    # A bucket of `rps` tokens refilled at `rps` per second: no more than that got through.
    assert 1 <= len(ok) <= rps + rps * elapsed + 1, (len(ok), elapsed)
    assert over, f"all {len(answers)} requests passed in {elapsed:.2f} s"
    for r in over:
        header = r.json()["header"]
        assert header["code"] == 10110 and "limit of 5 requests per second" in header["message"]
        assert int(r.headers["retry-after"]) >= 1
    # Another consumer is not slowed down by this one's limit.
    free = cluster.consumer(name="unlimited")
    known(gw, free)
    free_headers = {"X-Api-Key": free["api_key"]}
    assert all(
        gw.post(ECHO, once_body(app_id=free["app_id"]), headers=free_headers).status_code == 200
        for _ in range(20)
    )


def frame(app_id: str | None, status: int, text: str) -> str:
    body: dict[str, Any] = {
        "header": {"status": status},
        "payload": {"text": {"encoding": "utf8", "status": status, "text": b64(text)}},
    }
    if app_id is not None:
        body["header"]["app_id"] = app_id
    return orjson.dumps(body).decode()


def test_concurrent_sessions_are_limited(cluster: Cluster, gw: GatewayProcess) -> None:
    creds = cluster.consumer(name="two sessions", sessions=2)
    known(gw, creds)
    url, headers = f"{gw.ws_url}{STREAM}", {"X-Api-Key": creds["api_key"]}

    async def go() -> tuple[int, dict[str, Any], str]:
        async def opened() -> ClientConnection:
            ws = await connect(url, additional_headers=headers)
            await ws.send(frame(creds["app_id"], 0, "first"))
            await ws.recv()  # the session is open on the loader
            return ws

        held = [await opened(), await opened()]
        with pytest.raises(InvalidStatus) as info:
            await opened()
        refusal = info.value.response
        await held[0].send(frame(None, 2, "last"))
        async for _ in held[0]:
            pass
        # The ended session's place is free again (the gateway counts it down when it ends).
        deadline = time.monotonic() + 10
        while True:
            try:
                third = await opened()
                break
            except InvalidStatus:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        for ws in (held[1], third):
            await ws.close()
        return (
            refusal.status_code,
            orjson.loads(refusal.body or b"{}"),
            refusal.headers.get("retry-after", ""),
        )

    status, doc, retry_after = asyncio.run(go())
    assert status == 429 and doc["header"]["code"] == 10110
    assert "2 sessions open" in doc["header"]["message"] and retry_after == "1"


# -- --auth proxy --------------------------------------------------------------------------------


def test_proxy_mode_trusts_the_consumer_header_from_a_trusted_address(loaders: Cluster) -> None:
    args = ("--auth", "proxy", "--trusted-proxy", "127.0.0.1")
    with loaders.gateway(*args, auth=True) as gw:
        gw.wait_route(ECHO)
        vouched = {"X-Consumer-Custom-ID": "kong-app"}
        wait_for(
            lambda: gw.post(ECHO, once_body(app_id="kong-app"), headers=vouched).status_code == 200,
            15,
            "the echo loader known",
        )
        resp = gw.post(ECHO, once_body(app_id="other-app"), headers=vouched)
        assert resp.status_code == 403 and resp.json()["header"]["code"] == 10313
        resp = gw.post(ECHO, once_body(app_id="kong-app"))
        assert resp.status_code == 401 and "sent no X-Consumer-Custom-ID" in resp.json()["header"]["message"]
        # A key is no use here: the proxy's word is what counts.
        creds = loaders.consumer(name="ignored in proxy mode")
        resp = gw.post(ECHO, once_body(app_id=creds["app_id"]), headers={"X-Api-Key": creds["api_key"]})
        assert resp.status_code == 401
        assert gw.health()["auth"]["mode"] == "proxy"


def test_proxy_mode_refuses_the_header_from_other_addresses(loaders: Cluster) -> None:
    with loaders.gateway("--auth", "proxy", "--trusted-proxy", "10.0.0.0/8", auth=True) as gw:
        gw.wait_route(ECHO)
        resp = gw.post(ECHO, once_body(app_id="kong-app"), headers={"X-Consumer-Custom-ID": "kong-app"})
        assert resp.status_code == 401
        message = resp.json()["header"]["message"]
        assert "only through its front proxy" in message and "127.0.0.1" in message


def test_proxy_mode_without_trusted_addresses_is_refused_at_start(loaders: Cluster) -> None:
    with pytest.raises(RuntimeError, match="needs --trusted-proxy"):
        loaders.gateway("--auth", "proxy", auth=True, timeout=10)


def test_a_gateway_that_cannot_read_its_consumers_says_so(loaders: Cluster) -> None:
    # No account: the service schemas are open to read, the consumers are not.
    with loaders.gateway(auth=True, env={"ASE_CONFIG_ACCOUNT": "", "ASE_CONFIG_PASSWORD": ""}) as gw:
        gw.wait_route(ECHO)
        creds = loaders.consumer(name="unreadable")
        resp = gw.post(ECHO, once_body(app_id=creds["app_id"]), headers={"X-Api-Key": creds["api_key"]})
        assert resp.status_code == 503 and resp.json()["header"]["code"] == 11503
        message = resp.json()["header"]["message"]
        assert "has not loaded its consumers" in message and "account" in message, message
        health = gw.health()["auth"]
        assert not health["connected"] and "account" in health["last_error"]
