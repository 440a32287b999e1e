"""The client's credentials at a gateway with authentication on: which form goes on the wire, and
what a refusal looks like. (Every test of test_client.py also runs signed and with a key.)"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ase_serving.client import AseClientError, AsyncClient, Client
from tests.client.api import Api
from tests.gateway.support import Cluster, GatewayProcess
from tests.support import wait_for


def test_http_requests_are_signed_in_the_header_form(gw: GatewayProcess, consumer: dict[str, str]) -> None:
    sent: list[httpx.Headers] = []
    with Client(gw.url, consumer["app_id"], consumer["api_key"], consumer["api_secret"]) as client:
        client._http.event_hooks["request"].append(lambda req: sent.append(req.headers))
        # The same request twice in a row (in the same second): each is signed afresh (a nonce).
        for _ in range(2):
            assert client.once("echo", payload={"text": "signed"})["echo"].text == "signed"
    post = sent[-1]
    assert 'headers="host date request-line digest x-nonce"' in post["authorization"]
    assert post["digest"].startswith("SHA-256=") and post["x-nonce"] != sent[-2]["x-nonce"]
    assert post["host"] == urlsplit(gw.url).netloc
    assert post["authorization"].startswith(f'api_key="{consumer["api_key"]}", algorithm="hmac-sha256"')
    assert post["date"].endswith(" GMT") and "x-api-key" not in post


@pytest.mark.parametrize("query", [True, False], ids=["query-form", "header-form"])
@pytest.mark.parametrize("scheme", ["hmac", "key"])
def test_sessions_authenticate_in_the_query_or_in_headers(
    gw: GatewayProcess, consumer: dict[str, str], query: bool, scheme: str
) -> None:
    secret = consumer["api_secret"] if scheme == "hmac" else None
    for kind in ("sync", "async"):
        api = Api(kind, gw.url, consumer["app_id"], api_key=consumer["api_key"], api_secret=secret)
        api.kwargs["ws_query_auth"] = query
        got = api.session("stream_echo", [("send", {"text": "a"}), ("end", {"text": "b"})])
        assert [(r.status, r["echo"].text) for r in got] == [(0, "a"), (2, "b")]
    with Client(gw.url, consumer["app_id"], consumer["api_key"], secret, ws_query_auth=query) as client:
        state = client.session("stream_echo")._state
    names = set(parse_qs(urlsplit(state.url).query))
    if not query:
        assert names == set() and set(state.headers) == (
            {"Authorization", "Date", "X-Nonce"} if secret else {"X-Api-Key"}
        )
    else:
        signed = {"authorization", "date", "host", "x-nonce"}
        assert names == (signed if secret else {"apikey"}) and state.headers == {}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_no_or_wrong_credentials_are_10401(gw: GatewayProcess, consumer: dict[str, str], kind: str) -> None:
    cases = [
        (Api(kind, gw.url, consumer["app_id"]), "authentication required"),
        (Api(kind, gw.url, consumer["app_id"], api_key="no-such-key"), "no consumer has this API key"),
        (
            Api(kind, gw.url, consumer["app_id"], api_key=consumer["api_key"], api_secret="wrong"),
            "signature does not match",
        ),
    ]
    for api, words in cases:
        with pytest.raises(AseClientError) as info:
            api.once("echo", payload={"text": "x"})
        assert (info.value.code, info.value.http_status) == (10401, 401) and words in info.value.message
        with pytest.raises(AseClientError) as info:
            api.session("stream_echo", [("end", {"text": "x"})])
        assert (info.value.code, info.value.http_status) == (10401, 401) and words in info.value.message


def test_another_apps_id_is_10313(gw: GatewayProcess, consumer: dict[str, str]) -> None:
    async def go() -> AseClientError:
        async with AsyncClient(gw.url, "someone-else", consumer["api_key"], consumer["api_secret"]) as client:
            try:
                await client.once("echo", payload={"text": "x"})
            except AseClientError as exc:
                return exc
        raise AssertionError("the gateway took another app's id")

    err = asyncio.run(go())
    assert err.code == 10313 and consumer["app_id"] in err.message


def test_a_consumer_limited_to_other_services_is_10403(cluster: Cluster, gw: GatewayProcess) -> None:
    only = cluster.consumer(name="echo-only", services=["echo"])
    api = Api("sync", gw.url, only["app_id"], api_key=only["api_key"], api_secret=only["api_secret"])
    wait_for(lambda: _known(api), 15, "the new consumer known to the gateway")
    with pytest.raises(AseClientError) as info:
        api.session("stream_echo", [("end", {"text": "x"})])
    assert (info.value.code, info.value.http_status) == (10403, 403) and "stream_echo" in info.value.message


def _known(api: Api) -> bool:
    try:
        api.once("echo", payload={"text": "x"})
    except AseClientError as exc:
        if exc.code == 10401:
            return False
        raise
    return True


def test_debug_logs_carry_no_credentials(
    gw: GatewayProcess, consumer: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("ase_serving.client", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    key, secret = consumer["api_key"], consumer["api_secret"]
    for secret_or_none in (secret, None):
        for query in (True, False):
            with Client(gw.url, consumer["app_id"], key, secret_or_none, ws_query_auth=query) as client:
                client.once("echo", payload={"text": "x"})
                with client.session("stream_echo") as s:
                    s.end({"text": "x"})
                    assert [r.status for r in s] == [2]
    text = caplog.text
    assert "> GET /v1/private/stream_echo" in text and "HTTP Request: POST" in text  # it did log
    assert "[redacted]" in text
    for secret_text in (key, secret, "authorization=", "apikey=", "signature="):
        assert secret_text not in text, secret_text
