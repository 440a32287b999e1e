"""The embedded config centre as a user runs it: a real ``python -m ase_serving.store.embedded``.

The generic config/registry behaviour is the contract suite's; here: accounts and the open/secret
read rule, persistence across restarts (revision, watch history, leases), lease expiry, txn
races, the process's exit codes and the API's answers to bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from ase_serving.store import Compacted, LeaseLost, StoreAuthFailed, StoreError, StoreUnavailable
from ase_serving.store.embedded.accounts import add_account
from ase_serving.store.embedded.client import EmbeddedKV
from ase_serving.store.kv_engine import KVEvent, Put
from tests.store.embedded_server import EmbeddedServer, start_embedded
from tests.support import run

T = TypeVar("T")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A server of this test's own (restarted/killed freely)."""
    srv = start_embedded(tmp_path / "configd")
    try:
        yield srv
    finally:
        srv.kill()


def admin(srv: EmbeddedServer) -> EmbeddedKV:
    return EmbeddedKV(srv.url, srv.account, srv.password)


async def collect(watch: AsyncIterator[list[KVEvent]], count: int) -> list[KVEvent]:
    seen: list[KVEvent] = []
    async for batch in watch:
        seen.extend(batch)
        if len(seen) >= count:
            break
    return seen


def test_first_start_writes_a_private_admin_password(server: EmbeddedServer) -> None:
    path = server.data_dir / "admin.password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((server.data_dir / "store.db").stat().st_mode) == 0o600
    assert len(server.password) >= 20

    async def body() -> None:
        kv = admin(server)
        try:
            assert (await kv.status())["revision"] == 0
            assert await kv.txn([Put("/ase/config/a", b"1")]) == 1
        finally:
            await kv.close()

    run(body)
    # A restart keeps the account: no second password is generated.
    server.stop()
    server.start()
    assert (server.data_dir / "admin.password").read_text().strip() == server.password


def test_accounts_and_the_open_read_rule(embedded: EmbeddedServer) -> None:
    async def body() -> None:
        anon = EmbeddedKV(embedded.url)
        wrong = EmbeddedKV(embedded.url, "admin", "not-the-password")
        root = admin(embedded)
        try:
            with pytest.raises(StoreAuthFailed, match="asectl setup"):
                await wrong.status()
            with pytest.raises(StoreAuthFailed, match="wrong account or password"):
                await wrong.txn([Put("/ase/config/x/y", b"1")])
            with pytest.raises(StoreAuthFailed, match="needs an account"):
                await anon.txn([Put("/ase/config/x/y", b"1")])
            with pytest.raises(StoreAuthFailed):
                await anon.grant(5)

            rev = await root.txn([Put("/ase/config/open/k", b"v"), Put("/ase/secret/x", b"s")])
            assert rev is not None
            entry = await anon.get("/ase/config/open/k")
            assert entry is not None and entry.value == b"v"
            entries, _ = await anon.range("/ase/config/open/")
            assert [e.key for e in entries] == ["/ase/config/open/k"]
            with pytest.raises(StoreAuthFailed, match="needs an account"):
                await anon.get("/ase/secret/x")
            with pytest.raises(StoreAuthFailed):
                await anon.range("/ase/")  # covers secrets too
            with pytest.raises(StoreAuthFailed):
                await collect(anon.watch("/ase/secret/", 1), 1)
            assert (await root.get("/ase/secret/x")) is not None

            # Admin adds a writer; it writes, but cannot add accounts itself.
            await root.add_account("alice", "s3cret-pw", "writer")
            alice = EmbeddedKV(embedded.url, "alice", "s3cret-pw")
            try:
                assert await alice.txn([Put("/ase/config/open/alice", b"a")]) is not None
                with pytest.raises(StoreAuthFailed, match="only an admin may"):
                    await alice.add_account("bob", "pw", "reader")
                with pytest.raises(StoreError, match="already exists"):
                    await root.add_account("alice", "other", "writer")
                with pytest.raises(StoreError, match="role must be one of admin, writer, reader, gateway"):
                    await root.add_account("dave", "pw", "root")
            finally:
                await alice.close()

            # Without HTTP: straight into the data directory of the running server.
            add_account(embedded.data_dir, "carol", "pw-carol", "writer")
            carol = EmbeddedKV(embedded.url, "carol", "pw-carol")
            try:
                assert await carol.txn([Put("/ase/config/open/carol", b"c")]) is not None
            finally:
                await carol.close()
        finally:
            for kv in (anon, wrong, root):
                await kv.close()

    run(body)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_data_revision_and_watch_history_survive_a_restart(server: EmbeddedServer, how: str) -> None:
    async def write() -> int:
        kv = admin(server)
        try:
            await kv.txn([Put("/ase/config/a", b"1"), Put("/ase/config/b", b"2")])
            await kv.txn([Put("/ase/config/a", b"3")])
            rev = await kv.txn([], ["/ase/config/b"])
            assert rev == 3
            return rev
        finally:
            await kv.close()

    before = run(write)
    getattr(server, how)()
    server.start()

    async def check() -> None:
        kv = admin(server)
        try:
            assert (await kv.status())["revision"] == before
            entries, revision = await kv.range("/ase/config/")
            assert revision == before
            assert [(e.key, e.value, e.mod_revision) for e in entries] == [("/ase/config/a", b"3", 2)]
            # Revisions go on from where they were, never reused.
            assert await kv.txn([Put("/ase/config/c", b"4")]) == before + 1
            seen = await collect(kv.watch("/ase/config/", 2), 3)
            assert [(e.kind, e.key, e.value, e.mod_revision) for e in seen] == [
                ("put", "/ase/config/a", b"3", 2),
                ("delete", "/ase/config/b", b"", 3),
                ("put", "/ase/config/c", b"4", 4),
            ]
        finally:
            await kv.close()

    run(check)


@pytest.mark.timeout(60)
def test_a_lease_expires_within_its_ttl_and_takes_its_keys(embedded: EmbeddedServer) -> None:
    async def body() -> None:
        kv = admin(embedded)
        try:
            granted = time.monotonic()
            lease = await kv.grant(1)
            rev = await kv.txn(
                [Put("/ase/instances/s/1/a:1", b"{}", lease), Put("/ase/instances/s/1/a:2", b"{}", lease)]
            )
            assert rev is not None
            seen = await asyncio.wait_for(collect(kv.watch("/ase/instances/s/", rev + 1), 2), 5)
            assert time.monotonic() - granted <= 1 + 1.0
            assert [(e.kind, e.key) for e in seen] == [
                ("delete", "/ase/instances/s/1/a:1"),
                ("delete", "/ase/instances/s/1/a:2"),
            ]
            assert seen[0].mod_revision == seen[1].mod_revision == rev + 1
            assert (await kv.range("/ase/instances/s/"))[0] == []
            with pytest.raises(LeaseLost):
                await kv.keepalive(lease)
            with pytest.raises(LeaseLost):
                await kv.txn([Put("/ase/instances/s/1/a:3", b"{}", lease)])
            await kv.revoke(lease)  # already gone: no error
        finally:
            await kv.close()

    run(body)


@pytest.mark.timeout(60)
def test_leases_survive_a_restart_and_keepalive_resumes(server: EmbeddedServer) -> None:
    async def grant() -> int:
        kv = admin(server)
        try:
            lease = await kv.grant(3)
            await kv.txn([Put("/ase/instances/s/1/a:1", b"{}", lease)])
            return lease
        finally:
            await kv.close()

    lease = run(grant)
    server.stop()
    server.start()

    async def resume() -> None:
        kv = admin(server)
        try:
            await kv.keepalive(lease)
            assert await kv.get("/ase/instances/s/1/a:1") is not None
            await kv.revoke(lease)
            assert await kv.get("/ase/instances/s/1/a:1") is None
            with pytest.raises(LeaseLost):
                await kv.keepalive(lease)
        finally:
            await kv.close()

    run(resume)


def test_concurrent_compares_let_exactly_one_writer_win(embedded: EmbeddedServer) -> None:
    async def body() -> None:
        kvs = [admin(embedded) for _ in range(4)]
        try:
            key = "/ase/config/race/head"
            base = await kvs[0].txn([Put(key, b"0")])
            assert base is not None
            for round_ in range(5):
                results = await asyncio.gather(
                    *(
                        kv.txn([Put(key, f"{round_}-{i}".encode())], if_mod={key: base})
                        for i, kv in enumerate(kvs)
                    )
                )
                winners = [r for r in results if r is not None]
                assert len(winners) == 1, results
                base = winners[0]
            # "must not exist" compares: one creator only.
            fresh = "/ase/config/race/new"
            results = await asyncio.gather(*(kv.txn([Put(fresh, b"x")], if_mod={fresh: 0}) for kv in kvs))
            assert sum(r is not None for r in results) == 1
        finally:
            for kv in kvs:
                await kv.close()

    run(body)


def test_deleting_a_missing_key_writes_nothing(embedded: EmbeddedServer) -> None:
    async def body() -> None:
        kv = admin(embedded)
        try:
            before = (await kv.status())["revision"]
            assert await kv.txn([], ["/ase/config/never/there"]) == before
            assert (await kv.status())["revision"] == before
        finally:
            await kv.close()

    run(body)


def test_bad_input_gets_400_naming_the_problem(embedded: EmbeddedServer) -> None:
    auth = (embedded.account, embedded.password)
    with httpx.Client(base_url=embedded.url, auth=auth, timeout=10, trust_env=False) as http:
        bad_json = http.post("/v1/txn", content=b'{"puts": [')
        assert bad_json.status_code == 400
        assert bad_json.json()["code"] == "bad_request"
        assert "not valid JSON" in bad_json.json()["error"]

        bad_b64 = http.post("/v1/txn", json={"puts": [{"key": "/ase/config/z", "value": "%%%"}]})
        assert bad_b64.status_code == 400
        assert bad_b64.json()["error"] == "puts[0].value is not valid base64"

        not_object = http.post("/v1/lease/grant", json=[1])
        assert (not_object.status_code, not_object.json()["error"]) == (
            400,
            "request body must be a JSON object",
        )

        bad_ttl = http.post("/v1/lease/grant", json={"ttl": "soon"})
        assert bad_ttl.status_code == 400 and "ttl must be an integer" in bad_ttl.json()["error"]

        bad_start = http.get("/v1/watch", params={"prefix": "/ase/config/", "start": "x"})
        assert bad_start.status_code == 400 and "start" in bad_start.json()["error"]

        unknown = http.get("/v1/nope")
        assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
        assert http.get("/health").text == "ok"
        nothing_written = http.get("/v1/range", params={"prefix": "/ase/config/z"}).json()
        assert nothing_written["entries"] == []


@pytest.mark.parametrize(
    ("path", "params", "body", "words"),
    [
        ("/v1/watch", {"timeout": "nan"}, None, "timeout must be a number of seconds 0..60"),
        ("/v1/watch", {"timeout": "inf"}, None, "timeout must be a number of seconds 0..60"),
        ("/v1/watch", {"timeout": "-1"}, None, "timeout must be a number of seconds 0..60"),
        ("/v1/watch", {"start": "-5"}, None, "start must be 0.."),
        ("/v1/watch", {"start": str(2**70)}, None, "start must be 0.."),
        ("/v1/lease/grant", None, {"ttl": 10**12}, "ttl must be 1..86400"),
        ("/v1/lease/grant", None, {"ttl": 1.5}, "ttl must be an integer"),
        ("/v1/lease/keepalive", None, {"id": 2**64}, "id must be"),
    ],
)
def test_the_apis_numbers_are_finite_and_bounded(
    embedded: EmbeddedServer, path: str, params: dict[str, str] | None, body: object, words: str
) -> None:
    """timeout=nan once made a watch that never answered and broke the server's timers."""
    auth = (embedded.account, embedded.password)
    with httpx.Client(base_url=embedded.url, auth=auth, timeout=10, trust_env=False) as http:
        if body is None:
            resp = http.get(path, params={"prefix": "/ase/config/", **(params or {})})
        else:
            resp = http.post(path, json=body)
        assert resp.status_code == 400, resp.text
        assert words in resp.json()["error"]
        assert http.get("/v1/status").json()["watchers"] == 0


def test_a_watcher_whose_client_left_is_freed(embedded: EmbeddedServer) -> None:
    auth = (embedded.account, embedded.password)

    async def leave() -> None:
        async with httpx.AsyncClient(base_url=embedded.url, auth=auth, trust_env=False) as http:
            with contextlib.suppress(httpx.TimeoutException):
                # Long polls of 60 s whose clients give up after 0.3 s.
                await asyncio.gather(
                    *(
                        http.get("/v1/watch", params={"prefix": "/ase/x/", "timeout": "60"}, timeout=0.3)
                        for _ in range(20)
                    )
                )

    run(leave)
    with httpx.Client(base_url=embedded.url, auth=auth, timeout=10, trust_env=False) as http:
        deadline = time.monotonic() + 10
        while (watchers := http.get("/v1/status").json()["watchers"]) != 0:
            assert time.monotonic() < deadline, f"{watchers} watchers still held"
            time.sleep(0.05)


@pytest.mark.timeout(60)
def test_a_watch_behind_the_kept_history_is_compacted(tmp_path: Path) -> None:
    srv = start_embedded(tmp_path / "configd", args=["--history", "5"])
    try:

        async def body() -> None:
            kv = admin(srv)
            try:
                for i in range(12):
                    await kv.txn([Put("/ase/config/c", str(i).encode())])
                with pytest.raises(Compacted, match="list again"):
                    await collect(kv.watch("/ase/config/", 1), 1)
                seen = await collect(kv.watch("/ase/config/", 12), 1)
                assert seen[0].value == b"11"
            finally:
                await kv.close()

        run(body)
    finally:
        srv.kill()


@pytest.mark.timeout(60)
def test_sigterm_ends_it_at_once_with_exit_0_even_under_a_long_poll(server: EmbeddedServer) -> None:
    async def body() -> None:
        kv = admin(server)
        try:
            poll = asyncio.ensure_future(collect(kv.watch("/ase/config/", 1), 1))
            while (await kv.status())["watchers"] != 1:  # the poll is waiting on the server
                await asyncio.sleep(0.01)
            started = time.monotonic()
            code = await asyncio.to_thread(server.stop)
            assert code == 0
            # Not the 25 s the poll would wait, nor uvicorn's 5 s graceful-shutdown limit.
            assert time.monotonic() - started < 3
            with pytest.raises(StoreUnavailable, match="asectl init"):
                await poll
            with pytest.raises(StoreUnavailable, match="is the config centre running"):
                await kv.status()
        finally:
            await kv.close()
            await kv.close()  # idempotent

    run(body)


def _run_main(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ase_serving.store.embedded", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_a_taken_port_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_main("--port", str(port), "--data", str(tmp_path / "d"))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "--port" in done.stderr


def test_a_bad_value_exits_2_with_one_line_naming_every_flag(tmp_path: Path) -> None:
    done = _run_main("--port", "0", "--data", str(tmp_path / "d"), "--history", "0", "--login-failures", "0")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "error: --history must be >= 1; --login-failures must be >= 1\n"
    assert not (tmp_path / "d").exists()  # nothing started


def test_a_flag_is_also_an_ase_configd_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASE_CONFIGD_LOGIN_BACKOFF", "5")
    monkeypatch.setenv("ASE_CONFIGD_LOGIN_BACKOFF_MAX", "2")
    done = _run_main("--port", "0", "--data", str(tmp_path / "d"))
    assert done.returncode == 2
    assert done.stderr == "error: --login-backoff-max must be >= --login-backoff\n"
    monkeypatch.setenv("ASE_CONFIGD_HISTORY", "many")
    done = _run_main("--port", "0", "--data", str(tmp_path / "d"))
    assert done.returncode == 2
    assert "ASE_CONFIGD_HISTORY='many' is not a valid value for --history" in done.stderr


def test_one_server_per_data_directory(server: EmbeddedServer) -> None:
    done = _run_main("--port", "0", "--data", str(server.data_dir))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert f"in use by another config centre (pid {server.proc.pid if server.proc else '?'})" in done.stderr
    assert server.running


def test_anonymous_backend_reads_config_without_an_account(embedded: EmbeddedServer) -> None:
    async def body() -> None:
        from ase_serving.store import ConfigKey

        writer = embedded.backend()
        reader = embedded.backend(account=None)
        try:
            key = ConfigKey("anon", "default", "svc", "1", "conf.json")
            await writer.config.put(key, b'{"a": 1}')
            assert (await reader.config.get(key)).content == b'{"a": 1}'
            await reader.config.ping()
            with pytest.raises(StoreAuthFailed):
                await reader.config.put(key, b"no")
        finally:
            await writer.close()
            await reader.close()

    run(body)


def test_values_round_trip_as_bytes(embedded: EmbeddedServer) -> None:
    blob = bytes(range(256)) + os.urandom(64)

    async def body() -> None:
        kv = admin(embedded)
        try:
            await kv.txn([Put("/ase/config/bin/\u00e9t\u00e9", blob)])
            entry = await kv.get("/ase/config/bin/\u00e9t\u00e9")
            assert entry is not None and entry.value == blob
            entries, _ = await kv.range("/ase/config/bin/", keys_only=True)
            assert [e.key for e in entries] == ["/ase/config/bin/\u00e9t\u00e9"]
        finally:
            await kv.close()

    run(body)
