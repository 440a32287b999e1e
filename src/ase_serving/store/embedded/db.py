"""The embedded config centre's KV engine: etcd's model on one SQLite file (WAL mode).

Tables::

    meta(name, value)                       'revision' (store-wide), 'compacted' (events <= it are gone)
    kv(key, value, mod_revision, lease)     the live keys
    events(id, revision, key, kind, value)  every change, so a watch resumes after a restart
    leases(id, ttl)                         deadlines live in memory: on open every lease gets now + ttl
    accounts(name, salt, hash, role)        scrypt hashes and roles (see :mod:`.accounts`, :mod:`.roles`)

The engine is synchronous and single-threaded (the server calls it from its event loop); every
write is one SQLite transaction, so a crash never leaves half a txn behind. ``synchronous=NORMAL``
keeps committed writes across a process crash (not across a power cut), which is what a local
config centre needs at a fraction of the fsync cost.

Keys under ``latest_only`` prefixes (the secrets: consumer records, the cluster's secret) keep
no history: a write of such a key deletes its earlier events, so a watch from an old revision
gets its current value (or its delete), never a value it replaced. ``secure_delete`` makes SQLite
overwrite what it deletes in the database file (the WAL file holds it until its next checkpoint).

A file written before roles (``accounts.admin``, a boolean) is migrated on open: admin accounts
get the role ``admin``, the others ``writer`` (what they could do before).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ase_serving.store.base import Compacted, LeaseLost, StoreError
from ase_serving.store.kv_engine import KVEntry, KVEvent, Put

#: The SQLite file inside the data directory.
DB_FILE = "store.db"
#: How many revisions of events a watch can go back by default.
DEFAULT_HISTORY = 100_000
#: Most events one watch answer carries (whole revisions are never split).
BATCH = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, mod_revision INTEGER NOT NULL, lease INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, revision INTEGER NOT NULL, key TEXT NOT NULL,
    kind TEXT NOT NULL, value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_revision ON events (revision);
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);
"""
_ACCOUNTS = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, role TEXT NOT NULL
)
"""


class InvalidStoreRequest(StoreError, ValueError):
    """The request itself is wrong (duplicate key in a txn, a TTL < 1, ...)."""


def prefix_end(prefix: str) -> str | None:
    """The smallest key above every key starting with ``prefix`` (None: no upper bound).

    SQLite compares TEXT as UTF-8 bytes, which orders like code points, so bumping the last
    character gives the bound."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF and not 0xD7FF <= last < 0xE000:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class KVDB:
    """The store: keys, one revision counter, an event log, leases and accounts."""

    def __init__(self, path: Path, history: int = DEFAULT_HISTORY, latest_only: tuple[str, ...] = ()) -> None:
        if history < 1:
            raise InvalidStoreRequest(f"history must keep at least 1 revision, not {history}")
        self.path = path
        self.history = history
        self.latest_only = latest_only
        path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only: it holds password hashes (and, later, secrets). SQLite gives its -wal and
        # -shm files the database file's mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        # isolation_level=None: transactions are opened explicitly (BEGIN IMMEDIATE) in _write().
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA secure_delete=ON")
        self.conn.executescript(_SCHEMA)
        self._migrate_accounts()
        self._forget_old_secrets()
        self.revision = self._meta("revision")
        self.compacted = self._meta("compacted")
        now = time.monotonic()
        # Like etcd: a restart gives every lease a full TTL, so heartbeats simply resume.
        self.deadlines: dict[int, float] = {
            int(lid): now + ttl for lid, ttl in self.conn.execute("SELECT id, ttl FROM leases")
        }
        self.ttls: dict[int, int] = {
            int(lid): int(ttl) for lid, ttl in self.conn.execute("SELECT id, ttl FROM leases")
        }

    def close(self) -> None:
        self.conn.close()

    def _migrate_accounts(self) -> None:
        """Create the accounts table, or turn the one written before roles into it."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(accounts)")}
        if "admin" not in columns or "role" in columns:
            self.conn.execute(_ACCOUNTS)
            return
        with self._write() as db:
            db.execute("ALTER TABLE accounts RENAME TO accounts_before_roles")
            db.execute(_ACCOUNTS)
            db.execute(
                "INSERT INTO accounts (name, salt, hash, role) SELECT name, salt, hash, "
                "CASE WHEN admin THEN 'admin' ELSE 'writer' END FROM accounts_before_roles"
            )
            db.execute("DROP TABLE accounts_before_roles")

    def _secret(self, key: str) -> bool:
        return bool(self.latest_only) and key.startswith(self.latest_only)

    def _forget_old_secrets(self) -> None:
        """Keep only the last event of each key under :attr:`latest_only` (a file written before
        they were kept so, or with other prefixes)."""
        if not self.latest_only:
            return
        with self._write() as db:
            for prefix in self.latest_only:
                end = prefix_end(prefix)
                cond = "key >= ?" + (" AND key < ?" if end is not None else "")
                args = (prefix,) + ((end,) if end is not None else ())
                db.execute(
                    f"DELETE FROM events WHERE {cond} AND id NOT IN "
                    f"(SELECT MAX(id) FROM events WHERE {cond} GROUP BY key)",
                    args + args,
                )

    def _meta(self, name: str) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: str) -> KVEntry | None:
        row = self.conn.execute(
            "SELECT key, value, mod_revision, lease FROM kv WHERE key = ?", (key,)
        ).fetchone()
        return KVEntry(row[0], bytes(row[1]), row[2], row[3]) if row else None

    def range(self, prefix: str, keys_only: bool = False) -> list[KVEntry]:
        cols = "key, x'', mod_revision, lease" if keys_only else "key, value, mod_revision, lease"
        end = prefix_end(prefix)
        if end is None:
            rows = self.conn.execute(f"SELECT {cols} FROM kv WHERE key >= ? ORDER BY key", (prefix,))
        else:
            rows = self.conn.execute(
                f"SELECT {cols} FROM kv WHERE key >= ? AND key < ? ORDER BY key", (prefix, end)
            )
        return [KVEntry(k, bytes(v), r, lease) for k, v, r, lease in rows]

    def events(self, prefix: str, start: int) -> tuple[list[KVEvent], int]:
        """Events under ``prefix`` with revision >= ``start`` (at most about :data:`BATCH`, whole
        revisions only) and the revision the next call should start from."""
        start = max(start, 1)
        if start <= self.compacted:
            raise Compacted(
                f"revision {start} is compacted (the store keeps events after revision "
                f"{self.compacted}); list again and watch from the list's revision"
            )
        end = prefix_end(prefix)
        cond = "revision >= ? AND key >= ?" + (" AND key < ?" if end is not None else "")
        args: tuple[object, ...] = (start, prefix) + ((end,) if end is not None else ())
        last = self.conn.execute(
            f"SELECT revision FROM events WHERE {cond} ORDER BY id LIMIT 1 OFFSET ?", (*args, BATCH - 1)
        ).fetchone()
        upto = self.revision if last is None else int(last[0])
        rows = self.conn.execute(
            f"SELECT kind, key, value, revision FROM events WHERE {cond} AND revision <= ? ORDER BY id",
            (*args, upto),
        )
        found = [KVEvent(kind, key, bytes(value), rev) for kind, key, value, rev in rows]
        return found, max(upto, start - 1) + 1

    # -- writes --------------------------------------------------------------------------------

    def txn(
        self, puts: Sequence[Put], deletes: Sequence[str] = (), if_mod: dict[str, int] | None = None
    ) -> int | None:
        """As :meth:`ase_serving.store.kv_engine.KV.txn`; deleting absent keys writes nothing (and a txn
        that writes nothing returns the current revision)."""
        keys = [p.key for p in puts] + list(deletes)
        if len(set(keys)) != len(keys):
            raise InvalidStoreRequest("a txn names the same key twice")
        now = time.monotonic()
        for p in puts:
            if p.lease and self.deadlines.get(p.lease, 0.0) <= now:
                raise LeaseLost(f"lease {p.lease} does not exist (expired or revoked); register again")
        with self._write() as db:
            for key, want in (if_mod or {}).items():
                row = db.execute("SELECT mod_revision FROM kv WHERE key = ?", (key,)).fetchone()
                if (row[0] if row else 0) != want:
                    return None
            gone = [k for k in deletes if db.execute("SELECT 1 FROM kv WHERE key = ?", (k,)).fetchone()]
            if not puts and not gone:
                return self.revision
            rev = self.revision + 1
            for p in puts:
                db.execute(
                    "INSERT OR REPLACE INTO kv (key, value, mod_revision, lease) VALUES (?, ?, ?, ?)",
                    (p.key, p.value, rev, p.lease),
                )
                self._event(db, rev, p.key, "put", p.value)
            self._delete(db, gone, rev)
            self._bump(db, rev)
        return rev

    def _delete(self, db: sqlite3.Connection, keys: Sequence[str], rev: int) -> None:
        for key in keys:
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
            self._event(db, rev, key, "delete", b"")

    def _event(self, db: sqlite3.Connection, rev: int, key: str, kind: str, value: bytes) -> None:
        if self._secret(key):
            # A key holding a secret keeps no history (see the module's docstring).
            db.execute("DELETE FROM events WHERE key = ?", (key,))
        db.execute(
            "INSERT INTO events (revision, key, kind, value) VALUES (?, ?, ?, ?)", (rev, key, kind, value)
        )

    def _bump(self, db: sqlite3.Connection, rev: int) -> None:
        db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('revision', ?)", (rev,))
        self.revision = rev
        # Compact in steps (not on every write) so the DELETE is amortised.
        if rev - self.compacted >= self.history + max(1, self.history // 100):
            self.compacted = rev - self.history
            db.execute("DELETE FROM events WHERE revision <= ?", (self.compacted,))
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted', ?)", (self.compacted,))

    # -- leases --------------------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        if ttl < 1:
            raise InvalidStoreRequest(f"a lease TTL must be at least 1 s, not {ttl}")
        while True:
            # Random ids (JSON-safe): an id from before a wiped data dir never names a new lease.
            lease = secrets.randbelow(2**53 - 1) + 1
            if lease not in self.ttls:
                break
        with self._write() as db:
            db.execute("INSERT INTO leases (id, ttl) VALUES (?, ?)", (lease, ttl))
        self.ttls[lease] = ttl
        self.deadlines[lease] = time.monotonic() + ttl
        return lease

    def keepalive(self, lease: int) -> int:
        """Restart the lease's TTL and return it; :class:`LeaseLost` if unknown or expired."""
        now = time.monotonic()
        if self.deadlines.get(lease, 0.0) <= now:
            # An expired lease not yet swept stays for the sweep, which wakes the watchers.
            raise LeaseLost(f"lease {lease} does not exist (expired or revoked); register again")
        self.deadlines[lease] = now + self.ttls[lease]
        return self.ttls[lease]

    def revoke(self, lease: int) -> int | None:
        """Delete the lease and its keys in one revision; the new revision, or None if nothing
        was written (no such lease, or a lease without keys)."""
        if lease not in self.ttls:
            return None
        rev: int | None = None
        with self._write() as db:
            keys = [k for (k,) in db.execute("SELECT key FROM kv WHERE lease = ? ORDER BY key", (lease,))]
            if keys:
                rev = self.revision + 1
                self._delete(db, keys, rev)
                self._bump(db, rev)
            db.execute("DELETE FROM leases WHERE id = ?", (lease,))
        del self.ttls[lease]
        del self.deadlines[lease]
        return rev

    def expire(self, now: float | None = None) -> bool:
        """Revoke every lease past its deadline; True if that wrote anything."""
        now = time.monotonic() if now is None else now
        wrote = False
        for lease in [lid for lid, deadline in self.deadlines.items() if deadline <= now]:
            wrote = self.revoke(lease) is not None or wrote
        return wrote

    def lease_ttl_left(self, lease: int) -> float | None:
        deadline = self.deadlines.get(lease)
        return None if deadline is None else max(0.0, deadline - time.monotonic())
