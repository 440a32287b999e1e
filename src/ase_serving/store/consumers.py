"""Consumers: the apps that may call the gateway, kept in the config centre.

One key per consumer, ``/ase/consumers/<project>/<app_id>``, holding a JSON record::

    {"format": 1, "app_id": "a1b2c3d4", "name": "demo", "key_id": "3f9a1c02",
     "key_sha256": "<hex>", "secret": "<api_secret>", "services": ["echo"],
     "rps": 0, "sessions": 0, "created": 1764639000.0, "rotated": 1764639000.0}

- The API key is stored only as its SHA-256 digest (and its first 8 characters, ``key_id``, to
  tell keys apart in listings): the key scheme needs no more, so a read of the store does not
  reveal it. Keys are 128 random bits, so an unsalted digest is as strong as the key.
- The HMAC scheme needs the secret itself, so it is stored as is, and the prefix is one that
  needs an account to read: the embedded config centre refuses anonymous reads outside
  ``/ase/config/``, ``/ase/history/`` and ``/ase/instances/``, serves a ``reader`` account
  records without ``key_sha256`` and ``secret`` (they read as ``""``; :meth:`ConsumerRecord.usable`
  is False), and keeps no history of them (a rotated secret is gone); on etcd, give only the
  gateway's and the operators' roles read access to ``/ase/consumers/``.
- ``services`` empty = every service of the project; ``rps``/``sessions`` 0 = no limit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson

from ase_serving.store.base import NotFound, StoreError, check_name
from ase_serving.store.kv_engine import KV, Put

PREFIX = "/ase/consumers/"
FORMAT = 1
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def prefix(project: str) -> str:
    return f"{PREFIX}{check_name('project', project)}/"


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def check_app_id(app_id: str) -> str:
    if not _APP_ID.match(app_id):
        raise StoreError(
            f"app id {app_id!r} is not valid: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return app_id


@dataclass(frozen=True)
class IssuedCredentials:
    """What a consumer is given once, at ``add`` or ``rotate``: never stored in this form."""

    app_id: str
    api_key: str
    api_secret: str

    def doc(self) -> dict[str, str]:
        return {"app_id": self.app_id, "api_key": self.api_key, "api_secret": self.api_secret}

    def __repr__(self) -> str:
        return f"IssuedCredentials(app_id={self.app_id!r}, api_key=<hidden>, api_secret=<hidden>)"


@dataclass(frozen=True)
class ConsumerRecord:
    app_id: str
    #: Empty in a record served without its secrets (to an account whose role may not see them).
    key_sha256: str = ""
    secret: str = field(default="", repr=False)
    key_id: str = ""
    name: str = ""
    services: tuple[str, ...] = ()
    #: Requests (once requests and session starts) per second; 0 = no limit.
    rps: float = 0
    #: Sessions open at once; 0 = no limit.
    sessions: int = 0
    created: float = 0.0
    rotated: float = 0.0

    def usable(self) -> bool:
        """Does the record hold its key digest and secret (not served without them)?"""
        return bool(self.key_sha256 and self.secret)

    def may_call(self, service: str) -> bool:
        return not self.services or service in self.services

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["services"] = list(self.services)
        return orjson.dumps({"format": FORMAT, **doc})

    @classmethod
    def from_json(cls, raw: bytes) -> ConsumerRecord:
        doc: dict[str, Any] = orjson.loads(raw)
        doc.pop("format", None)
        doc["services"] = tuple(doc.get("services") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in known})

    def public(self) -> dict[str, Any]:
        """The fields ``asectl consumer list`` shows: no digest, no secret."""
        return {
            "app_id": self.app_id,
            "name": self.name,
            "key_id": self.key_id,
            "services": list(self.services),
            "rps": self.rps,
            "sessions": self.sessions,
            "created": self.created,
            "rotated": self.rotated,
        }


def new_credentials(app_id: str | None = None) -> IssuedCredentials:
    return IssuedCredentials(
        app_id=check_app_id(app_id) if app_id else secrets.token_hex(4),
        api_key=secrets.token_hex(16),
        api_secret=secrets.token_urlsafe(32),
    )


def record_for(creds: IssuedCredentials, base: ConsumerRecord | None = None, **fields: Any) -> ConsumerRecord:
    """A record holding ``creds`` (new keys over ``base``'s settings, if given)."""
    now = time.time()
    keyed: dict[str, Any] = {
        "key_sha256": key_digest(creds.api_key),
        "secret": creds.api_secret,
        "key_id": creds.api_key[:8],
        "rotated": now,
    }
    if base is not None:
        return replace(base, **keyed, **fields)
    return ConsumerRecord(app_id=creds.app_id, created=now, **keyed, **fields)


class ConsumerStore:
    """Consumers of one project on a key-value backend (embedded config centre or etcd)."""

    def __init__(self, kv: KV, project: str) -> None:
        self.kv = kv
        self.prefix = prefix(project)

    def _key(self, app_id: str) -> str:
        return self.prefix + check_app_id(app_id)

    async def list(self) -> list[ConsumerRecord]:
        entries, _ = await self.kv.range(self.prefix)
        return [ConsumerRecord.from_json(e.value) for e in entries]

    async def get(self, app_id: str) -> ConsumerRecord:
        entry = await self.kv.get(self._key(app_id))
        if entry is None:
            raise NotFound(f"no consumer with app id {app_id!r} (see `asectl consumer list`)")
        return ConsumerRecord.from_json(entry.value)

    async def add(
        self,
        app_id: str | None = None,
        name: str = "",
        services: Iterable[str] = (),
        rps: float = 0,
        sessions: int = 0,
    ) -> IssuedCredentials:
        """A new consumer and its credentials; :class:`StoreError` if the app id is taken."""
        check_limits(rps, sessions)
        creds = new_credentials(app_id)
        record = record_for(creds, name=name, services=tuple(services), rps=rps, sessions=sessions)
        done = await self.kv.txn(
            [Put(self._key(creds.app_id), record.to_json())], if_mod={self._key(creds.app_id): 0}
        )
        if done is None:
            raise StoreError(
                f"a consumer with app id {creds.app_id!r} exists: `asectl consumer rotate {creds.app_id}` "
                "gives it new keys"
            )
        return creds

    async def _replace(
        self, app_id: str, change: Callable[[ConsumerRecord], ConsumerRecord]
    ) -> ConsumerRecord:
        """Apply ``change(record) -> record`` to the stored record, retrying on a concurrent write."""
        key = self._key(app_id)
        for _ in range(10):
            entry = await self.kv.get(key)
            if entry is None:
                raise NotFound(f"no consumer with app id {app_id!r} (see `asectl consumer list`)")
            new = change(ConsumerRecord.from_json(entry.value))
            if await self.kv.txn([Put(key, new.to_json())], if_mod={key: entry.mod_revision}) is not None:
                return new
        raise StoreError(f"consumer {app_id!r} kept changing while it was written: try again")

    async def rotate(self, app_id: str) -> IssuedCredentials:
        """New key and secret for ``app_id``; the old ones stop working at once."""
        creds = new_credentials(app_id)
        await self._replace(app_id, lambda rec: record_for(creds, rec))
        return creds

    async def update(self, app_id: str, **fields: Any) -> ConsumerRecord:
        """Change ``services``, ``rps``, ``sessions`` or ``name`` (keys stay)."""
        if "services" in fields:
            fields["services"] = tuple(fields["services"])
        check_limits(fields.get("rps", 0), fields.get("sessions", 0))
        return await self._replace(app_id, lambda rec: replace(rec, **fields))

    async def remove(self, app_id: str) -> None:
        key = self._key(app_id)
        if await self.kv.get(key) is None:
            raise NotFound(f"no consumer with app id {app_id!r} (see `asectl consumer list`)")
        await self.kv.txn([], deletes=[key])


def check_limits(rps: float, sessions: int) -> None:
    if rps < 0:
        raise StoreError(f"rps must be >= 0 (0 = no limit), not {rps}")
    if sessions < 0:
        raise StoreError(f"sessions must be >= 0 (0 = no limit), not {sessions}")
