"""The embedded centre's SQLite engine on its own: what the server's tests cannot reach cheaply."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ase_serving.store import Compacted, LeaseLost
from ase_serving.store.embedded import db as dbmod
from ase_serving.store.embedded.db import KVDB, InvalidStoreRequest, prefix_end
from ase_serving.store.kv_engine import Put


def test_prefix_end_bounds_every_key_under_the_prefix() -> None:
    assert prefix_end("/ase/config/") == "/ase/config0"
    assert prefix_end("") is None
    assert prefix_end("a\U0010ffff") == "b"
    keys = ["/ase/config/", "/ase/config/\U0010ffff", "/ase/config/z\u00e9"]
    assert all("/ase/config/" <= k < "/ase/config0" for k in keys)


def test_a_txn_is_one_revision_and_compares_guard_it(tmp_path: Path) -> None:
    db = KVDB(tmp_path / "s.db")
    assert db.txn([Put("/a", b"1"), Put("/b", b"2")]) == 1
    assert db.txn([Put("/a", b"x")], ["/b"], if_mod={"/a": 0}) is None  # /a exists
    assert db.revision == 1
    assert db.txn([Put("/a", b"3")], ["/b"], if_mod={"/a": 1, "/c": 0}) == 2
    events, nxt = db.events("/", 1)
    assert [(e.kind, e.key, e.mod_revision) for e in events] == [
        ("put", "/a", 1),
        ("put", "/b", 1),
        ("put", "/a", 2),
        ("delete", "/b", 2),
    ]
    assert nxt == 3
    with pytest.raises(InvalidStoreRequest, match="same key twice"):
        db.txn([Put("/a", b"1")], ["/a"])
    with pytest.raises(LeaseLost):
        db.txn([Put("/a", b"1", lease=12345)])
    assert db.revision == 2  # neither wrote anything
    db.close()


def test_a_watch_batch_never_splits_a_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbmod, "BATCH", 3)
    db = KVDB(tmp_path / "s.db")
    db.txn([Put("/k/1", b""), Put("/k/2", b"")])  # rev 1
    db.txn([Put("/k/3", b""), Put("/k/4", b""), Put("/k/5", b"")])  # rev 2
    db.txn([Put("/k/6", b"")])  # rev 3
    db.txn([Put("/other", b"")])  # rev 4
    events, nxt = db.events("/k/", 1)
    assert [e.mod_revision for e in events] == [1, 1, 2, 2, 2]
    assert nxt == 3
    events, nxt = db.events("/k/", nxt)
    assert [e.key for e in events] == ["/k/6"]
    # Past the last event under the prefix the next poll starts after the store's revision.
    assert nxt == 5
    assert db.events("/k/", nxt) == ([], 5)
    db.close()


def test_history_compaction_persists(tmp_path: Path) -> None:
    db = KVDB(tmp_path / "s.db", history=10)
    for i in range(25):
        db.txn([Put("/k", str(i).encode())])
    assert db.compacted >= 25 - 10 - 1
    with pytest.raises(Compacted):
        db.events("/", db.compacted)
    kept, _ = db.events("/", db.compacted + 1)
    assert kept[-1].value == b"24"
    compacted = db.compacted
    db.close()
    again = KVDB(tmp_path / "s.db", history=10)
    assert (again.revision, again.compacted) == (25, compacted)
    with pytest.raises(Compacted):
        again.events("/", compacted)
    again.close()


def test_leases_get_a_full_ttl_again_on_reopen(tmp_path: Path) -> None:
    db = KVDB(tmp_path / "s.db")
    lease = db.grant(30)
    db.txn([Put("/l", b"", lease)])
    db.deadlines[lease] -= 29.5  # as if the server had been down for most of the TTL
    db.close()
    again = KVDB(tmp_path / "s.db")
    left = again.lease_ttl_left(lease)
    assert left is not None and left > 29
    assert again.keepalive(lease) == 30
    assert again.expire(now=again.deadlines[lease] + 0.01)
    assert again.get("/l") is None
    assert lease not in again.ttls
    with pytest.raises(LeaseLost):
        again.keepalive(lease)
    assert again.revoke(lease) is None
    again.close()


SECRETS = ("/s/",)


def _events(db: KVDB, prefix: str = "/") -> list[tuple[str, str, bytes, int]]:
    events, _ = db.events(prefix, 1)
    return [(e.kind, e.key, e.value, e.mod_revision) for e in events]


def test_keys_holding_secrets_keep_no_history(tmp_path: Path) -> None:
    db = KVDB(tmp_path / "s.db", latest_only=SECRETS)
    db.txn([Put("/s/a", b"old"), Put("/c/x", b"1")])  # rev 1
    db.txn([Put("/s/a", b"new"), Put("/c/x", b"2")])  # rev 2
    db.txn([Put("/s/b", b"gone")])  # rev 3
    db.txn([], ["/s/b"])  # rev 4
    lease = db.grant(30)
    db.txn([Put("/s/l", b"leased", lease)])  # rev 5
    db.revoke(lease)  # rev 6
    # Other keys keep every event; a secret's key only its last, a put or a delete.
    assert _events(db) == [
        ("put", "/c/x", b"1", 1),
        ("put", "/s/a", b"new", 2),
        ("put", "/c/x", b"2", 2),
        ("delete", "/s/b", b"", 4),
        ("delete", "/s/l", b"", 6),
    ]
    rows = db.conn.execute("SELECT value FROM events").fetchall()
    assert not {b"old", b"gone", b"leased"} & {bytes(v) for (v,) in rows}
    db.close()


def test_a_file_with_secret_history_loses_it_on_open(tmp_path: Path) -> None:
    db = KVDB(tmp_path / "s.db")  # as written before secrets kept no history
    db.txn([Put("/s/a", b"v1")])
    db.txn([Put("/s/a", b"v2"), Put("/c/x", b"1")])
    db.txn([Put("/c/x", b"2"), Put("/s/b", b"b1")])
    db.close()
    again = KVDB(tmp_path / "s.db", latest_only=SECRETS)
    assert _events(again) == [
        ("put", "/s/a", b"v2", 2),
        ("put", "/c/x", b"1", 2),
        ("put", "/c/x", b"2", 3),
        ("put", "/s/b", b"b1", 3),
    ]
    assert again.conn.execute("PRAGMA secure_delete").fetchone() == (1,)
    again.close()


#: The accounts table as written before roles.
_OLD_ACCOUNTS = """
CREATE TABLE accounts (
    name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, admin INTEGER NOT NULL
)
"""


def test_accounts_written_before_roles_get_one(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.execute(_OLD_ACCOUNTS)
    conn.executemany(
        "INSERT INTO accounts (name, salt, hash, admin) VALUES (?, ?, ?, ?)",
        [("admin", b"s1", b"h1", 1), ("ops", b"s2", b"h2", 0)],
    )
    conn.commit()
    conn.close()
    db = KVDB(path)
    columns = [row[1] for row in db.conn.execute("PRAGMA table_info(accounts)")]
    assert columns == ["name", "salt", "hash", "role"]
    rows = db.conn.execute("SELECT name, salt, hash, role FROM accounts ORDER BY name").fetchall()
    assert [(n, bytes(s), bytes(h), r) for n, s, h, r in rows] == [
        ("admin", b"s1", b"h1", "admin"),
        ("ops", b"s2", b"h2", "writer"),
    ]
    db.close()
    # Opening again changes nothing.
    again = KVDB(path)
    assert again.conn.execute("SELECT name, role FROM accounts ORDER BY name").fetchall() == [
        ("admin", "admin"),
        ("ops", "writer"),
    ]
    again.close()
