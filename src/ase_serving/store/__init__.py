"""Config centre + service registry: one interface (:mod:`.base`), backends chosen by address.

==============================  =========  ===============================================
address                         backend    module
==============================  =========  ===============================================
``http://127.0.0.1:2390``       embedded   :mod:`ase_serving.store.embedded.client`
``etcd://h1:2379,h2:2379``      etcd       :mod:`ase_serving.store.etcd`
``configmap:///etc/ase/config`` configmap  :mod:`ase_serving.store.configmap` (read-only, no registry)
==============================  =========  ===============================================

Backends are imported only when used. A third party (polaris, Consul, ...) adds one with
:func:`register_backend`, exactly as the built-ins are registered below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ase_serving.store.base import (
    Compacted,
    ConfigEvent,
    ConfigItem,
    ConfigKey,
    ConfigScope,
    ConfigStore,
    Instance,
    InstanceEvent,
    InvalidName,
    LeaseLost,
    NotFound,
    ReadOnly,
    Registration,
    Registry,
    StoreAuthFailed,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "Backend",
    "Compacted",
    "ConfigEvent",
    "ConfigItem",
    "ConfigKey",
    "ConfigScope",
    "ConfigStore",
    "Instance",
    "InstanceEvent",
    "InvalidName",
    "LeaseLost",
    "NotFound",
    "ReadOnly",
    "Registration",
    "Registry",
    "StoreAuthFailed",
    "StoreError",
    "StoreUnavailable",
    "open_backend",
    "register_backend",
]


@dataclass
class Backend:
    """An opened backend: its config store and (unless read-only config) its registry."""

    kind: str
    address: str
    config: ConfigStore
    registry: Registry | None

    async def close(self) -> None:
        await self.config.close()
        # The KV backends share one connection between config and registry: closing twice is fine.
        if self.registry is not None:
            await self.registry.close()


#: ``factory(address, account, password) -> Backend``
BackendFactory = Callable[[str, "str | None", "str | None"], Backend]

_BACKENDS: dict[str, str | BackendFactory] = {}


def register_backend(scheme: str, factory: str | BackendFactory) -> None:
    """Make ``scheme://...`` addresses open with ``factory`` (or ``"module:function"``, imported lazily)."""
    _BACKENDS[scheme.lower()] = factory


register_backend("http", "ase_serving.store.embedded.client:open_backend")
register_backend("https", "ase_serving.store.embedded.client:open_backend")
register_backend("etcd", "ase_serving.store.etcd:open_backend")
register_backend("configmap", "ase_serving.store.configmap:open_backend")


def backend_kind(address: str) -> str:
    """The scheme of an address, checked: ``http``/``https`` (embedded), ``etcd``, ``configmap``, ..."""
    scheme = urlsplit(address).scheme.lower()
    if scheme not in _BACKENDS:
        known = ", ".join(f"{s}://" for s in sorted(_BACKENDS))
        raise InvalidName(
            f"config centre address {address!r} is not understood: it must start with one of {known} "
            "(e.g. http://127.0.0.1:2390 for the embedded server, etcd://127.0.0.1:2379 for etcd)"
        )
    return scheme


def open_backend(address: str, account: str | None = None, password: str | None = None) -> Backend:
    """Open the backend an address names. Nothing is contacted yet: call ``config.ping()`` to check."""
    scheme = backend_kind(address)
    factory = _BACKENDS[scheme]
    if isinstance(factory, str):
        module, _, name = factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
        _BACKENDS[scheme] = factory
    return factory(address, account, password)
