"""Authentication with ``--auth gateway`` (the default): API keys and HMAC signatures, header and
query forms, over HTTP and WebSocket, against the gateway's consumers: every message and code,
checked in this process against the real app (:class:`tests.gateway.auth_support.AuthGateway`)
with an injected clock, so the dates near the 300 s limit and a signature's window are exact and
need no waiting.

tests/gateway/test_gateway_auth_process.py runs the same path end to end with real processes (a
consumer added in the cluster's store, a gateway process, a loader); this module stays ``unit``
(tests/conftest.py reads the kind of a module from its text: no word of a process here).

The signatures come from tests/gateway/auth_support.py, written from docs/protocol.md
("Authentication"), not from the gateway's or the SDK's code.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.gateway.auth_support import (
    CASES,
    ECHO,
    STREAM,
    AuthGateway,
    authorization,
    credentials,
    echoed,
    extras,
    hi_body,
    refused,
    rfc1123,
    signed_headers,
    signed_query,
    ws_text,
)
from tests.gateway.support import once_body

README = Path(__file__).resolve().parents[2] / "README.md"
HOST = AuthGateway.host


@pytest.fixture(scope="module")
def gateway() -> Iterator[AuthGateway]:
    g = AuthGateway()
    yield g
    g.close()


@pytest.fixture(autouse=True)
def clock_back(gateway: AuthGateway) -> Iterator[None]:
    """Each test starts with the gateway's clock where the module started it."""
    start = gateway.clock.now
    yield
    gateway.clock.now = start


@pytest.fixture(scope="module")
def creds(gateway: AuthGateway) -> dict[str, str]:
    return gateway.consumer(name="tests")


def now(gateway: AuthGateway) -> float:
    return gateway.clock.now


def post(gateway: AuthGateway, creds: dict[str, str], headers: dict[str, str], path: str = ECHO) -> Any:
    return gateway.post(path, hi_body(creds), headers=headers)


def handshake_refusal(
    gateway: AuthGateway, path: str, app_id: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    status, docs = gateway.session(path, app_id, headers)
    assert status != 101, docs
    return status, docs[0]


def session_text(gateway: AuthGateway, path: str, app_id: str, headers: dict[str, str] | None = None) -> str:
    status, frames = gateway.session(path, app_id, headers)
    assert status == 101, frames
    return ws_text(frames)


# -- HTTP: API key ------------------------------------------------------------------------------


def test_no_credentials_are_refused_with_what_to_send(gateway: AuthGateway, creds: dict[str, str]) -> None:
    message = refused(post(gateway, creds, {}))
    assert "X-Api-Key" in message and "HMAC" in message


def test_api_key_in_the_header_or_the_query(gateway: AuthGateway, creds: dict[str, str]) -> None:
    assert echoed(post(gateway, creds, {"X-Api-Key": creds["api_key"]})) == "hi there"
    assert echoed(post(gateway, creds, {}, path=f"{ECHO}?apikey={creds['api_key']}")) == "hi there"


def test_a_wrong_key_is_refused_and_not_repeated(gateway: AuthGateway, creds: dict[str, str]) -> None:
    wrong = creds["api_key"][:-4] + "0000"
    message = refused(post(gateway, creds, {"X-Api-Key": wrong}))
    assert "no consumer has this API key" in message
    assert wrong not in message and creds["api_key"] not in message


def test_two_api_key_headers_are_refused(gateway: AuthGateway, creds: dict[str, str]) -> None:
    """Which would count? One may be a proxy's: the request is refused, with either order."""
    key = creds["api_key"]
    for pair in ([key, "other"], ["other", key], [key, key]):
        body = orjson.dumps(once_body("hi", app_id=creds["app_id"]))
        resp = gateway.post(ECHO, body, headers=[("x-api-key", k) for k in pair])
        assert "more than one X-Api-Key header" in refused(resp)


def test_header_app_id_must_be_the_consumers(gateway: AuthGateway, creds: dict[str, str]) -> None:
    body = orjson.dumps(once_body(app_id="someone-else"))
    message = refused(gateway.post(ECHO, body, headers={"X-Api-Key": creds["api_key"]}), 10313, 403)
    assert "someone-else" in message and creds["app_id"] in message


# -- HTTP: HMAC, header form ----------------------------------------------------------------------


def test_a_signed_request_in_the_header_form(gateway: AuthGateway, creds: dict[str, str]) -> None:
    t = now(gateway)
    assert echoed(post(gateway, creds, signed_headers(creds, HOST, ECHO, t))) == "hi there"
    # Within the allowed skew (300 s) either way, up to the limit itself.
    for skew in (-250, 250, -300, 300):
        assert echoed(post(gateway, creds, signed_headers(creds, HOST, ECHO, t, skew=skew))) == "hi there"


def test_a_signature_without_date_or_too_far_off_is_refused(
    gateway: AuthGateway, creds: dict[str, str]
) -> None:
    t = now(gateway)
    headers = signed_headers(creds, HOST, ECHO, t)
    del headers["Date"]
    assert "has no date" in refused(post(gateway, creds, headers))
    message = refused(post(gateway, creds, signed_headers(creds, HOST, ECHO, t, skew=-400)))
    assert "is 400 s behind the gateway's clock (at most 300 s)" in message
    message = refused(post(gateway, creds, signed_headers(creds, HOST, ECHO, t, skew=400)))
    assert "is 400 s ahead of the gateway's clock" in message
    # One second past the limit, either way.
    assert "behind the gateway's clock" in refused(
        post(gateway, creds, signed_headers(creds, HOST, ECHO, t, skew=-301))
    )
    assert "ahead of the gateway's clock" in refused(
        post(gateway, creds, signed_headers(creds, HOST, ECHO, t, skew=301))
    )
    bad = signed_headers(creds, HOST, ECHO, t)
    bad["Date"] = "yesterday"
    assert "not an RFC 1123 date" in refused(post(gateway, creds, bad))


def test_a_signature_expires_with_the_gateways_clock(gateway: AuthGateway, creds: dict[str, str]) -> None:
    """A signature good now is refused once the gateway's clock has moved past its window."""
    headers = signed_headers(creds, HOST, ECHO, now(gateway))
    gateway.clock.now += 301
    assert "301 s behind the gateway's clock" in refused(post(gateway, creds, headers))


def test_a_malformed_authorization_is_refused(gateway: AuthGateway, creds: dict[str, str]) -> None:
    date = rfc1123(now(gateway))
    assert "malformed" in refused(post(gateway, creds, {"Authorization": "Bearer abc", "Date": date}))
    extra = extras(creds, "POST")
    other = authorization(creds["api_key"], creds["api_secret"], HOST, date, "POST", ECHO, extra)
    other = other.replace("hmac-sha256", "hmac-sha1")
    assert "hmac-sha1" in refused(post(gateway, creds, {"Authorization": other, "Date": date}))


# -- HTTP: HMAC, query form -----------------------------------------------------------------------


def test_a_signed_request_in_the_query_form(gateway: AuthGateway, creds: dict[str, str]) -> None:
    t = now(gateway)
    query = signed_query(creds, HOST, ECHO, t, method="POST")
    assert echoed(post(gateway, creds, {}, path=f"{ECHO}?{query}")) == "hi there"
    # The query form signs a host of its own: it must be the one the request went to.
    other = signed_query(creds, HOST, ECHO, t, method="POST", sign_host="evil.example")
    assert "is not this request's Host" in refused(post(gateway, creds, {}, path=f"{ECHO}?{other}"))
    # Signed for GET (a WebSocket) but sent as a POST: it covers no body.
    get = signed_query(creds, HOST, ECHO, t, method="GET")
    assert "does not cover" in refused(post(gateway, creds, {}, path=f"{ECHO}?{get}"))


def test_a_signed_request_is_taken_once_and_covers_its_body_and_query(
    gateway: AuthGateway, creds: dict[str, str]
) -> None:
    t = now(gateway)
    headers = signed_headers(creds, HOST, ECHO, t)
    assert echoed(post(gateway, creds, headers)) == "hi there"
    assert "used already (a replay)" in refused(post(gateway, creds, headers))
    # Still a replay at the end of its window; past it, too old rather than let through.
    gateway.clock.now = t + 300
    assert "used already (a replay)" in refused(post(gateway, creds, headers))
    gateway.clock.now = t + 301
    assert "behind the gateway's clock" in refused(post(gateway, creds, headers))
    gateway.clock.now = t
    # Another body under the signature of this one.
    headers = signed_headers(creds, HOST, ECHO, t)
    other = orjson.dumps(once_body("hi there!", app_id=creds["app_id"]))
    assert "not the one signed" in refused(gateway.post(ECHO, other, headers=headers))
    # A body the signature does not cover at all (the seed's three headers only).
    date = rfc1123(t)
    bare = authorization(creds["api_key"], creds["api_secret"], HOST, date, "POST", ECHO)
    assert "does not cover" in refused(post(gateway, creds, {"Authorization": bare, "Date": date}))
    # A query string added to a signed request.
    headers = signed_headers(creds, HOST, ECHO, t)
    assert "does not match" in refused(post(gateway, creds, headers, path=f"{ECHO}?x=1"))
    headers = signed_headers(creds, HOST, ECHO, t, sign_path=f"{ECHO}?x=1")
    assert echoed(post(gateway, creds, headers, path=f"{ECHO}?x=1")) == "hi there"


def test_the_readmes_signing_example_is_taken(gateway: AuthGateway, creds: dict[str, str]) -> None:
    """The README's `sign()` (Authentication and consumers) run as written, then with real values
    (it dates by the real clock: the gateway's is set to it)."""
    section = README.read_text().split("### Authentication and consumers", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block in the README's Authentication section"
    names: dict[str, Any] = {}
    exec(match.group(1), names)  # defines sign() and signs an example request
    body = hi_body(creds)
    gateway.clock.now = time.time()
    headers = names["sign"](creds["api_key"], creds["api_secret"], HOST, "POST", ECHO, body)
    assert echoed(gateway.post(ECHO, body, headers=headers)) == "hi there"


# -- WebSocket ------------------------------------------------------------------------------------


def test_a_session_signed_in_the_query_form(gateway: AuthGateway, creds: dict[str, str]) -> None:
    path = f"{STREAM}?{signed_query(creds, HOST, STREAM, now(gateway))}"
    assert session_text(gateway, path, creds["app_id"]) == "over ws"


def test_a_session_with_a_key_or_signed_headers(gateway: AuthGateway, creds: dict[str, str]) -> None:
    assert session_text(gateway, STREAM, creds["app_id"], {"X-Api-Key": creds["api_key"]}) == "over ws"
    signed = signed_headers(creds, HOST, STREAM, now(gateway), method="GET")
    assert session_text(gateway, STREAM, creds["app_id"], signed) == "over ws"
    assert session_text(gateway, f"{STREAM}?apikey={creds['api_key']}", creds["app_id"]) == "over ws"


def test_sessions_without_or_with_bad_credentials_are_refused_in_the_handshake(
    gateway: AuthGateway, creds: dict[str, str]
) -> None:
    t = now(gateway)
    status, doc = handshake_refusal(gateway, STREAM, creds["app_id"])
    assert (status, doc["header"]["code"]) == (401, 10401)
    wrong_secret = {"api_key": creds["api_key"], "api_secret": "nope"}
    status, doc = handshake_refusal(
        gateway, f"{STREAM}?{signed_query(wrong_secret, HOST, STREAM, t)}", creds["app_id"]
    )
    assert (status, doc["header"]["code"]) == (401, 10401) and "does not match" in doc["header"]["message"]
    # Signed for another route.
    status, doc = handshake_refusal(
        gateway, f"{STREAM}?{signed_query(creds, HOST, ECHO, t)}", creds["app_id"]
    )
    assert "does not match" in doc["header"]["message"]
    stale = signed_headers(creds, HOST, STREAM, t, method="GET", skew=-301)
    status, doc = handshake_refusal(gateway, STREAM, creds["app_id"], stale)
    assert status == 401 and "behind the gateway's clock" in doc["header"]["message"]


def test_a_session_with_another_app_id_ends_with_10313(gateway: AuthGateway, creds: dict[str, str]) -> None:
    status, frames = gateway.session(STREAM, "not-mine", {"X-Api-Key": creds["api_key"]})
    assert status == 101 and frames[-1]["header"]["code"] == 10313


# -- every negative case, in both forms, over HTTP and over WebSocket ----------------------------


@pytest.mark.parametrize("form", ["header", "query"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_signature_is_refused_over_http(
    gateway: AuthGateway, creds: dict[str, str], case: str, form: str
) -> None:
    query, headers = credentials(creds, HOST, "POST", ECHO, form, now(gateway), case)
    message = refused(post(gateway, creds, headers, path=ECHO + query))
    assert CASES[case][form] in message
    assert creds["api_secret"] not in message


@pytest.mark.parametrize("form", ["header", "query"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_signature_is_refused_in_the_handshake(
    gateway: AuthGateway, creds: dict[str, str], case: str, form: str
) -> None:
    query, headers = credentials(creds, HOST, "GET", STREAM, form, now(gateway), case)
    status, doc = handshake_refusal(gateway, f"{STREAM}{query}", creds["app_id"], headers)
    assert (status, doc["header"]["code"]) == (401, 10401)
    assert CASES[case][form] in doc["header"]["message"]


@pytest.mark.parametrize("form", ["header", "query"])
def test_a_good_signature_passes_in_both_forms_over_both(
    gateway: AuthGateway, creds: dict[str, str], form: str
) -> None:
    query, headers = credentials(creds, HOST, "POST", ECHO, form, now(gateway))
    assert echoed(post(gateway, creds, headers, path=ECHO + query)) == "hi there"
    query, headers = credentials(creds, HOST, "GET", STREAM, form, now(gateway))
    assert session_text(gateway, f"{STREAM}{query}", creds["app_id"], headers) == "over ws"


# -- consumers change while the gateway runs ------------------------------------------------------


def test_rotate_retires_the_old_key_and_secret(gateway: AuthGateway) -> None:
    t = now(gateway)
    old = gateway.consumer(name="rotating")
    assert echoed(post(gateway, old, {"X-Api-Key": old["api_key"]})) == "hi there"
    new = gateway.rotate(old["app_id"])
    assert new["app_id"] == old["app_id"] and new["api_key"] != old["api_key"]
    assert echoed(post(gateway, new, {"X-Api-Key": new["api_key"]})) == "hi there"
    refused(post(gateway, old, {"X-Api-Key": old["api_key"]}))
    refused(post(gateway, old, signed_headers(old, HOST, ECHO, t)))
    for form in ("header", "query"):
        query, headers = credentials(old, HOST, "GET", STREAM, form, t)
        assert handshake_refusal(gateway, f"{STREAM}{query}", old["app_id"], headers)[0] == 401
    assert handshake_refusal(gateway, STREAM, old["app_id"], {"X-Api-Key": old["api_key"]})[0] == 401
    query, headers = credentials(new, HOST, "GET", STREAM, "query", t)
    assert session_text(gateway, f"{STREAM}{query}", new["app_id"], headers) == "over ws"
    assert echoed(post(gateway, new, signed_headers(new, HOST, ECHO, t))) == "hi there"
    gateway.remove(old["app_id"])
    refused(post(gateway, new, {"X-Api-Key": new["api_key"]}))


def test_a_consumer_may_call_only_its_services(gateway: AuthGateway) -> None:
    only = gateway.consumer(name="stream only", services=("stream_echo",))
    key = {"X-Api-Key": only["api_key"]}
    message = refused(post(gateway, only, key), 10403, 403)
    assert "may not call echo" in message and "stream_echo" in message
    assert session_text(gateway, STREAM, only["app_id"], key) == "over ws"
    gateway.update(only["app_id"], services=())
    assert echoed(post(gateway, only, key)) == "hi there"


# -- secrets stay out of logs and metrics ---------------------------------------------------------


def test_no_secret_in_the_log_or_the_metrics(
    gateway: AuthGateway, creds: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ase_serving")
    t = now(gateway)
    signed = signed_headers(creds, HOST, ECHO, t)
    echoed(post(gateway, creds, signed))
    echoed(post(gateway, creds, {}, path=f"{ECHO}?apikey={creds['api_key']}"))
    refused(post(gateway, creds, signed_headers(creds, HOST, ECHO, t, secret="x")))
    signature = signed["Authorization"].rsplit('signature="', 1)[1].rstrip('"')
    # The gateway's log (not httpx's, which logs this test's own request lines).
    log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ase_serving"))
    assert "sid=" in log  # the access log lines
    metrics = gateway.get("/metrics").text
    for secret in (creds["api_key"], creds["api_secret"], signature):
        assert secret not in log and secret not in metrics
    health = gateway.get("/health").json()
    assert health["auth"]["mode"] == "gateway" and health["auth"]["consumers"] >= 1
    assert creds["api_key"] not in orjson.dumps(health).decode()
