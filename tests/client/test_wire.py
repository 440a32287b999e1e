"""The client's wire format without a server: the signature, request bodies, session frames, answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from ase_serving.client import AseClientError, Client, Credentials, sign, sign_query
from ase_serving.client.core import ClientCore, decode_body, payload_entry
from ase_serving.client.signing import host_of
from ase_serving.client.stream import SessionState

DATE = "Tue, 12 May 2026 08:30:00 GMT"
KEY, SECRET = "key-7f3a", "secret-c41d9e"


def expected_signature(method: str, host: str, path: str, *extra: str, date: str = DATE) -> str:
    # docs/protocol.md, by hand: base64(hmac_sha256(api_secret, "host: ..\ndate: ..\nMETHOD path HTTP/1.1"
    # then one "name: value" line per further signed header)).
    text = "\n".join(["host: " + host, "date: " + date, method + " " + path + " HTTP/1.1", *extra])
    return base64.b64encode(hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).digest()).decode()


def test_sign_gives_the_headers_of_protocol_md() -> None:
    got = sign("post", "127.0.0.1:2392", "/v1/private/echo", KEY, SECRET, date=DATE, nonce=False)
    sig = expected_signature("POST", "127.0.0.1:2392", "/v1/private/echo")
    assert got == {
        "Host": "127.0.0.1:2392",
        "Date": DATE,
        "Authorization": (
            f'api_key="{KEY}", algorithm="hmac-sha256", headers="host date request-line", signature="{sig}"'
        ),
    }


def test_a_body_is_signed_by_its_digest_and_a_nonce_makes_each_signature_unique() -> None:
    body = b'{"header":{"app_id":"app"}}'
    got = sign("POST", "h:1", "/v1/private/echo", KEY, SECRET, date=DATE, body=body, nonce="n-1")
    digest = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    sig = expected_signature("POST", "h:1", "/v1/private/echo", f"digest: {digest}", "x-nonce: n-1")
    assert got["Digest"] == digest and got["X-Nonce"] == "n-1"
    assert got["Authorization"] == (
        f'api_key="{KEY}", algorithm="hmac-sha256", headers="host date request-line digest x-nonce", '
        f'signature="{sig}"'
    )
    # The default nonce is fresh each time: two identical requests are two signatures.
    one, two = (sign("POST", "h:1", "/r", KEY, SECRET, date=DATE, body=body) for _ in range(2))
    assert one["X-Nonce"] != two["X-Nonce"] and one["Authorization"] != two["Authorization"]


def test_a_known_signature_for_fixed_inputs() -> None:
    # Computed once with `openssl dgst -sha256 -hmac secret-c41d9e -binary | base64` over the
    # string to sign: a value no code of this package produced.
    got = sign("GET", "127.0.0.1:2392", "/v1/private/stream_echo", KEY, SECRET, date=DATE, nonce=False)
    assert expected_signature("GET", "127.0.0.1:2392", "/v1/private/stream_echo") in got["Authorization"]
    assert 'signature="3ZjLoJ6dshHK2uLzN5xQnnyEKx1i4zg8PKWni3TffNg="' in got["Authorization"]


def test_sign_query_is_the_base64_of_the_header_form() -> None:
    headers = sign("GET", "h:1", "/r", KEY, SECRET, date=DATE, nonce="n-2")
    query = sign_query("GET", "h:1", "/r", KEY, SECRET, date=DATE, nonce="n-2")
    assert query == {
        "authorization": base64.b64encode(headers["Authorization"].encode()).decode(),
        "date": DATE,
        "host": "h:1",
        "x-nonce": "n-2",
    }


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:2392/v1/x", "127.0.0.1:2392"),
        ("http://Example.COM:80/x", "example.com"),
        ("wss://gw.example:443/x?a=1", "gw.example"),
        ("ws://[::1]:8080/x", "[::1]:8080"),
    ],
)
def test_host_is_what_the_client_puts_in_the_host_header(url: str, host: str) -> None:
    assert host_of(url) == host


def test_http_signing_covers_the_query_and_the_body() -> None:
    creds = Credentials("app", KEY, SECRET)
    body = b'{"x":1}'
    headers = creds.http_headers("POST", "http://127.0.0.1:9/v1/private/echo?a=1&b=2", body)
    sig = expected_signature(
        "POST",
        "127.0.0.1:9",
        "/v1/private/echo?a=1&b=2",
        f"digest: {headers['Digest']}",
        f"x-nonce: {headers['X-Nonce']}",
        date=headers["Date"],
    )
    assert headers["Digest"] == "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert f'signature="{sig}"' in headers["Authorization"]
    assert Credentials("app", KEY).http_headers("POST", "http://h/x") == {"X-Api-Key": KEY}
    assert Credentials("app").http_headers("POST", "http://h/x") == {}


def test_websocket_credentials_in_the_query_or_in_headers() -> None:
    url, headers = Credentials("app", KEY, SECRET).websocket("ws://127.0.0.1:9/v1/private/s")
    assert headers == {}
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    origin = base64.b64decode(q["authorization"]).decode()
    sig = expected_signature(
        "GET", "127.0.0.1:9", "/v1/private/s", f"x-nonce: {q['x-nonce']}", date=q["date"]
    )
    assert origin.endswith(f'signature="{sig}"') and q["host"] == "127.0.0.1:9"
    url, headers = Credentials("app", KEY, SECRET).websocket("ws://127.0.0.1:9/s", query=False)
    assert url == "ws://127.0.0.1:9/s" and set(headers) == {"Date", "Authorization", "X-Nonce"}
    assert Credentials("app", KEY).websocket("ws://h/s")[0] == f"ws://h/s?apikey={KEY}"
    assert Credentials("app", KEY).websocket("ws://h/s", query=False) == ("ws://h/s", {"X-Api-Key": KEY})


def test_bad_credentials_and_urls_are_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="app_id"):
        Credentials("")
    with pytest.raises(ValueError, match="without api_key"):
        Credentials("app", None, SECRET)
    with pytest.raises(ValueError, match=r"http\(s\) address"):
        ClientCore("127.0.0.1:2392", "app")


def test_secrets_are_not_in_repr() -> None:
    with Client("http://127.0.0.1:9", "app", KEY, SECRET) as client:
        text = repr(client) + repr(client.credentials)
    assert KEY not in text and SECRET not in text
    assert "hmac" in text and "app" in text


def test_once_body_layout() -> None:
    core = ClientCore("http://h:1", "app")
    body = orjson.loads(
        core.once_body("echo", {"speed": 5}, {"text": "hé", "raw": b"\x00\xff"}, {"uid": "u-1", "status": 0})
    )
    assert body == {
        "header": {"app_id": "app", "uid": "u-1", "status": 3},
        "parameter": {"echo": {"speed": 5}},
        "payload": {
            "text": {"encoding": "utf8", "status": 3, "text": base64.b64encode("hé".encode()).decode()},
            "raw": {"encoding": "utf8", "status": 3, "text": "AP8="},
        },
    }
    # A route instead of a serviceId: parameters only when given, under the route's last part.
    assert "parameter" not in orjson.loads(core.once_body("/v1/private/echo", None, None, None))
    assert orjson.loads(core.once_body("/v1/private/echo", {"a": 1}, None, None))["parameter"] == {
        "echo": {"a": 1}
    }


def test_payload_items_with_attributes() -> None:
    entry = payload_entry("audio", {"audio": b"\x01\x02", "encoding": "raw", "sample_rate": 16000}, 1)
    assert entry == {"encoding": "raw", "sample_rate": 16000, "status": 1, "audio": "AQI="}
    with pytest.raises(ValueError, match="exactly one data field"):
        payload_entry("x", {"text": b"a", "audio": b"b"}, 3)
    with pytest.raises(ValueError, match="found none"):
        payload_entry("x", {"encoding": "raw"}, 3)
    with pytest.raises(TypeError, match=r"payload\['x'\] must be str, bytes or a mapping"):
        payload_entry("x", 42, 3)
    with pytest.raises(TypeError, match="must be bytes or str, not int"):
        payload_entry("x", {"audio": 42}, 3)


def test_session_frames_layout() -> None:
    st = SessionState(
        ClientCore("http://h:1", "app"), "stream_echo", "/v1/private/stream_echo", {"v": 1}, None
    )
    first = orjson.loads(st.frame({"text": "a"}, None))
    assert first == {
        "header": {"app_id": "app", "status": 0},
        "parameter": {"stream_echo": {"v": 1}},
        "payload": {"text": {"encoding": "utf8", "status": 0, "text": "YQ=="}},
    }
    assert orjson.loads(st.frame({"text": "b"}, None)) == {
        "header": {"status": 1},
        "payload": {"text": {"encoding": "utf8", "status": 1, "text": "Yg=="}},
    }
    with pytest.raises(ValueError, match="first frame only"):
        st.frame(None, 0)
    assert orjson.loads(st.frame(None, 2)) == {"header": {"status": 2}}
    with pytest.raises(AseClientError) as info:
        st.frame({"text": "late"}, None)
    assert info.value.code == 10202


def test_answers_decode_and_errors_raise() -> None:
    ok = decode_body(
        b'{"header": {"code": 0, "message": "success", "sid": "s1"},'
        b' "payload": {"out": {"encoding": "utf8", "status": 3, "text": "aMOp"}}}',
        "http://h/x",
        200,
    )
    assert (ok.code, ok.sid, ok.status, ok["out"].text, ok["out"].encoding) == (0, "s1", 3, "hé", "utf8")
    with pytest.raises(KeyError, match="outputs: out"):
        ok["nope"]
    with pytest.raises(AseClientError) as info:
        decode_body(b'{"header": {"code": 10163, "message": "bad speed", "sid": "s2"}}', "http://h/x", 400)
    assert (info.value.code, info.value.message, info.value.sid, info.value.http_status) == (
        10163,
        "bad speed",
        "s2",
        400,
    )
    assert str(info.value) == "10163: bad speed (sid s2)"
    with pytest.raises(AseClientError, match="is not JSON") as info:
        decode_body(b"<html>", "http://h/x", 502)
    assert info.value.code == -1 and info.value.http_status == 502
    with pytest.raises(AseClientError, match="not base64"):
        decode_body(b'{"header": {"code": 0}, "payload": {"o": {"text": "!!"}}}', "http://h/x", 200)
