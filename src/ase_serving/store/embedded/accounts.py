"""Accounts of the embedded config centre: scrypt hashes in the store's SQLite file.

On first start the server creates ``admin`` with a random password and writes it to
``<data dir>/admin.password`` (0600): whoever can read that file owns the config centre.
scrypt costs ~50 ms by design, so a checked (account, password) pair is remembered in memory
(as a keyed digest, never the password) and later requests of the same client cost nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ase_serving.files import write_private
from ase_serving.store.base import check_name
from ase_serving.store.embedded.db import DB_FILE, KVDB, InvalidStoreRequest

ADMIN = "admin"
PASSWORD_FILE = "admin.password"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)


@dataclass(frozen=True)
class Account:
    name: str
    admin: bool


class Accounts:
    """Account records on a :class:`~.db.KVDB`'s connection, with a cache of checked logins."""

    def __init__(self, db: KVDB) -> None:
        self.conn: sqlite3.Connection = db.conn
        self._db = db
        # Random per process: the cache's digests are useless outside it.
        self._key = secrets.token_bytes(32)
        self._ok: dict[str, tuple[bytes, Account]] = {}

    def exists(self) -> bool:
        return self.conn.execute("SELECT 1 FROM accounts LIMIT 1").fetchone() is not None

    def ensure_admin(self, data_dir: Path) -> str | None:
        """Create ``admin`` (random password, saved to ``admin.password``) unless any account
        exists; returns the new password or None."""
        if self.exists():
            return None
        password = secrets.token_urlsafe(24)
        # The file first: an admin whose password nobody can read would lock everyone out.
        write_private(data_dir / PASSWORD_FILE, (password + "\n").encode())
        self.add(ADMIN, password, admin=True)
        return password

    def add(self, name: str, password: str, admin: bool = False) -> Account:
        """Create an account; :class:`~.db.InvalidStoreRequest` if the name is taken or the password empty."""
        check_name("account", name)
        if not password:
            raise InvalidStoreRequest("an account needs a non-empty password")
        salt = secrets.token_bytes(16)
        digest = _hash(password, salt)
        try:
            with self._db._write() as conn:
                conn.execute(
                    "INSERT INTO accounts (name, salt, hash, admin) VALUES (?, ?, ?, ?)",
                    (name, salt, digest, int(admin)),
                )
        except sqlite3.IntegrityError:
            raise InvalidStoreRequest(f"account {name!r} already exists") from None
        return Account(name, admin)

    async def check(self, name: str, password: str) -> Account | None:
        """The account if ``password`` is right, else None (scrypt runs off the event loop)."""
        token = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        cached = self._ok.get(name)
        if cached is not None and hmac.compare_digest(cached[0], token):
            return cached[1]
        row = self.conn.execute("SELECT salt, hash, admin FROM accounts WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        salt, stored, admin = bytes(row[0]), bytes(row[1]), bool(row[2])
        digest = await asyncio.to_thread(_hash, password, salt)
        if not hmac.compare_digest(digest, stored):
            return None
        account = Account(name, admin)
        self._ok[name] = (token, account)
        return account


def add_account(data_dir: Path, name: str, password: str, admin: bool = False) -> Account:
    """Add an account to the config centre whose data lives in ``data_dir`` (the server may be
    running: SQLite serialises the write)."""
    db = KVDB(data_dir / DB_FILE)
    try:
        return Accounts(db).add(name, password, admin)
    finally:
        db.close()
