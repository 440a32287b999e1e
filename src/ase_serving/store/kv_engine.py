"""The key-value engine under the embedded and etcd backends (etcd's model, cut to what we use).

Keys are text, values bytes. Every write bumps one store-wide revision; a key remembers the
revision of its last write (``mod_revision``). Leases expire ``ttl`` seconds after their last
keepalive and take their keys with them. A watch streams every change under a prefix from a
start revision on, in revision order, and breaks (:class:`StoreUnavailable`) when the connection
does; the caller resumes from the last revision it saw.

:mod:`ase_serving.store.kv_backed` builds the :class:`~ase_serving.store.base.ConfigStore` and the
:class:`~ase_serving.store.base.Registry` on any :class:`KV`, so a backend only implements this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ase_serving.store.base import EventKind


@dataclass(frozen=True)
class KVEntry:
    key: str
    value: bytes
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True)
class KVEvent:
    kind: EventKind
    key: str
    #: b"" for a delete.
    value: bytes
    mod_revision: int


@dataclass(frozen=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


class KV(Protocol):
    description: str

    async def get(self, key: str) -> KVEntry | None: ...

    async def range(self, prefix: str, keys_only: bool = False) -> tuple[list[KVEntry], int]:
        """Every key under ``prefix`` (sorted by key) and the current store revision.

        With ``keys_only`` the values may be empty."""
        ...

    async def txn(
        self, puts: Sequence[Put], deletes: Sequence[str] = (), if_mod: dict[str, int] | None = None
    ) -> int | None:
        """Apply all ``puts`` and ``deletes`` atomically as ONE revision, if every key in ``if_mod``
        still has that ``mod_revision`` (0 = the key must not exist). Returns the new store
        revision, or None when a comparison failed (nothing written).

        A put naming a lease that does not exist raises :class:`LeaseLost`."""
        ...

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[KVEvent]]:
        """Batches of events under ``prefix`` with ``mod_revision >= start_revision``, in order."""
        ...

    async def grant(self, ttl: int) -> int:
        """A new lease id (> 0) that lives ``ttl`` seconds unless kept alive."""
        ...

    async def keepalive(self, lease: int) -> None:
        """Restart the lease's TTL; :class:`LeaseLost` if it is unknown or expired."""
        ...

    async def revoke(self, lease: int) -> None:
        """Delete the lease and its keys (no error if already gone)."""
        ...

    async def status(self) -> dict[str, Any]:
        """Health: at least ``{"revision": int}``; raises :class:`StoreUnavailable` if unreachable."""
        ...

    async def close(self) -> None: ...
