"""Accounts of the embedded config centre: scrypt hashes and roles in the store's SQLite file.

On first start the server creates ``admin`` (role ``admin``) with a random password and writes
it to ``<data dir>/admin.password`` (0600): whoever can read that file owns the config centre.
Every other account has the role it was added with (:mod:`.roles`).
scrypt costs ~50 ms by design, so a checked (account, password) pair is remembered in memory
(as a keyed digest, never the password) and later requests of the same client cost nothing.
Checks that need scrypt are slowed per client after failures (:mod:`.throttle`). A login naming
no account runs scrypt too, so how long a refusal takes does not tell which accounts exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ase_serving.files import write_private
from ase_serving.store.base import check_name
from ase_serving.store.embedded.db import DB_FILE, KVDB, InvalidStoreRequest
from ase_serving.store.embedded.roles import ADMIN, check_role
from ase_serving.store.embedded.throttle import LoginThrottle, client_key

PASSWORD_FILE = "admin.password"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)


@dataclass(frozen=True)
class Account:
    name: str
    role: str


class Throttled(Exception):
    """The client failed too often: it may try again in ``retry_after`` seconds."""

    def __init__(self, client: str, retry_after: float) -> None:
        super().__init__(
            f"too many failed logins from {client}: try again in {math.ceil(retry_after)} s "
            "(each further failure doubles the wait)"
        )
        self.retry_after = retry_after


class Accounts:
    """Account records on a :class:`~.db.KVDB`'s connection, with a cache of checked logins."""

    def __init__(self, db: KVDB, throttle: LoginThrottle | None = None) -> None:
        self.conn: sqlite3.Connection = db.conn
        self._db = db
        self.throttle = throttle if throttle is not None else LoginThrottle()
        # Random per process: the cache's digests are useless outside it.
        self._key = secrets.token_bytes(32)
        #: The salt an unknown account's check runs scrypt with (see :meth:`_verify`).
        self._unknown_salt = secrets.token_bytes(16)
        self._ok: dict[str, tuple[bytes, Account]] = {}
        #: Passwords checked with scrypt, checks that failed, attempts refused by the throttle.
        self.stats = {"checked": 0, "failed": 0, "throttled": 0}

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
        self.add(ADMIN, password, ADMIN)
        return password

    def add(self, name: str, password: str, role: str) -> Account:
        """Create an account; :class:`~.db.InvalidStoreRequest` if the name is taken, the password empty or
        the role unknown."""
        check_name("account", name)
        try:
            check_role(role)
        except ValueError as exc:
            raise InvalidStoreRequest(str(exc)) from None
        if not password:
            raise InvalidStoreRequest("an account needs a non-empty password")
        salt = secrets.token_bytes(16)
        digest = _hash(password, salt)
        try:
            with self._db._write() as conn:
                conn.execute(
                    "INSERT INTO accounts (name, salt, hash, role) VALUES (?, ?, ?, ?)",
                    (name, salt, digest, role),
                )
        except sqlite3.IntegrityError:
            raise InvalidStoreRequest(f"account {name!r} already exists") from None
        return Account(name, role)

    async def check(self, name: str, password: str, client: str = "") -> Account | None:
        """The account if ``password`` is right, else None (scrypt runs off the event loop, one
        check at a time per ``client``); :class:`Throttled` while ``client`` is slowed down."""
        token = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        cached = self._known(name, token)
        if cached is not None:
            return cached
        client = client_key(client)
        async with self.throttle.turn(client):
            # Again after the wait: a parallel check of the same login may have cached it.
            cached = self._known(name, token)
            if cached is not None:
                return cached
            wait = self.throttle.wait(client)
            if wait > 0:
                self.stats["throttled"] += 1
                raise Throttled(client, wait)
            found = await self._verify(name, password)
            if found is None:
                self.stats["failed"] += 1
                self.throttle.failed(client)
                return None
            self.throttle.succeeded(client)
            self._ok[name] = (token, found)
            return found

    def _known(self, name: str, token: bytes) -> Account | None:
        cached = self._ok.get(name)
        return cached[1] if cached is not None and hmac.compare_digest(cached[0], token) else None

    async def _verify(self, name: str, password: str) -> Account | None:
        row = self.conn.execute("SELECT salt, hash, role FROM accounts WHERE name = ?", (name,)).fetchone()
        # An unknown account costs the same scrypt as a wrong password: the time of the answer
        # must not tell a guesser which accounts exist.
        salt = bytes(row[0]) if row is not None else self._unknown_salt
        self.stats["checked"] += 1
        digest = await asyncio.to_thread(_hash, password, salt)
        if row is None or not hmac.compare_digest(digest, bytes(row[1])):
            return None
        return Account(name, str(row[2]))


def add_account(data_dir: Path, name: str, password: str, role: str) -> Account:
    """Add an account to the config centre whose data lives in ``data_dir`` (the server may be
    running: SQLite serialises the write)."""
    db = KVDB(data_dir / DB_FILE)
    try:
        return Accounts(db).add(name, password, role)
    finally:
        db.close()
