"""Client-side views of the store: the last known config items, instances and entries under a key
prefix, kept current by a watch.

Gateways and the LB read config, consumers and instances from a view, not from the store, so they
keep working while the store is unreachable::

    view = ConfigView(backend.config, ConfigScope("default", "default"),
                      cache_file=home / "config.cache.json", on_change=apply_events)
    await view.start()          # first list done, or serving the disk cache after `wait` s
    item = view.get(key)
    ...
    await view.close()

What a view does in the background:

* list the scope (store revision R), report every item as a ``put``, then watch from R;
* apply each batch of events in order and pass it to ``on_change`` (an exception there is
  logged; it never stops the view); a record the store cannot read (an invalid key, a value
  that is not JSON) is skipped by the store and listed by the view's ``skipped()``, never a
  reason to stop;
* when the store is unreachable: keep the items, mark ``connected`` False, retry with capped
  exponential backoff and jitter, and resume the watch from the last revision seen, so nothing
  is missed and nothing is reported twice;
* when the store forgot that history (:class:`~ase_serving.store.base.Compacted`), list again
  and report only the difference (puts for new or changed items, deletes for gone ones);
* with a ``cache_file``: write the items to it (owner-only) after each applied batch, and serve
  that file when the view starts while the store is unreachable (the view's ``from_cache``).

A view never closes the store it reads from: its owner does. That loop is
:class:`~ase_serving.store.view_base.BaseView`'s; each view here fills in its hooks.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ase_serving.store.base import (
    ConfigEvent,
    ConfigItem,
    ConfigKey,
    ConfigScope,
    ConfigStore,
    Instance,
    InstanceEvent,
    Registry,
)
from ase_serving.store.kv_engine import KV, KVEntry, KVEvent
from ase_serving.store.view_base import BaseView


class ConfigView(BaseView[ConfigKey, ConfigItem, ConfigEvent]):
    """The config items of one scope, kept current, cached on disk."""

    what = "config"

    def __init__(
        self,
        store: ConfigStore,
        scope: ConfigScope,
        cache_file: Path | None = None,
        on_change: Callable[[list[ConfigEvent]], None] | None = None,
        backoff: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        super().__init__(on_change, backoff, cache_file)
        self.store = store
        self.scope = scope

    def items(self) -> dict[ConfigKey, ConfigItem]:
        """Every item the view knows (a copy), by key."""
        return dict(self._items)

    def get(self, key: ConfigKey) -> ConfigItem | None:
        return self._items.get(key)

    async def _list(self) -> tuple[dict[ConfigKey, ConfigItem], int]:
        items, revision = await self.store.list(self.scope)
        return {item.key: item for item in items}, revision

    def _watch(self, after: int) -> AsyncIterator[ConfigEvent]:
        return self.store.watch(self.scope, after)

    def skipped(self) -> dict[str, str]:
        return dict(getattr(self.store, "bad", {}))

    async def _probe(self) -> None:
        await self.store.ping()

    def _unpack(self, event: ConfigEvent) -> tuple[ConfigKey, ConfigItem | None, int]:
        return event.key, event.item if event.kind == "put" else None, event.store_revision

    def _event(self, key: ConfigKey, value: ConfigItem | None, revision: int) -> ConfigEvent:
        if value is None:
            return ConfigEvent("delete", key, None, revision)
        return ConfigEvent("put", key, value, value.store_revision)

    def _same(self, old: ConfigItem, new: ConfigItem) -> bool:
        return old.store_revision == new.store_revision and old.content == new.content

    def _cache_id(self) -> str:
        return self.scope.path

    def _dump(self, key: ConfigKey, item: ConfigItem) -> dict[str, Any]:
        return {
            "key": key.path,
            "content": base64.b64encode(item.content).decode(),
            "revision": item.revision,
            "store_revision": item.store_revision,
            "updated": item.updated,
        }

    def _load(self, entry: dict[str, Any]) -> tuple[ConfigKey, ConfigItem]:
        key = ConfigKey.from_path(entry["key"])
        item = ConfigItem(
            key,
            base64.b64decode(entry["content"]),
            int(entry["revision"]),
            int(entry["store_revision"]),
            float(entry["updated"]),
        )
        return key, item


class RegistryView(BaseView[tuple[str, str, str], Instance, InstanceEvent]):
    """Every registered instance, kept current (cached on disk when given a file: a gateway
    started while the store is down calls the loaders it last knew; one that is gone answers
    11503 and the next is tried)."""

    what = "registry"
    relist_on_reconnect = True

    def __init__(
        self,
        registry: Registry,
        on_change: Callable[[list[InstanceEvent]], None] | None = None,
        backoff: tuple[float, float] = (0.2, 5.0),
        cache_file: Path | None = None,
    ) -> None:
        super().__init__(on_change, backoff, cache_file)
        self.registry = registry

    def _dump(self, key: tuple[str, str, str], inst: Instance) -> dict[str, Any]:
        return {
            "service": inst.service,
            "version": inst.version,
            "address": inst.address,
            "attrs": inst.attrs,
        }

    def _load(self, entry: dict[str, Any]) -> tuple[tuple[str, str, str], Instance]:
        attrs = entry["attrs"]
        if not isinstance(attrs, dict):
            raise TypeError("attrs is not an object")
        inst = Instance(str(entry["service"]), str(entry["version"]), str(entry["address"]), attrs)
        return (inst.service, inst.version, inst.address), inst

    def instances(self, service: str | None = None, version: str | None = None) -> list[Instance]:
        """Known instances, sorted by (service, version, address), optionally filtered."""
        return [
            inst
            for key, inst in sorted(self._items.items())
            if (service is None or key[0] == service) and (version is None or key[1] == version)
        ]

    async def _list(self) -> tuple[dict[tuple[str, str, str], Instance], int]:
        found, revision = await self.registry.instances()
        return {(i.service, i.version, i.address): i for i in found}, revision

    def _watch(self, after: int) -> AsyncIterator[InstanceEvent]:
        return self.registry.watch(after)

    def skipped(self) -> dict[str, str]:
        return dict(getattr(self.registry, "bad", {}))

    def _unpack(self, event: InstanceEvent) -> tuple[tuple[str, str, str], Instance | None, int]:
        inst = event.instance
        return (
            (inst.service, inst.version, inst.address),
            inst if event.kind == "put" else None,
            (event.store_revision),
        )

    def _event(self, key: tuple[str, str, str], value: Instance | None, revision: int) -> InstanceEvent:
        if value is None:
            return InstanceEvent("delete", Instance(*key), revision)
        return InstanceEvent("put", value, revision)

    def _same(self, old: Instance, new: Instance) -> bool:
        return old.attrs == new.attrs


class PrefixView(BaseView[str, KVEntry, KVEvent]):
    """The raw entries under one key prefix of a :class:`~ase_serving.store.kv_engine.KV`, kept current
    (the gateway's consumers use it; cached on disk when given a file)."""

    what = "prefix"

    def __init__(
        self,
        kv: KV,
        prefix: str,
        on_change: Callable[[list[KVEvent]], None] | None = None,
        backoff: tuple[float, float] = (0.2, 5.0),
        cache_file: Path | None = None,
    ) -> None:
        super().__init__(on_change, backoff, cache_file)
        self.kv = kv
        self.prefix = prefix

    def _cache_id(self) -> str:
        return self.prefix

    def _dump(self, key: str, entry: KVEntry) -> dict[str, Any]:
        return {
            "key": key,
            "value": base64.b64encode(entry.value).decode(),
            "mod_revision": entry.mod_revision,
        }

    def _load(self, entry: dict[str, Any]) -> tuple[str, KVEntry]:
        key = str(entry["key"])
        return key, KVEntry(key, base64.b64decode(entry["value"]), int(entry["mod_revision"]))

    def entries(self) -> dict[str, KVEntry]:
        return dict(self._items)

    async def _list(self) -> tuple[dict[str, KVEntry], int]:
        entries, revision = await self.kv.range(self.prefix)
        return {e.key: e for e in entries}, revision

    async def _watch(self, after: int) -> AsyncIterator[KVEvent]:
        async for batch in self.kv.watch(self.prefix, after + 1):
            for event in batch:
                yield event

    async def _probe(self) -> None:
        await self.kv.status()

    def _unpack(self, event: KVEvent) -> tuple[str, KVEntry | None, int]:
        if event.kind == "delete":
            return event.key, None, event.mod_revision
        return event.key, KVEntry(event.key, event.value, event.mod_revision), event.mod_revision

    def _event(self, key: str, value: KVEntry | None, revision: int) -> KVEvent:
        if value is None:
            return KVEvent("delete", key, b"", revision)
        return KVEvent("put", key, value.value, value.mod_revision)

    def _same(self, old: KVEntry, new: KVEntry) -> bool:
        return old.mod_revision == new.mod_revision
