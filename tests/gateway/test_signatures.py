"""KeyAuth's checks of a signature (in-process, an injected clock): each is taken once in its
window, it covers the body (digest), the path and the query, and the host when the gateway knows its
public names; API keys follow the consumer book."""

from __future__ import annotations

import dataclasses
import email.utils
from typing import Any

import pytest

from ase_serving.client.signing import sign
from ase_serving.errors import AuthFailed
from ase_serving.gateway.auth import KeyAuth
from ase_serving.gateway.consumer_book import ConsumerBook
from ase_serving.gateway.signatures import Replays, check_digest
from ase_serving.store.consumers import ConsumerRecord, key_digest

T0 = 1_800_000_000.0


def _record(secret: str, key: str = "k" * 32) -> ConsumerRecord:
    return ConsumerRecord(app_id="app1", key_sha256=key_digest(key), secret=secret)


def _scope(headers: dict[str, str], path: str = "/v1/private/echo", query: str = "") -> dict[str, Any]:
    headers = {"Content-Length": "0", **headers}
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def _signed(secret: str = "s1", body: bytes | None = None, **kw: Any) -> dict[str, Any]:
    """The scope of a request signed at T0 (a body of ``body``: its length and digest)."""
    path, query = kw.pop("path", "/v1/private/echo"), kw.pop("query", "")
    signed_path = kw.pop("signed_path", path + (f"?{query}" if query else ""))
    date = email.utils.formatdate(kw.pop("at", T0), usegmt=True)
    headers = sign("POST", kw.pop("host", "gw:2392"), signed_path, "k" * 32, secret, date, body, **kw)
    if body is not None:
        headers["Content-Length"] = str(len(body))
    return _scope(headers, path, query)


def _auth(**kw: Any) -> tuple[KeyAuth, list[float]]:
    now = [T0]
    return KeyAuth(ConsumerBook([_record("s1")]), max_skew=300, clock=lambda: now[0], **kw), now


def test_a_signature_is_taken_once() -> None:
    keyauth, _ = _auth()
    scope = _signed()
    assert keyauth.authenticate(scope, "echo").app_id == "app1"
    with pytest.raises(AuthFailed, match=r"used already \(a replay\)"):
        keyauth.authenticate(scope, "echo")
    # The same request signed again (a fresh nonce) is another signature.
    assert keyauth.authenticate(_signed(), "echo").app_id == "app1"
    # Without a nonce, the seed's form: the same request in the same second is the same signature.
    assert keyauth.authenticate(_signed(nonce=False), "echo").app_id == "app1"
    with pytest.raises(AuthFailed, match="replay"):
        keyauth.authenticate(_signed(nonce=False), "echo")
    # A gateway told to allow replays (benchmarks) takes it again.
    lax, _ = _auth(replays=False)
    assert lax.authenticate(scope, "echo").app_id == lax.authenticate(scope, "echo").app_id == "app1"


def test_the_window_the_record_and_the_path_are_checked() -> None:
    keyauth, now = _auth()
    now[0] = T0 + 301
    with pytest.raises(AuthFailed, match="behind the gateway's clock"):
        keyauth.authenticate(_signed(), "echo")
    now[0] = T0
    # A rotated secret is a new record: a signature with the old secret fails.
    keyauth.book._put(_record("s2"))
    with pytest.raises(AuthFailed, match="the signature does not match"):
        keyauth.authenticate(_signed("s1"), "echo")
    assert keyauth.authenticate(_signed("s2"), "echo").app_id == "app1"
    # Another path, or another query string, than the one signed.
    with pytest.raises(AuthFailed, match="the signature does not match"):
        keyauth.authenticate(_signed("s2", path="/v1/private/other", signed_path="/v1/private/echo"), "echo")
    with pytest.raises(AuthFailed, match="the signature does not match"):
        keyauth.authenticate(_signed("s2", query="a=2", signed_path="/v1/private/echo?a=1"), "echo")
    assert keyauth.authenticate(_signed("s2", query="a=1"), "echo").app_id == "app1"


def test_a_body_must_be_signed_and_be_the_one_signed() -> None:
    keyauth, _ = _auth()
    body = b'{"header":{"app_id":"app1"}}'
    unsigned = _signed()
    unsigned["headers"] = [(k, v) for k, v in unsigned["headers"] if k != b"content-length"]
    unsigned["headers"].append((b"content-length", str(len(body)).encode()))
    with pytest.raises(AuthFailed, match="a body that the signature does not cover"):
        keyauth.authenticate(unsigned, "echo")

    scope = _signed(body=body)
    assert keyauth.authenticate(scope, "echo").app_id == "app1"
    check_digest(scope, body)
    with pytest.raises(AuthFailed, match="the body is not the one signed"):
        check_digest(scope, body.replace(b"app1", b"app2"))
    # A Digest header the signature does not name is not believed, and a signed one must be there.
    named = _signed(body=body)
    named["headers"] = [(k, v) for k, v in named["headers"] if k != b"digest"]
    with pytest.raises(AuthFailed, match=r"no SHA-256=\.\.\. digest header"):
        keyauth.authenticate(named, "echo")


def test_the_signed_host_must_be_a_public_name_when_names_are_set() -> None:
    keyauth, _ = _auth(public_hosts=["api.example.com", "10.0.0.5:2392"])
    for host in ("api.example.com", "API.example.com:8443", "10.0.0.5:2392"):
        assert keyauth.authenticate(_signed(host=host), "echo").app_id == "app1"
    for host in ("evil.example", "10.0.0.5:2393", "gw:2392"):
        with pytest.raises(AuthFailed, match="is not a name of this gateway"):
            keyauth.authenticate(_signed(host=host), "echo")
    anyhost, _ = _auth()
    assert anyhost.authenticate(_signed(host="evil.example"), "echo").app_id == "app1"


def test_replays_forget_by_time_and_never_reopen_when_full() -> None:
    replays = Replays(max_skew=300, cap=3)
    assert replays.take("a", T0, T0) is None
    assert "used already" in (replays.take("a", T0, T0 + 299) or "")
    # Out of the window it is forgotten (the date check refuses it anyway).
    assert replays.take("b", T0 + 400, T0 + 400) is None
    assert len(replays) == 1
    for sig, when in (("c", T0 + 401), ("d", T0 + 402)):
        assert replays.take(sig, when, T0 + 402) is None
    # Full: the oldest (b, dated T0+400) is forgotten, and nothing dated at or before it is taken.
    assert replays.take("e", T0 + 403, T0 + 403) is None
    assert len(replays) == 3 and replays.floor == T0 + 400
    assert "memory of signatures" in (replays.take("b", T0 + 400, T0 + 403) or "")
    assert "memory of signatures" in (replays.take("new", T0 + 399, T0 + 403) or "")


def test_a_remembered_key_digest_still_follows_the_book() -> None:
    """The API key path remembers digests, not answers: a rotated key is refused at once, the new
    one is taken, and a signature sent along with a key still wins (it is checked, not skipped)."""
    book = ConsumerBook([_record("s1", key="old" * 11)])
    keyauth = KeyAuth(book, clock=lambda: T0)
    old = _scope({"X-Api-Key": "old" * 11})
    assert keyauth.authenticate(old, "echo").app_id == "app1"
    assert keyauth.authenticate(old, "echo").app_id == "app1"  # from the digest cache

    book._put(_record("s1", key="new" * 11))  # `asectl consumer rotate`
    with pytest.raises(AuthFailed, match="no consumer has this API key"):
        keyauth.authenticate(old, "echo")
    new = _scope({"X-Api-Key": "new" * 11})
    assert keyauth.authenticate(new, "echo").rps == 0
    # `asectl consumer set app1 --rps 5`: a new record, so a new Consumer with the new limit.
    book._put(dataclasses.replace(_record("s1", key="new" * 11), rps=5))
    assert keyauth.authenticate(new, "echo").rps == 5

    date = email.utils.formatdate(T0, usegmt=True)
    signed = sign("POST", "gw:2392", "/v1/private/echo", "new" * 11, "wrong", date)
    with pytest.raises(AuthFailed, match="the signature does not match"):
        keyauth.authenticate(_scope({**signed, "X-Api-Key": "new" * 11}), "echo")


def test_public_hosts_are_checked_when_the_gateway_starts() -> None:
    from ase_serving.gateway.settings import GatewaySettings

    ok = GatewaySettings(public_hosts=["api.example.com", "10.0.0.5:2392", "[::1]:2392"])
    assert ok.check() == []
    problems = GatewaySettings(public_hosts=["https://api.example.com/"]).check()
    assert problems == [
        "public host 'https://api.example.com/' is not a host name or address with an optional port "
        "(api.example.com, 10.0.0.5:2392, [::1]:2392)"
    ]
