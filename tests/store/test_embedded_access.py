"""Who may do what in a real embedded config centre: the roles, consumer secrets (never to a reader,
never from history), failed logins slowed per client, and a data file written before roles."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from ase_serving.store import StoreAuthFailed
from ase_serving.store.consumers import ConsumerStore, IssuedCredentials, key_digest
from ase_serving.store.embedded.client import EmbeddedKV
from ase_serving.store.embedded.roles import CAN
from ase_serving.store.kv_engine import KVEvent, Put
from tests.store.conftest import unique
from tests.store.embedded_server import EmbeddedServer, start_embedded
from tests.support import run

T = TypeVar("T")


def add_account(srv: EmbeddedServer, role: str) -> tuple[str, str]:
    """A new account with ``role``, added by admin over HTTP: (name, password)."""
    name, password = unique(role), secrets.token_urlsafe(12)
    resp = httpx.post(
        f"{srv.url}/v1/accounts",
        json={"account": name, "password": password, "role": role},
        auth=(srv.account, srv.password),
    )
    assert resp.status_code == 201, resp.text
    assert resp.json() == {"account": name, "role": role}
    return name, password


async def take(watch: AsyncIterator[list[KVEvent]], count: int) -> list[KVEvent]:
    seen: list[KVEvent] = []
    async for batch in watch:
        seen.extend(batch)
        if len(seen) >= count:
            break
    return seen


# -- what each role may do -----------------------------------------------------------------------

_B64 = base64.b64encode(b"v").decode()


def _operations(tag: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """name -> (method, path, params or JSON body)."""
    return {
        "read config": ("GET", "/v1/get", {"key": f"/ase/config/{tag}/s/1/a"}),
        "list config history": ("GET", "/v1/range", {"prefix": f"/ase/history/{tag}/"}),
        "list the registry": ("GET", "/v1/range", {"prefix": "/ase/instances/"}),
        "watch the registry": ("GET", "/v1/watch", {"prefix": "/ase/instances/", "timeout": "0"}),
        "list consumers": ("GET", "/v1/range", {"prefix": f"/ase/consumers/{tag}/"}),
        "watch consumers": ("GET", "/v1/watch", {"prefix": f"/ase/consumers/{tag}/", "timeout": "0"}),
        "read the cluster secret": ("GET", "/v1/get", {"key": f"/ase/secrets/{tag}"}),
        "watch the cluster secret": ("GET", "/v1/watch", {"prefix": "/ase/secrets/", "timeout": "0"}),
        "read another key": ("GET", "/v1/get", {"key": f"/other/{tag}"}),
        "list everything": ("GET", "/v1/range", {"prefix": "", "keys_only": "1"}),
        "write config": ("POST", "/v1/txn", {"puts": [{"key": f"/ase/config/{tag}/s/1/b", "value": _B64}]}),
        "write a consumer": (
            "POST",
            "/v1/txn",
            {"puts": [{"key": f"/ase/consumers/{tag}/x", "value": _B64}]},
        ),
        "hold a lease": ("POST", "/v1/lease/grant", {"ttl": 5}),
        "add an account": (
            "POST",
            "/v1/accounts",
            {"account": unique("n"), "password": "pw", "role": "reader"},
        ),
    }


_READS = {
    "read config",
    "list config history",
    "list the registry",
    "watch the registry",
    "list consumers",
    "watch consumers",
    "read the cluster secret",
    "watch the cluster secret",
    "read another key",
    "list everything",
}
_OPEN = {"read config", "list config history", "list the registry", "watch the registry"}
ALLOWED = {
    "admin": set(_operations("x")),
    "writer": set(_operations("x")) - {"add an account"},
    "gateway": _READS,
    "reader": _OPEN | {"list consumers", "watch consumers"},
}


@pytest.mark.parametrize("role", ["admin", "writer", "gateway", "reader", None])
def test_each_role_does_what_it_may_and_is_refused_the_rest(
    embedded: EmbeddedServer, role: str | None
) -> None:
    tag = unique("t")
    if role == "admin":
        auth: tuple[str, str] | None = (embedded.account, embedded.password)
    elif role is not None:
        auth = add_account(embedded, role)
    else:
        auth = None
    allowed = ALLOWED[role] if role is not None else _OPEN
    got: dict[str, int] = {}
    with httpx.Client(base_url=embedded.url, auth=auth) as client:
        for name, (method, path, args) in _operations(tag).items():
            resp = client.get(path, params=args) if method == "GET" else client.post(path, json=args)
            got[name] = resp.status_code
            if name in allowed:
                assert resp.status_code in (200, 201), (name, resp.text)
            elif role is None:
                assert resp.status_code == 401, (name, resp.text)
                assert "needs an account" in resp.json()["error"]
            else:
                assert resp.status_code == 403, (name, resp.text)
                doc = resp.json()
                assert doc["code"] == "forbidden"
                assert auth is not None
                who = f"account {auth[0]!r} has the role {role}, which {CAN[role]}: it may not"
                assert who in doc["error"], doc["error"]
    assert {n for n, status in got.items() if status < 300} == allowed


def test_an_account_added_without_a_role_is_a_writer(embedded: EmbeddedServer) -> None:
    """What POST /v1/accounts without a role made before roles (a non-admin) is a writer now."""
    name, password = unique("norole"), secrets.token_urlsafe(12)
    with httpx.Client(base_url=embedded.url, auth=(embedded.account, embedded.password)) as admin:
        resp = admin.post("/v1/accounts", json={"account": name, "password": password})
        assert (resp.status_code, resp.json()) == (201, {"account": name, "role": "writer"})
        for body in ({"role": "root"}, {"role": None}):
            bad = admin.post("/v1/accounts", json={"account": unique("bad"), "password": "pw", **body})
            assert bad.status_code == 400 and "admin, writer, reader, gateway" in bad.json()["error"]
    with httpx.Client(base_url=embedded.url, auth=(name, password)) as client:
        put = {"puts": [{"key": f"/ase/config/{unique('t')}/s/1/a", "value": _B64}]}
        assert client.post("/v1/txn", json=put).status_code == 200
        refused = client.post("/v1/accounts", json={"account": unique("n"), "password": "pw"})
        assert refused.status_code == 403
        assert f"account {name!r} has the role writer" in refused.json()["error"]


# -- consumer secrets ----------------------------------------------------------------------------


class Issued:
    """Every key and secret a test's consumers were given, to look for in what a role is served."""

    def __init__(self) -> None:
        self.creds: list[IssuedCredentials] = []

    def add(self, creds: IssuedCredentials) -> IssuedCredentials:
        self.creds.append(creds)
        return creds

    def found_in(self, value: bytes) -> list[str]:
        needles = []
        for c in self.creds:
            needles += [c.api_secret, c.api_key, key_digest(c.api_key)]
        return [n for n in needles if n.encode() in value]


def _consumers_with_history(embedded: EmbeddedServer, project: str) -> tuple[Issued, IssuedCredentials, int]:
    """In ``project``: consumer a (added, rotated twice), b (added, removed), c (added). Returns
    what was issued, a's current credentials, and the store revision before the first write."""
    issued = Issued()

    async def body() -> tuple[IssuedCredentials, int]:
        admin = EmbeddedKV(embedded.url, embedded.account, embedded.password)
        try:
            store = ConsumerStore(admin, project)
            start = int((await admin.status())["revision"])
            issued.add(await store.add("a", name="first"))
            issued.add(await store.rotate("a"))
            current = issued.add(await store.rotate("a"))
            issued.add(await store.add("b"))
            await store.remove("b")
            issued.add(await store.add("c"))
            return current, start
        finally:
            await admin.close()

    current, start = run(body)
    return issued, current, start


def test_a_reader_never_sees_a_secret(embedded: EmbeddedServer) -> None:
    project = unique("p")
    issued, current, start = _consumers_with_history(embedded, project)
    name, password = add_account(embedded, "reader")
    prefix = f"/ase/consumers/{project}/"

    async def body() -> None:
        reader = EmbeddedKV(embedded.url, name, password)
        admin = EmbeddedKV(embedded.url, embedded.account, embedded.password)
        try:
            entry = await reader.get(prefix + "a")
            assert entry is not None
            doc = orjson.loads(entry.value)
            assert (doc["app_id"], doc["name"], doc["key_id"]) == ("a", "first", current.api_key[:8])
            assert "secret" not in doc and "key_sha256" not in doc
            entries, _ = await reader.range(prefix)
            assert [e.key for e in entries] == [prefix + "a", prefix + "c"]
            # From before the first write: what is there now (a, c) and b's delete, nothing older.
            seen = await asyncio.wait_for(take(reader.watch(prefix, start + 1), 3), 10)
            assert [(e.kind, e.key.rsplit("/", 1)[1]) for e in seen] == [
                ("put", "a"),
                ("delete", "b"),
                ("put", "c"),
            ]
            # A rotation while it watches comes without the new secret too.
            watch = reader.watch(prefix, int((await reader.status())["revision"]) + 1)
            rotation = asyncio.ensure_future(take(watch, 1))
            issued.add(await ConsumerStore(admin, project).rotate("c"))
            live = await asyncio.wait_for(rotation, 10)
            assert [e.key for e in live] == [prefix + "c"]
            values = [e.value for e in [entry, *entries, *seen, *live]]
            assert [issued.found_in(v) for v in values] == [[]] * len(values)
            # asectl consumer list works with a reader: the public fields are all there.
            listed = [r.public() for r in await ConsumerStore(reader, project).list()]
            assert listed == [r.public() for r in await ConsumerStore(admin, project).list()]
        finally:
            await reader.close()
            await admin.close()

    run(body)


@pytest.mark.parametrize("role", ["gateway", "admin"])
def test_current_secrets_but_no_rotated_one_from_history(embedded: EmbeddedServer, role: str) -> None:
    project = unique("p")
    issued, current, start = _consumers_with_history(embedded, project)
    name, password = add_account(embedded, role) if role != "admin" else (embedded.account, embedded.password)
    prefix = f"/ase/consumers/{project}/"

    async def body() -> None:
        kv = EmbeddedKV(embedded.url, name, password)
        try:
            entry = await kv.get(prefix + "a")
            assert entry is not None
            doc = orjson.loads(entry.value)
            assert (doc["secret"], doc["key_sha256"]) == (current.api_secret, key_digest(current.api_key))
            seen = await asyncio.wait_for(take(kv.watch(prefix, start + 1), 3), 10)
            assert [(e.kind, e.key.rsplit("/", 1)[1]) for e in seen] == [
                ("put", "a"),
                ("delete", "b"),
                ("put", "c"),
            ]
            assert seen[0].value == entry.value and seen[1].value == b""
            # Of everything issued, only a's current and c's credentials are served.
            found = {n for e in seen for n in issued.found_in(e.value)}
            c = issued.creds[-1]
            assert found == {
                current.api_secret,
                key_digest(current.api_key),
                c.api_secret,
                key_digest(c.api_key),
            }
        finally:
            await kv.close()

    run(body)


def test_a_reader_may_not_read_the_cluster_secret(embedded: EmbeddedServer) -> None:
    name, password = add_account(embedded, "reader")
    admin = httpx.Client(base_url=embedded.url, auth=(embedded.account, embedded.password))
    with admin:
        key = f"/ase/secrets/{unique('wire')}"
        put = {"puts": [{"key": key, "value": base64.b64encode(b"s3cret").decode()}]}
        assert admin.post("/v1/txn", json=put).status_code == 200
    resp = httpx.get(f"{embedded.url}/v1/get", params={"key": key}, auth=(name, password))
    assert resp.status_code == 403 and f"it may not read {key!r}" in resp.json()["error"]


# -- failed logins -------------------------------------------------------------------------------


class From:
    """HTTP requests to ``srv`` from one client address (all of 127.0.0.0/8 is this host)."""

    def __init__(self, srv: EmbeddedServer, address: str) -> None:
        self.client = httpx.Client(base_url=srv.url, transport=httpx.HTTPTransport(local_address=address))

    def login(self, account: str, password: str) -> httpx.Response:
        return self.client.get("/v1/status", auth=(account, password))

    def statuses(self, account: str, password: str, times: int) -> list[int]:
        return [self.login(account, password).status_code for _ in range(times)]

    def close(self) -> None:
        self.client.close()


def _checked(srv: EmbeddedServer) -> int:
    """Passwords the server has checked with scrypt."""
    return int(httpx.get(f"{srv.url}/v1/status").json()["logins"]["checked"])


@pytest.mark.timeout(120)
def test_failed_logins_are_slowed_per_client(tmp_path: Path) -> None:
    # A first wait far longer than the test: once a client is closed out, it stays so.
    args = ["--login-failures", "5", "--login-backoff", "600", "--login-backoff-max", "600"]
    with start_embedded(tmp_path / "configd", args=args) as srv:
        fresh = [add_account(srv, "writer") for _ in range(3)]
        a, b, c = From(srv, "127.0.0.1"), From(srv, "127.0.0.2"), From(srv, "127.0.0.3")
        try:
            assert a.login(srv.account, srv.password).status_code == 200  # admin's login, now verified
            # A success resets: 4 failures, a right password, then 4 more are all checked.
            assert c.statuses("admin", "wrong", 4) == [401] * 4
            assert c.login(*fresh[0]).status_code == 200
            assert c.statuses("admin", "wrong", 5) == [401] * 5
            # The fifth failure in a row closed c out: refused at once, without scrypt.
            before = _checked(srv)
            refused = c.login("admin", "wrong")
            assert refused.status_code == 429 and refused.json()["code"] == "too_many_requests"
            assert 0 < int(refused.headers["Retry-After"]) <= 600
            assert "too many failed logins from 127.0.0.3" in refused.json()["error"]
            assert c.statuses("admin", "wrong", 10) == [429] * 10
            assert c.login(*fresh[1]).status_code == 429  # right, but it would need scrypt
            assert _checked(srv) == before
            # A login the centre verified before still passes from there; other clients are not slowed.
            assert c.login(srv.account, srv.password).status_code == 200
            assert b.login(*fresh[2]).status_code == 200
            assert b.login("admin", "wrong").status_code == 401
        finally:
            for client in (a, b, c):
                client.close()

        # Parallel guesses from one client are checked one at a time: 5 scrypts, the rest refused.
        async def guesses() -> list[int]:
            transport = httpx.AsyncHTTPTransport(local_address="127.0.0.4")
            async with httpx.AsyncClient(base_url=srv.url, transport=transport) as client:
                answers = await asyncio.gather(
                    *(client.get("/v1/status", auth=("admin", f"guess{i}")) for i in range(20))
                )
            return sorted(r.status_code for r in answers)

        before = _checked(srv)
        assert run(guesses) == [401] * 5 + [429] * 15
        assert _checked(srv) == before + 5


# -- a data file written before roles ------------------------------------------------------------


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


def test_a_data_file_from_before_roles_keeps_its_accounts(tmp_path: Path) -> None:
    data = tmp_path / "configd"
    data.mkdir(mode=0o700)
    conn = sqlite3.connect(data / "store.db")
    conn.execute(
        "CREATE TABLE accounts (name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, "
        "admin INTEGER NOT NULL)"
    )
    rows = [("admin", b"salt-admin-0001", 1, "admin-pw"), ("ops", b"salt-ops-000001", 0, "ops-pw")]
    for name, salt, admin, password in rows:
        conn.execute("INSERT INTO accounts VALUES (?, ?, ?, ?)", (name, salt, _scrypt(password, salt), admin))
    conn.commit()
    conn.close()
    (data / "admin.password").write_text("admin-pw\n")
    with start_embedded(data) as srv:
        assert srv.password == "admin-pw"

        async def body() -> None:
            admin = EmbeddedKV(srv.url, "admin", "admin-pw")
            ops = EmbeddedKV(srv.url, "ops", "ops-pw")
            try:
                await admin.add_account("new", "pw", "reader")  # still an admin
                assert await ops.txn([Put("/ase/config/p/g/s/1/n", b"1")]) is not None  # a writer
                entries, _ = await ops.range("/ase/")
                assert entries
                with pytest.raises(StoreAuthFailed, match=r"'ops' has the role writer.*may not add accounts"):
                    await ops.add_account("other", "pw", "reader")
            finally:
                await admin.close()
                await ops.close()

        run(body)
