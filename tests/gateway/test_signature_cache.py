"""KeyAuth remembers signatures it verified: the same signed request again costs no HMAC, but
the date window and the consumer record are checked every time (in-process, an injected clock)."""

from __future__ import annotations

import dataclasses
import email.utils
from typing import Any

import pytest

from ase_serving.client.signing import sign
from ase_serving.gateway import auth as auth_mod
from ase_serving.gateway.auth import AuthFailed, ConsumerBook, KeyAuth
from ase_serving.gateway.consumers import ConsumerRecord, key_digest

T0 = 1_800_000_000.0


def _record(secret: str, key: str = "k" * 32) -> ConsumerRecord:
    return ConsumerRecord(app_id="app1", key_sha256=key_digest(key), secret=secret)


def _scope(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/private/echo",
        "raw_path": b"/v1/private/echo",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_a_verified_signature_is_remembered_but_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [T0]
    book = ConsumerBook([_record("s1")])
    keyauth = KeyAuth(book, max_skew=300, clock=lambda: now[0])
    date = email.utils.formatdate(T0, usegmt=True)
    scope = _scope(sign("POST", "gw:2392", "/v1/private/echo", "k" * 32, "s1", date))
    calls = []
    real = auth_mod.signature
    monkeypatch.setattr(auth_mod, "signature", lambda *a: calls.append(a) or real(*a))

    assert keyauth.authenticate(scope, "echo").app_id == "app1"
    assert keyauth.authenticate(scope, "echo").app_id == "app1"
    assert len(calls) == 1  # the second time: no HMAC

    # The date window still holds for a remembered signature.
    now[0] = T0 + 301
    with pytest.raises(AuthFailed, match="behind the gateway's clock"):
        keyauth.authenticate(scope, "echo")
    now[0] = T0

    # A rotated secret is a new record: the old signature is verified again, and fails.
    book._put(_record("s2"))
    with pytest.raises(AuthFailed, match="the signature does not match"):
        keyauth.authenticate(scope, "echo")

    # Another path with the same signature is not the signed request.
    book._put(_record("s1"))
    other = {**scope, "path": "/v1/private/other", "raw_path": b"/v1/private/other"}
    with pytest.raises(AuthFailed, match="the signature does not match"):
        keyauth.authenticate(other, "echo")


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
