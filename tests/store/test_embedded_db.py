"""The embedded centre's SQLite engine on its own: what the server's tests cannot reach cheaply."""

from __future__ import annotations

from pathlib import Path

import pytest

from ase_serving.store import Compacted, LeaseLost
from ase_serving.store.embedded import db as dbmod
from ase_serving.store.embedded.db import KVDB, InvalidStoreRequest, prefix_end
from ase_serving.store.kv import Put


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
