"""The embedded centre's access rules in-process: roles, redaction, and the failed-login throttle
with an injected clock (the real server's answers are in test_embedded_access.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import orjson
import pytest

from ase_serving.gateway.consumer_book import ConsumerBook
from ase_serving.store.consumers import ConsumerRecord, key_digest, new_credentials, record_for
from ase_serving.store.embedded import accounts as accounts_mod
from ase_serving.store.embedded import roles
from ase_serving.store.embedded.accounts import Accounts, Throttled
from ase_serving.store.embedded.db import KVDB
from ase_serving.store.embedded.throttle import LoginThrottle, client_key
from ase_serving.store.kv_engine import KVEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "readable", "refused", "writes", "secrets"),
    [
        (
            None,
            ["/ase/config/p/", "/ase/history/p", "/ase/instances/s/1/"],
            ["/ase/consumers/", "/ase/", ""],
            False,
            False,
        ),
        (
            "reader",
            ["/ase/config/", "/ase/instances/", "/ase/consumers/p/a"],
            ["/ase/secrets/wire", "/ase/consumers", "/x", ""],
            False,
            False,
        ),
        ("gateway", ["/ase/consumers/p/", "/ase/secrets/wire", "/ase/", ""], [], False, True),
        ("writer", ["/ase/consumers/p/", "/ase/secrets/wire", ""], [], True, True),
        ("admin", ["/ase/secrets/wire", ""], [], True, True),
        ("root", [], ["/ase/config/", ""], False, False),  # a role this version does not know
    ],
)
def test_what_each_role_may_read_and_write(
    role: str | None, readable: list[str], refused: list[str], writes: bool, secrets: bool
) -> None:
    assert [p for p in readable if not roles.can_read(role, p)] == []
    assert [p for p in refused if roles.can_read(role, p)] == []
    assert (role is not None and roles.can_write(role)) is writes
    assert roles.shows_secrets(role) is secrets


def test_a_consumer_record_is_redacted_to_its_public_fields() -> None:
    creds = new_credentials("app1")
    record = record_for(creds, name="demo", services=("echo",), rps=3)
    raw = record.to_json()
    shown = roles.redact("/ase/consumers/p/app1", raw)
    doc = orjson.loads(shown)
    assert "secret" not in doc and "key_sha256" not in doc
    assert creds.api_secret.encode() not in shown and key_digest(creds.api_key).encode() not in shown
    assert {k: doc[k] for k in record.public()} == record.public()
    # A field added to the record later is left out until it is named public.
    extra = orjson.dumps({**orjson.loads(raw), "signing_key": "s3cret"})
    assert b"s3cret" not in roles.redact("/ase/consumers/p/app1", extra)
    # Not a JSON object: nothing; not a consumer: as it is; a delete's empty value: empty.
    assert roles.redact("/ase/consumers/p/x", b"s3cret") == b""
    assert roles.redact("/ase/consumers/p/x", b'"s3cret"') == b""
    assert roles.redact("/ase/config/p/x", b"s3cret") == b"s3cret"
    assert roles.redact("/ase/consumers/p/x", b"") == b""


def test_every_consumer_field_is_either_public_or_a_secret() -> None:
    """A field added to ConsumerRecord must be named public here or stay hidden from readers."""
    fields = {f.name for f in dataclasses.fields(ConsumerRecord)}
    secret = {"key_sha256", "secret"}
    assert fields - secret <= roles.CONSUMER_PUBLIC
    assert not secret & roles.CONSUMER_PUBLIC
    creds = new_credentials("app1")
    assert set(record_for(creds).public()) <= roles.CONSUMER_PUBLIC


def test_a_gateway_served_redacted_records_takes_none_and_says_why() -> None:
    creds = new_credentials("app1")
    key = "/ase/consumers/p/app1"
    redacted = roles.redact(key, record_for(creds).to_json())
    book = ConsumerBook()
    book.apply([KVEvent("put", key, redacted, 1)])
    assert len(book) == 0 and book.by_key(creds.api_key) is None
    assert "may not read secrets (give it the role gateway)" in book.bad[key]
    # The same record with its secrets is taken.
    book.apply([KVEvent("put", key, record_for(creds).to_json(), 2)])
    assert book.bad == {} and book.by_key(creds.api_key) is not None


# -- the throttle --------------------------------------------------------------------------------


def test_failures_close_a_client_out_for_doubling_waits_up_to_the_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(free=3, base=1.0, cap=8.0, clock=clock)
    waits = []
    for _ in range(2):
        throttle.failed("a")
        waits.append(throttle.wait("a"))
    assert waits == [0.0, 0.0]
    for _ in range(5):
        throttle.failed("a")
        wait = throttle.wait("a")
        waits.append(wait)
        clock.now += wait
        assert throttle.wait("a") == 0.0
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    throttle.failed("a")
    assert throttle.wait("b") == 0.0  # another client is not slowed
    clock.now += 3.0
    assert throttle.wait("a") == 5.0
    # A success forgets the failures: the next ones are free again.
    throttle.succeeded("a")
    for _ in range(2):
        throttle.failed("a")
    assert throttle.wait("a") == 0.0


def test_the_table_is_bounded_and_forgets_quiet_clients() -> None:
    clock = Clock()
    throttle = LoginThrottle(free=1, base=10.0, cap=10.0, size=3, forget=100.0, clock=clock)
    for client in ("a", "b", "c", "d"):
        throttle.failed(client)
        clock.now += 1
    assert len(throttle) == 3
    assert throttle.wait("a") == 0.0  # the one that failed longest ago was forgotten
    assert throttle.wait("d") == 10.0 - 1
    throttle.failed("b")  # b is now the most recent: c goes when e comes
    throttle.failed("e")
    assert (throttle.wait("c"), throttle.wait("b") > 0) == (0.0, True)
    clock.now += 100.0
    assert throttle.wait("b") == 0.0 and throttle.wait("e") == 0.0
    throttle.failed("f")
    assert len(throttle) == 1  # the forgotten ones were dropped to make room


def test_a_client_is_counted_by_its_address_and_an_ipv6_one_by_its_64() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("") == "" and client_key("unix") == "unix"


def test_the_throttle_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        LoginThrottle(free=0)
    with pytest.raises(ValueError):
        LoginThrottle(base=10.0, cap=5.0)


def test_a_slowed_client_runs_no_scrypt_and_a_verified_login_still_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scrypts: list[str] = []
    real = accounts_mod._hash

    def counted(password: str, salt: bytes) -> bytes:
        scrypts.append(password)
        return real(password, salt)

    clock = Clock()
    db = KVDB(tmp_path / "s.db")
    accounts = Accounts(db, LoginThrottle(free=5, base=30.0, cap=60.0, clock=clock))
    accounts.add("admin", "right", "admin")
    accounts.add("w", "w-pw", "writer")
    monkeypatch.setattr(accounts_mod, "_hash", counted)

    async def body() -> None:
        assert (await accounts.check("admin", "right", "10.0.0.1")) == accounts_mod.Account("admin", "admin")
        # 20 guesses at once from one client: one at a time, 5 scrypts, then refused at once.
        scrypts.clear()
        got = await asyncio.gather(
            *(accounts.check("admin", f"guess{i}", "10.0.0.2") for i in range(20)), return_exceptions=True
        )
        assert got[:5] == [None] * 5
        assert all(isinstance(g, Throttled) for g in got[5:]), got
        assert len(scrypts) == 5
        assert accounts.stats == {"checked": 6, "failed": 5, "throttled": 15}
        with pytest.raises(Throttled, match=r"too many failed logins from 10\.0\.0\.2: try again in 30 s"):
            await accounts.check("w", "w-pw", "10.0.0.2")  # right, but it would need scrypt
        assert len(scrypts) == 5
        # A login verified before costs nothing and passes; another client is not slowed.
        assert (await accounts.check("admin", "right", "10.0.0.2")) is not None
        assert (await accounts.check("admin", "guess", "10.0.0.3")) is None
        # Once the wait is over: one try; right, it forgets the failures.
        clock.now += 30.0
        assert (await accounts.check("w", "w-pw", "10.0.0.2")) is not None
        for _ in range(4):
            assert (await accounts.check("admin", "guess", "10.0.0.2")) is None
        assert len(accounts.throttle) == 2

    try:
        asyncio.run(body())
    finally:
        db.close()


def test_an_unknown_account_costs_the_same_scrypt_as_a_wrong_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time of a refusal must not tell a guesser which account names exist."""
    salts: list[bytes] = []
    real = accounts_mod._hash

    def counted(password: str, salt: bytes) -> bytes:
        salts.append(salt)
        return real(password, salt)

    clock = Clock()
    db = KVDB(tmp_path / "s.db")
    accounts = Accounts(db, LoginThrottle(free=2, base=30.0, cap=60.0, clock=clock))
    accounts.add("admin", "right", "admin")
    monkeypatch.setattr(accounts_mod, "_hash", counted)

    async def body() -> None:
        assert (await accounts.check("admin", "wrong", "10.0.0.1")) is None
        assert (await accounts.check("nobody", "right", "10.0.0.1")) is None
        assert (await accounts.check("nobody", "other", "10.0.0.2")) is None
        # Three scrypt runs; the unknown name's with one salt of the process's own, not an account's.
        assert len(salts) == 3 and salts[1] == salts[2] != salts[0]
        assert accounts.stats == {"checked": 3, "failed": 3, "throttled": 0}
        # And it counts as a failure like any other: 10.0.0.1 is now slowed.
        with pytest.raises(Throttled):
            await accounts.check("nobody", "x", "10.0.0.1")
        assert len(salts) == 3

    try:
        asyncio.run(body())
    finally:
        db.close()
