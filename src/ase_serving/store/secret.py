"""The cluster's secret: what a caller of a loader's data port proves it knows (see ase_serving.wire).

One key, ``/ase/secrets/wire``, outside the prefixes anyone may read: the embedded config centre
serves it only to accounts of the roles admin, writer and gateway (and keeps no history of it),
and on etcd only the roles of gateways and loaders should read ``/ase/secrets/``. It is made once
(32 random bytes, hex) by the first loader or ``asectl init`` that needs it; later ones read it.
A config centre without a key-value store (ConfigMap) has none: loaders there keep their data
ports on loopback or use TLS with their own trust.
"""

from __future__ import annotations

import secrets
from typing import Any

from ase_serving.store.kv_engine import Put

KEY = "/ase/secrets/wire"


def _kv(backend: Any) -> Any:
    return getattr(getattr(backend, "config", None), "kv", None)


async def read_secret(backend: Any) -> bytes | None:
    """The secret, or None when the config centre has none (yet)."""
    kv = _kv(backend)
    if kv is None:
        return None
    entry = await kv.get(KEY)
    return bytes(entry.value) if entry is not None and entry.value else None


async def ensure_secret(backend: Any) -> bytes | None:
    """The secret, made now if there is none; None when the config centre cannot hold one."""
    kv = _kv(backend)
    if kv is None:
        return None
    for _ in range(3):
        entry = await kv.get(KEY)
        if entry is not None and entry.value:
            return bytes(entry.value)
        value = secrets.token_hex(32).encode()
        # Created only if absent (mod revision 0): two loaders starting together agree on one.
        if await kv.txn([Put(KEY, value)], if_mod={KEY: 0}) is not None:
            return value
    return await read_secret(backend)
