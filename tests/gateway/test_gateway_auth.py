"""Authentication at a real gateway (``--auth gateway``, the default): API keys and HMAC signatures,
header and query forms, over HTTP and WebSocket, against consumers in a real config centre.

The signatures here come from this file's own few lines written from docs/protocol.md
("Authentication"), not from the gateway's or the SDK's code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from examples.support import example_dir
from tests.gateway.support import Cluster, GatewayProcess, b64, once_body, unb64
from tests.support import WRAPPERS, wait_for

README = Path(__file__).resolve().parents[2] / "README.md"
ECHO = "/v1/private/echo"
STREAM = "/v1/private/stream_echo"


def rfc1123(ts: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(ts))


def authorization(
    key: str, secret: str, host: str, date: str, method: str, path: str, extra: dict[str, str] | None = None
) -> str:
    """docs/protocol.md: the string to sign (host, date, the request line, then one line per further
    signed header), its HMAC-SHA256 in base64, the authorization_origin."""
    lines = [f"host: {host}", f"date: {date}", f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    sig = base64.b64encode(
        hmac.new(secret.encode(), "\n".join(lines).encode(), hashlib.sha256).digest()
    ).decode()
    names = " ".join(["host date request-line", *(extra or {})])
    return f'api_key="{key}", algorithm="hmac-sha256", headers="{names}", signature="{sig}"'


def hi_body(creds: dict[str, str]) -> bytes:
    """The body :func:`post` sends."""
    return orjson.dumps(once_body("hi there", app_id=creds["app_id"]))


def extras(creds: dict[str, str], method: str, body: bytes | None = None) -> dict[str, str]:
    """The further signed headers: the digest of the body a POST sends, and a fresh nonce."""
    out = {}
    if method == "POST":
        digest = hashlib.sha256(hi_body(creds) if body is None else body).digest()
        out["digest"] = "SHA-256=" + base64.b64encode(digest).decode()
    out["x-nonce"] = secrets.token_hex(8)
    return out


def signed_headers(
    creds: dict[str, str], host: str, path: str, method: str = "POST", skew: float = 0.0, **change: str
) -> dict[str, str]:
    date = rfc1123(time.time() + skew)
    key, secret = change.get("key", creds["api_key"]), change.get("secret", creds["api_secret"])
    sign_host, sign_path = change.get("sign_host", host), change.get("sign_path", path)
    extra = extras(creds, method)
    auth = authorization(key, secret, sign_host, date, method, sign_path, extra)
    return {"Authorization": auth, "Date": date, **extra}


def signed_query(creds: dict[str, str], host: str, path: str, method: str = "GET", **change: str) -> str:
    date = rfc1123(time.time())
    sign_host = change.get("sign_host", host)
    extra = extras(creds, method)
    auth = authorization(creds["api_key"], creds["api_secret"], sign_host, date, method, path, extra)
    return urlencode(
        {"authorization": base64.b64encode(auth.encode()).decode(), "date": date, "host": sign_host, **extra}
    )


@pytest.fixture(scope="module")
def gw(cluster: Cluster) -> Iterator[GatewayProcess]:
    from tests.gateway.support import ECHO_YAML

    cluster.put_schema(ECHO_YAML)
    cluster.loader(WRAPPERS / "echo", "--service", "echo")
    cluster.loader(example_dir("stream_echo"), "--lic", "8")
    with cluster.serving(
        "echo", "stream_echo", args=("--access-log", "--log-level", "debug"), auth=True
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def creds(cluster: Cluster, gw: GatewayProcess) -> dict[str, str]:
    c = cluster.consumer(name="tests")
    body = once_body(app_id=c["app_id"])
    wait_for(
        lambda: gw.post(ECHO, body, headers={"X-Api-Key": c["api_key"]}).status_code == 200,
        15,
        "the consumer and the echo loader known to the gateway",
    )
    return c


def host_of(gw: GatewayProcess) -> str:
    return urlsplit(gw.url).netloc


def post(
    gw: GatewayProcess, creds: dict[str, str], headers: dict[str, str], path: str = ECHO
) -> httpx.Response:
    return gw.post(path, hi_body(creds), headers=headers)


def refused(resp: httpx.Response, code: int = 10401, status: int = 401) -> str:
    assert resp.status_code == status, resp.text
    header = resp.json()["header"]
    assert header["code"] == code
    message: str = header["message"]
    return message


def echoed(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    return unb64(resp.json()["payload"]["text"]["text"]).decode()


# -- HTTP: API key ------------------------------------------------------------------------------


def test_no_credentials_are_refused_with_what_to_send(gw: GatewayProcess, creds: dict[str, str]) -> None:
    message = refused(post(gw, creds, {}))
    assert "X-Api-Key" in message and "HMAC" in message


def test_api_key_in_the_header_or_the_query(gw: GatewayProcess, creds: dict[str, str]) -> None:
    assert echoed(post(gw, creds, {"X-Api-Key": creds["api_key"]})) == "hi there"
    assert echoed(post(gw, creds, {}, path=f"{ECHO}?apikey={creds['api_key']}")) == "hi there"


def test_a_wrong_key_is_refused_and_not_repeated(gw: GatewayProcess, creds: dict[str, str]) -> None:
    wrong = creds["api_key"][:-4] + "0000"
    message = refused(post(gw, creds, {"X-Api-Key": wrong}))
    assert "no consumer has this API key" in message
    assert wrong not in message and creds["api_key"] not in message


def test_two_api_key_headers_are_refused(gw: GatewayProcess, creds: dict[str, str]) -> None:
    """Which would count? One may be a proxy's: the request is refused, with either order."""
    key = creds["api_key"]
    for pair in ([key, "other"], ["other", key], [key, key]):
        resp = gw.client.post(
            ECHO,
            content=orjson.dumps(once_body("hi", app_id=creds["app_id"])),
            headers=[("content-type", "application/json"), *(("x-api-key", k) for k in pair)],
        )
        assert "more than one X-Api-Key header" in refused(resp)


def test_header_app_id_must_be_the_consumers(gw: GatewayProcess, creds: dict[str, str]) -> None:
    resp = gw.post(ECHO, once_body(app_id="someone-else"), headers={"X-Api-Key": creds["api_key"]})
    message = refused(resp, 10313, 403)
    assert "someone-else" in message and creds["app_id"] in message


# -- HTTP: HMAC, header form ----------------------------------------------------------------------


def test_a_signed_request_in_the_header_form(gw: GatewayProcess, creds: dict[str, str]) -> None:
    assert echoed(post(gw, creds, signed_headers(creds, host_of(gw), ECHO))) == "hi there"
    # Within the allowed skew (300 s) either way.
    assert echoed(post(gw, creds, signed_headers(creds, host_of(gw), ECHO, skew=-250))) == "hi there"
    assert echoed(post(gw, creds, signed_headers(creds, host_of(gw), ECHO, skew=250))) == "hi there"


def test_a_signature_without_date_or_too_far_off_is_refused(
    gw: GatewayProcess, creds: dict[str, str]
) -> None:
    headers = signed_headers(creds, host_of(gw), ECHO)
    del headers["Date"]
    assert "has no date" in refused(post(gw, creds, headers))
    assert "behind the gateway's clock" in refused(
        post(gw, creds, signed_headers(creds, host_of(gw), ECHO, skew=-400))
    )
    assert "ahead of the gateway's clock" in refused(
        post(gw, creds, signed_headers(creds, host_of(gw), ECHO, skew=400))
    )
    bad = signed_headers(creds, host_of(gw), ECHO)
    bad["Date"] = "yesterday"
    assert "not an RFC 1123 date" in refused(post(gw, creds, bad))


def test_a_malformed_authorization_is_refused(gw: GatewayProcess, creds: dict[str, str]) -> None:
    date = rfc1123(time.time())
    assert "malformed" in refused(post(gw, creds, {"Authorization": "Bearer abc", "Date": date}))
    extra = extras(creds, "POST")
    other = authorization(creds["api_key"], creds["api_secret"], host_of(gw), date, "POST", ECHO, extra)
    other = other.replace("hmac-sha256", "hmac-sha1")
    assert "hmac-sha1" in refused(post(gw, creds, {"Authorization": other, "Date": date}))


# -- HTTP: HMAC, query form -----------------------------------------------------------------------


def test_a_signed_request_in_the_query_form(gw: GatewayProcess, creds: dict[str, str]) -> None:
    query = signed_query(creds, host_of(gw), ECHO, method="POST")
    assert echoed(post(gw, creds, {}, path=f"{ECHO}?{query}")) == "hi there"
    # The query form signs a host of its own: it must be the one the request went to.
    other = signed_query(creds, host_of(gw), ECHO, method="POST", sign_host="evil.example")
    assert "is not this request's Host" in refused(post(gw, creds, {}, path=f"{ECHO}?{other}"))
    # Signed for GET (a WebSocket) but sent as a POST: it covers no body.
    get = signed_query(creds, host_of(gw), ECHO, method="GET")
    assert "does not cover" in refused(post(gw, creds, {}, path=f"{ECHO}?{get}"))


def test_a_signed_request_is_taken_once_and_covers_its_body_and_query(
    gw: GatewayProcess, creds: dict[str, str]
) -> None:
    headers = signed_headers(creds, host_of(gw), ECHO)
    assert echoed(post(gw, creds, headers)) == "hi there"
    assert "used already (a replay)" in refused(post(gw, creds, headers))
    # Another body under the signature of this one.
    headers = signed_headers(creds, host_of(gw), ECHO)
    other = orjson.dumps(once_body("hi there!", app_id=creds["app_id"]))
    assert "not the one signed" in refused(gw.post(ECHO, other, headers=headers))
    # A body the signature does not cover at all (the seed's three headers only).
    date = rfc1123(time.time())
    bare = authorization(creds["api_key"], creds["api_secret"], host_of(gw), date, "POST", ECHO)
    assert "does not cover" in refused(post(gw, creds, {"Authorization": bare, "Date": date}))
    # A query string added to a signed request.
    headers = signed_headers(creds, host_of(gw), ECHO)
    assert "does not match" in refused(post(gw, creds, headers, path=f"{ECHO}?x=1"))
    headers = signed_headers(creds, host_of(gw), ECHO, sign_path=f"{ECHO}?x=1")
    assert echoed(post(gw, creds, headers, path=f"{ECHO}?x=1")) == "hi there"


def test_the_readmes_signing_example_is_taken(gw: GatewayProcess, creds: dict[str, str]) -> None:
    """The README's `sign()` (Authentication and consumers) run as written, then with real values."""
    section = README.read_text().split("### Authentication and consumers", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block in the README's Authentication section"
    names: dict[str, Any] = {}
    exec(match.group(1), names)  # defines sign() and signs an example request
    body = hi_body(creds)
    headers = names["sign"](creds["api_key"], creds["api_secret"], host_of(gw), "POST", ECHO, body)
    assert echoed(gw.post(ECHO, body, headers=headers)) == "hi there"


# -- WebSocket ------------------------------------------------------------------------------------


def first_frame(app_id: str, text: str, status: int = 2) -> str:
    payload = {"text": {"encoding": "utf8", "status": status, "text": b64(text)}}
    return orjson.dumps({"header": {"app_id": app_id, "status": status}, "payload": payload}).decode()


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


def ws_text(frames: list[dict[str, Any]]) -> str:
    assert frames and frames[-1]["header"]["status"] == 2, frames
    return "".join(unb64(f["payload"]["echo"]["text"]).decode() for f in frames if f.get("payload"))


def test_a_session_signed_in_the_query_form(gw: GatewayProcess, creds: dict[str, str]) -> None:
    url = f"{gw.ws_url}{STREAM}?{signed_query(creds, host_of(gw), STREAM)}"
    assert ws_text(asyncio.run(session(url, creds["app_id"]))) == "over ws"


def test_a_session_with_a_key_or_signed_headers(gw: GatewayProcess, creds: dict[str, str]) -> None:
    url = f"{gw.ws_url}{STREAM}"
    assert ws_text(asyncio.run(session(url, creds["app_id"], {"X-Api-Key": creds["api_key"]}))) == "over ws"
    signed = signed_headers(creds, host_of(gw), STREAM, method="GET")
    assert ws_text(asyncio.run(session(url, creds["app_id"], signed))) == "over ws"
    assert ws_text(asyncio.run(session(f"{url}?apikey={creds['api_key']}", creds["app_id"]))) == "over ws"


def test_sessions_without_or_with_bad_credentials_are_refused_in_the_handshake(
    gw: GatewayProcess, creds: dict[str, str]
) -> None:
    url = f"{gw.ws_url}{STREAM}"
    status, doc = ws_refusal(url, creds["app_id"])
    assert (status, doc["header"]["code"]) == (401, 10401)
    wrong_secret = {"api_key": creds["api_key"], "api_secret": "nope"}
    status, doc = ws_refusal(f"{url}?{signed_query(wrong_secret, host_of(gw), STREAM)}", creds["app_id"])
    assert (status, doc["header"]["code"]) == (401, 10401) and "does not match" in doc["header"]["message"]
    # Signed for another route.
    status, doc = ws_refusal(f"{url}?{signed_query(creds, host_of(gw), ECHO)}", creds["app_id"])
    assert "does not match" in doc["header"]["message"]
    stale = signed_headers(creds, host_of(gw), STREAM, method="GET", skew=-301)
    status, doc = ws_refusal(url, creds["app_id"], stale)
    assert status == 401 and "behind the gateway's clock" in doc["header"]["message"]


def test_a_session_with_another_app_id_ends_with_10313(gw: GatewayProcess, creds: dict[str, str]) -> None:
    frames = asyncio.run(session(f"{gw.ws_url}{STREAM}", "not-mine", {"X-Api-Key": creds["api_key"]}))
    assert frames[-1]["header"]["code"] == 10313


# -- every negative case, in both forms, over HTTP and over WebSocket ----------------------------

CASES = {
    # case: (what the gateway says, per form)
    "wrong-secret": {"header": "the signature does not match", "query": "the signature does not match"},
    "wrong-key": {"header": "no consumer has the api_key", "query": "no consumer has the api_key"},
    "missing-date": {"header": "has no date: send a Date header", "query": "has no date: send a date query"},
    "skew": {"header": "behind the gateway's clock", "query": "behind the gateway's clock"},
    "tampered-path": {"header": "the signature does not match", "query": "the signature does not match"},
    "other-host": {"header": "the signature does not match", "query": "is not this request's Host"},
}


def credentials(
    creds: dict[str, str], host: str, method: str, path: str, form: str, case: str = "ok"
) -> tuple[str, dict[str, str]]:
    """(query string, headers) of a request signed as ``case`` says, in ``form``."""
    key, secret, sign_host, sign_path, skew = creds["api_key"], creds["api_secret"], host, path, 0.0
    if case == "wrong-secret":
        secret = "not-the-secret"
    elif case == "wrong-key":
        key = "0123456789abcdef0123456789abcdef"
    elif case == "tampered-path":
        sign_path = "/v1/private/other"
    elif case == "other-host":
        sign_host = "evil.example:443"
    elif case == "skew":
        skew = -301.0
    date = rfc1123(time.time() + skew)
    extra = extras(creds, method)
    auth = authorization(key, secret, sign_host, date, method, sign_path, extra)
    if form == "header":
        headers = {"Authorization": auth, "Date": date, **extra}
        if case == "missing-date":
            del headers["Date"]
        return "", headers
    query = {
        "authorization": base64.b64encode(auth.encode()).decode(),
        "date": date,
        "host": sign_host,
        **extra,
    }
    if case == "missing-date":
        del query["date"]
    return "?" + urlencode(query), {}


@pytest.mark.parametrize("form", ["header", "query"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_signature_is_refused_over_http(
    gw: GatewayProcess, creds: dict[str, str], case: str, form: str
) -> None:
    query, headers = credentials(creds, host_of(gw), "POST", ECHO, form, case)
    message = refused(post(gw, creds, headers, path=ECHO + query))
    assert CASES[case][form] in message
    assert creds["api_secret"] not in message


@pytest.mark.parametrize("form", ["header", "query"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_signature_is_refused_in_the_websocket_handshake(
    gw: GatewayProcess, creds: dict[str, str], case: str, form: str
) -> None:
    query, headers = credentials(creds, host_of(gw), "GET", STREAM, form, case)
    status, doc = ws_refusal(f"{gw.ws_url}{STREAM}{query}", creds["app_id"], headers)
    assert (status, doc["header"]["code"]) == (401, 10401)
    assert CASES[case][form] in doc["header"]["message"]


@pytest.mark.parametrize("form", ["header", "query"])
def test_a_good_signature_passes_in_both_forms_over_both(
    gw: GatewayProcess, creds: dict[str, str], form: str
) -> None:
    query, headers = credentials(creds, host_of(gw), "POST", ECHO, form)
    assert echoed(post(gw, creds, headers, path=ECHO + query)) == "hi there"
    query, headers = credentials(creds, host_of(gw), "GET", STREAM, form)
    assert ws_text(asyncio.run(session(f"{gw.ws_url}{STREAM}{query}", creds["app_id"], headers))) == "over ws"


# -- consumers change while the gateway runs ------------------------------------------------------


def test_rotate_retires_the_old_key_and_secret(cluster: Cluster, gw: GatewayProcess) -> None:
    old = cluster.consumer(name="rotating")
    wait_for(
        lambda: post(gw, old, {"X-Api-Key": old["api_key"]}).status_code == 200, 10, "new consumer known"
    )
    new = cluster.consumers(lambda store: store.rotate(old["app_id"])).doc()
    assert new["app_id"] == old["app_id"] and new["api_key"] != old["api_key"]
    wait_for(lambda: post(gw, new, {"X-Api-Key": new["api_key"]}).status_code == 200, 10, "rotated key known")
    refused(post(gw, old, {"X-Api-Key": old["api_key"]}))
    refused(post(gw, old, signed_headers(old, host_of(gw), ECHO)))
    for form in ("header", "query"):
        query, headers = credentials(old, host_of(gw), "GET", STREAM, form)
        assert ws_refusal(f"{gw.ws_url}{STREAM}{query}", old["app_id"], headers)[0] == 401
    assert ws_refusal(f"{gw.ws_url}{STREAM}", old["app_id"], {"X-Api-Key": old["api_key"]})[0] == 401
    query, headers = credentials(new, host_of(gw), "GET", STREAM, "query")
    assert ws_text(asyncio.run(session(f"{gw.ws_url}{STREAM}{query}", new["app_id"], headers))) == "over ws"
    assert echoed(post(gw, new, signed_headers(new, host_of(gw), ECHO))) == "hi there"
    cluster.consumers(lambda store: store.remove(old["app_id"]))
    wait_for(
        lambda: post(gw, new, {"X-Api-Key": new["api_key"]}).status_code == 401, 10, "removed consumer gone"
    )


def test_a_consumer_may_call_only_its_services(cluster: Cluster, gw: GatewayProcess) -> None:
    only = cluster.consumer(name="stream only", services=["stream_echo"])
    key = {"X-Api-Key": only["api_key"]}
    wait_for(lambda: post(gw, only, key).status_code == 403, 10, "the restricted consumer known")
    message = refused(post(gw, only, key), 10403, 403)
    assert "may not call echo" in message and "stream_echo" in message
    assert ws_text(asyncio.run(session(f"{gw.ws_url}{STREAM}", only["app_id"], key))) == "over ws"
    cluster.consumers(lambda store: store.update(only["app_id"], services=()))
    wait_for(lambda: post(gw, only, key).status_code == 200, 10, "the consumer allowed every service")


# -- secrets stay out of logs and metrics ---------------------------------------------------------


def test_no_secret_in_the_log_or_the_metrics(gw: GatewayProcess, creds: dict[str, str]) -> None:
    signed = signed_headers(creds, host_of(gw), ECHO)
    echoed(post(gw, creds, signed))
    echoed(post(gw, creds, {}, path=f"{ECHO}?apikey={creds['api_key']}"))
    refused(post(gw, creds, signed_headers(creds, host_of(gw), ECHO, secret="x")))
    signature = signed["Authorization"].rsplit('signature="', 1)[1].rstrip('"')
    wait_for(lambda: "sid=" in gw.log(), 5, "access log lines")
    log, metrics = gw.log(), gw.client.get("/metrics").text
    for secret in (creds["api_key"], creds["api_secret"], signature):
        assert secret not in log and secret not in metrics
    health = gw.health()
    assert health["auth"]["mode"] == "gateway" and health["auth"]["consumers"] >= 1
    assert creds["api_key"] not in orjson.dumps(health).decode()
