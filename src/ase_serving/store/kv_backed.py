"""The config store and the registry, built once on any :class:`~ase_serving.store.kv_engine.KV`.

Key layout (one layout for every KV backend, so an etcd dump reads like the embedded store)::

    /ase/config/<project>/<group>/<service>/<version>/<name>             latest revision
    /ase/history/<project>/<group>/<service>/<version>/<name>/<rev:010d>  every revision, kept
    /ase/instances/<service>/<version>/<address>                          under the instance's lease

A config value is JSON ``{"r": item revision, "t": unix time, "c": base64 content}``; the head and
the history entry of one write are written in one transaction, guarded by the head's
``mod_revision`` so that concurrent writers never give two writes the same item revision.
"""

from __future__ import annotations

import base64
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ase_serving.store.base import (
    ConfigEvent,
    ConfigItem,
    ConfigKey,
    ConfigScope,
    Instance,
    InstanceEvent,
    InvalidName,
    NotFound,
    Registration,
    StoreError,
    check_name,
)
from ase_serving.store.kv_engine import KV, KVEntry, Put

log = logging.getLogger(__name__)

CONFIG = "/ase/config/"
HISTORY = "/ase/history/"
INSTANCES = "/ase/instances/"
_RETRIES = 50


def _encode(revision: int, updated: float, content: bytes) -> bytes:
    return orjson.dumps({"r": revision, "t": updated, "c": base64.b64encode(content).decode()})


def _decode(key: ConfigKey, entry: KVEntry) -> ConfigItem:
    try:
        doc = orjson.loads(entry.value)
        return ConfigItem(key, base64.b64decode(doc["c"]), int(doc["r"]), entry.mod_revision, float(doc["t"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"config item {key.path} is corrupt in the store ({exc}); put it again") from None


def _hist_key(key: ConfigKey, revision: int) -> str:
    return f"{HISTORY}{key.path}/{revision:010d}"


class _Skips:
    """Records a reader skipped because they cannot be read (a key that is no valid name, a value
    that is not what it should be), by store key, with why: one bad record must not stop a
    view from reading every other one. A record leaves when it is deleted or put again readable."""

    def __init__(self) -> None:
        #: Store key -> why it was skipped.
        self.bad: dict[str, str] = {}

    def _skip(self, key: str, why: str) -> None:
        if self.bad.get(key) != why:
            log.warning("skipping %s in the store: %s", key, why)
        self.bad[key] = why

    def _relisted(self, prefix: str, bad: dict[str, str]) -> None:
        """A full list of ``prefix`` found ``bad``: forget the others under it."""
        for key in [k for k in self.bad if k.startswith(prefix) and k not in bad]:
            del self.bad[key]
        for key, why in bad.items():
            self._skip(key, why)


class KVConfigStore(_Skips):
    """:class:`~ase_serving.store.base.ConfigStore` on a KV."""

    writable = True

    def __init__(self, kv: KV) -> None:
        super().__init__()
        self.kv = kv
        self.description = kv.description

    async def get(self, key: ConfigKey, revision: int | None = None) -> ConfigItem:
        if revision is None:
            entry = await self.kv.get(CONFIG + key.path)
            if entry is None:
                raise NotFound(f"no config item {key.path}")
        else:
            entry = await self.kv.get(_hist_key(key, revision))
            if entry is None:
                raise NotFound(f"config item {key.path} has no revision {revision}")
        return _decode(key, entry)

    async def history(self, key: ConfigKey) -> list[ConfigItem]:
        entries, _ = await self.kv.range(f"{HISTORY}{key.path}/")
        items = [_decode(key, e) for e in entries]
        if not items:
            raise NotFound(f"no config item {key.path}")
        return sorted(items, key=lambda i: i.revision)

    async def _next_revision(self, key: ConfigKey) -> tuple[int, int]:
        """(next item revision, head mod_revision or 0)."""
        head = await self.kv.get(CONFIG + key.path)
        if head is not None:
            return _decode(key, head).revision + 1, head.mod_revision
        entries, _ = await self.kv.range(f"{HISTORY}{key.path}/", keys_only=True)
        last = max((int(e.key.rsplit("/", 1)[1]) for e in entries), default=0)
        return last + 1, 0

    async def put(self, key: ConfigKey, content: bytes) -> ConfigItem:
        head_key = CONFIG + key.path
        for _ in range(_RETRIES):
            revision, head_mod = await self._next_revision(key)
            now = time.time()
            value = _encode(revision, now, content)
            store_rev = await self.kv.txn(
                [Put(head_key, value), Put(_hist_key(key, revision), value)], if_mod={head_key: head_mod}
            )
            if store_rev is not None:
                return ConfigItem(key, content, revision, store_rev, now)
        raise StoreError(f"config item {key.path}: too many concurrent writes; try again")

    async def delete(self, key: ConfigKey) -> int:
        head_key = CONFIG + key.path
        for _ in range(_RETRIES):
            head = await self.kv.get(head_key)
            if head is None:
                raise NotFound(f"no config item {key.path}")
            store_rev = await self.kv.txn([], [head_key], if_mod={head_key: head.mod_revision})
            if store_rev is not None:
                return store_rev
        raise StoreError(f"config item {key.path}: too many concurrent writes; try again")

    async def list(self, scope: ConfigScope | None = None) -> tuple[list[ConfigItem], int]:
        prefix = CONFIG + (scope.path if scope is not None else "")
        entries, revision = await self.kv.range(prefix)
        items, bad = [], {}
        for e in entries:
            try:
                items.append(_decode(ConfigKey.from_path(e.key[len(CONFIG) :]), e))
            except StoreError as exc:  # InvalidName too
                bad[e.key] = str(exc)
        self._relisted(prefix, bad)
        return sorted(items, key=lambda i: i.key), revision

    async def watch(self, scope: ConfigScope, after: int) -> AsyncIterator[ConfigEvent]:
        async for batch in self.kv.watch(CONFIG + scope.path, after + 1):
            for ev in batch:
                try:
                    key = ConfigKey.from_path(ev.key[len(CONFIG) :])
                    item = (
                        _decode(key, KVEntry(ev.key, ev.value, ev.mod_revision)) if ev.kind == "put" else None
                    )
                except StoreError as exc:
                    if ev.kind == "put":
                        self._skip(ev.key, str(exc))
                    else:
                        self.bad.pop(ev.key, None)  # a bad record deleted: nothing to tell
                    continue
                self.bad.pop(ev.key, None)
                if item is not None:
                    yield ConfigEvent("put", key, item, ev.mod_revision)
                else:
                    yield ConfigEvent("delete", key, None, ev.mod_revision)

    async def ping(self) -> None:
        await self.kv.status()

    async def close(self) -> None:
        await self.kv.close()


def _instance(path: str, value: bytes) -> Instance:
    """The instance at ``path`` (service/version/address) with ``value``'s attrs; StoreError
    when it cannot be read."""
    try:
        service, version, address = path.split("/", 2)
        attrs = orjson.loads(value) if value else {}
        if not isinstance(attrs, dict):
            raise ValueError(f"its attrs are a JSON {type(attrs).__name__}, not an object")
        return Instance(service, version, address, attrs)
    except StoreError:
        raise
    except ValueError as exc:  # orjson.JSONDecodeError too
        raise StoreError(f"not a loader instance ({exc})") from None


class KVRegistry(_Skips):
    """:class:`~ase_serving.store.base.Registry` on a KV: one key per instance, under its lease."""

    def __init__(self, kv: KV) -> None:
        super().__init__()
        self.kv = kv
        self.description = kv.description

    async def register(self, instance: Instance, ttl: float) -> Registration:
        if ttl < 2:
            raise InvalidName(f"a registration TTL must be at least 2 s, not {ttl:g}")
        lease = await self.kv.grant(math.ceil(ttl))
        await self.kv.txn([Put(INSTANCES + instance.path, orjson.dumps(instance.attrs), lease)])
        return Registration(instance, lease, ttl)

    async def keepalive(self, reg: Registration) -> None:
        await self.kv.keepalive(reg.lease)

    async def update(self, reg: Registration, attrs: dict[str, Any]) -> Registration:
        inst = Instance(reg.instance.service, reg.instance.version, reg.instance.address, dict(attrs))
        await self.kv.txn([Put(INSTANCES + inst.path, orjson.dumps(inst.attrs), reg.lease)])
        return Registration(inst, reg.lease, reg.ttl)

    async def deregister(self, reg: Registration) -> None:
        await self.kv.revoke(reg.lease)

    async def instances(
        self, service: str | None = None, version: str | None = None
    ) -> tuple[list[Instance], int]:
        prefix = INSTANCES
        if service is not None:
            prefix += check_name("service", service) + "/"
            if version is not None:
                prefix += check_name("version", version) + "/"
        entries, revision = await self.kv.range(prefix)
        found, bad = [], {}
        for e in entries:
            try:
                found.append(_instance(e.key[len(INSTANCES) :], e.value))
            except StoreError as exc:
                bad[e.key] = str(exc)
        self._relisted(prefix, bad)
        return sorted(found, key=lambda i: (i.service, i.version, i.address)), revision

    async def watch(self, after: int) -> AsyncIterator[InstanceEvent]:
        async for batch in self.kv.watch(INSTANCES, after + 1):
            for ev in batch:
                try:
                    inst = _instance(ev.key[len(INSTANCES) :], ev.value if ev.kind == "put" else b"")
                except StoreError as exc:
                    if ev.kind == "put":
                        self._skip(ev.key, str(exc))
                    else:
                        self.bad.pop(ev.key, None)
                    continue
                self.bad.pop(ev.key, None)
                yield InstanceEvent(ev.kind, inst, ev.mod_revision)

    async def close(self) -> None:
        await self.kv.close()
