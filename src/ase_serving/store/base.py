"""The config store and the service registry: data types, the two interfaces, and their errors.

Every backend (embedded server, etcd, a mounted ConfigMap directory) offers the same
:class:`ConfigStore` and, where it can, the same :class:`Registry`. Both are asyncio interfaces.

::

    errors.UserError           something a user can put right (the whole tree: :mod:`ase_serving.errors`)
    └── StoreError             anything that went wrong talking to a store
        ├── StoreUnavailable   the store cannot be reached (down, refused, timed out): retry later
        ├── StoreAuthFailed    wrong or missing account/password, a role that may not, or too
        │                      many failed logins (the message says which)
        ├── NotFound           no such config item / revision / lease
        ├── ReadOnly           the backend takes no writes (configmap)
        ├── Compacted          a watch asked for history the store no longer keeps: list again
        ├── LeaseLost          a registration's lease expired or the store forgot it: register again
        └── InvalidName        a project/group/service/version/name that cannot be a key part
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ase_serving.errors import UserError

#: One part of a config key or an instance key: no '/', no leading dot, not empty.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")

DEFAULT_PROJECT = "default"
DEFAULT_GROUP = "default"

EventKind = Literal["put", "delete"]


class StoreError(UserError):
    """A store operation failed; the message says what and what to do."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; callers keep their last known state and retry with backoff."""


class StoreAuthFailed(StoreError):
    """The store refused the account/password (or none was given for a write)."""


class NotFound(StoreError):
    """No such item, revision or lease."""


class ReadOnly(StoreError):
    """This backend does not take writes."""


class Compacted(StoreError):
    """A watch asked to start before the oldest revision the store keeps; list again, then watch."""


class LeaseLost(StoreError):
    """The registration's lease is gone (expired, or the store restarted without it)."""


class InvalidName(StoreError, ValueError):
    """A key part is empty or holds characters that cannot be part of a key."""


def check_name(what: str, value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidName(
            f"{what} {value!r} is not valid: use letters, digits, '.', '_', '-', ':' or '@', "
            "starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, order=True)
class ConfigKey:
    """Where a config item lives: the seed's projectName / group / serviceName / version / file name."""

    project: str
    group: str
    service: str
    version: str
    name: str

    def __post_init__(self) -> None:
        for part in ("project", "group", "service", "version", "name"):
            check_name(part, getattr(self, part))

    @property
    def path(self) -> str:
        """``project/group/service/version/name``"""
        return f"{self.project}/{self.group}/{self.service}/{self.version}/{self.name}"

    @classmethod
    def from_path(cls, path: str) -> ConfigKey:
        parts = path.strip("/").split("/")
        if len(parts) != 5:
            raise InvalidName(f"{path!r} is not project/group/service/version/name")
        return cls(*parts)


@dataclass(frozen=True)
class ConfigScope:
    """What a watcher or a list covers: a (project, group), optionally narrowed to a service."""

    project: str = DEFAULT_PROJECT
    group: str = DEFAULT_GROUP
    service: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        check_name("project", self.project)
        check_name("group", self.group)
        if self.service is not None:
            check_name("service", self.service)
        if self.version is not None:
            if self.service is None:
                raise InvalidName("a scope with a version needs a service")
            check_name("version", self.version)

    @property
    def path(self) -> str:
        """The key prefix, ending in '/'."""
        parts = [self.project, self.group]
        if self.service is not None:
            parts.append(self.service)
            if self.version is not None:
                parts.append(self.version)
        return "/".join(parts) + "/"

    def covers(self, key: ConfigKey) -> bool:
        return key.path.startswith(self.path)


@dataclass(frozen=True)
class ConfigItem:
    """One revision of a config item."""

    key: ConfigKey
    content: bytes
    #: The item's own revision: 1 for the first write, +1 for every later write (also after a delete).
    revision: int
    #: The store-wide revision of this write (what watchers resume from).
    store_revision: int
    #: Unix time of the write.
    updated: float

    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ConfigEvent:
    """A change seen by a watcher; ``item`` is None for a delete."""

    kind: EventKind
    key: ConfigKey
    item: ConfigItem | None
    store_revision: int


@dataclass(frozen=True)
class Instance:
    """One registered loader instance of (service, version).

    ``attrs`` holds what the LB and ``cluster status`` need; the loader sets ``lic_total``,
    ``lic_idle``, ``lic_best``, ``live`` (False while draining), ``workers``, ``modes`` and
    ``metrics_url``.
    """

    service: str
    version: str
    address: str
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_name("service", self.service)
        check_name("version", self.version)
        if not self.address or "/" in self.address or any(c.isspace() for c in self.address):
            raise InvalidName(f"instance address {self.address!r} is not host:port")

    @property
    def path(self) -> str:
        return f"{self.service}/{self.version}/{self.address}"

    def lic(self, name: str, default: int = 0) -> int:
        value = self.attrs.get(name, default)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


@dataclass(frozen=True)
class InstanceEvent:
    """A registry change; for a delete, ``instance.attrs`` is empty."""

    kind: EventKind
    instance: Instance
    store_revision: int


@dataclass
class Registration:
    """A live registration: the instance as last written and the lease that keeps it."""

    instance: Instance
    lease: int
    ttl: float


class ConfigStore(Protocol):
    """Versioned config items with history and ordered watches."""

    #: A short human name of the backend and where it is, e.g. ``embedded http://127.0.0.1:2390``.
    description: str
    #: False for read-only backends (configmap).
    writable: bool

    async def get(self, key: ConfigKey, revision: int | None = None) -> ConfigItem:
        """The item (its latest revision, or ``revision``); :class:`NotFound` if absent/deleted."""
        ...

    async def history(self, key: ConfigKey) -> list[ConfigItem]:
        """Every kept revision of the item, oldest first (also for a deleted item)."""
        ...

    async def put(self, key: ConfigKey, content: bytes) -> ConfigItem:
        """Write a new revision."""
        ...

    async def delete(self, key: ConfigKey) -> int:
        """Remove the item (its history stays, so it can be restored); returns the store revision.

        :class:`NotFound` if it does not exist."""
        ...

    async def list(self, scope: ConfigScope | None = None) -> tuple[list[ConfigItem], int]:
        """The latest revision of every live item in ``scope`` (all if None), sorted by key,
        and the store revision the list is consistent with (start a watch from it)."""
        ...

    def watch(self, scope: ConfigScope, after: int) -> AsyncIterator[ConfigEvent]:
        """Every change in ``scope`` with a store revision > ``after``, in order, until cancelled.

        Raises :class:`StoreUnavailable` when the connection breaks (resume with the last
        ``store_revision`` seen) and :class:`Compacted` when ``after`` is too old."""
        ...

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable`/:class:`StoreAuthFailed` unless the store answers."""
        ...

    async def close(self) -> None: ...


class Registry(Protocol):
    """Instances under leases kept alive by heartbeats."""

    description: str

    async def register(self, instance: Instance, ttl: float) -> Registration:
        """Write the instance under a new lease of ``ttl`` seconds (at least 2)."""
        ...

    async def keepalive(self, reg: Registration) -> None:
        """Renew the lease; :class:`LeaseLost` if it is gone (then register again)."""
        ...

    async def update(self, reg: Registration, attrs: dict[str, Any]) -> Registration:
        """Replace the instance's attrs, keeping its lease; :class:`LeaseLost` if it is gone."""
        ...

    async def deregister(self, reg: Registration) -> None:
        """Remove the instance and revoke its lease (no error if already gone)."""
        ...

    async def instances(
        self, service: str | None = None, version: str | None = None
    ) -> tuple[list[Instance], int]:
        """Live instances (sorted by service, version, address) and the store revision."""
        ...

    def watch(self, after: int) -> AsyncIterator[InstanceEvent]:
        """Every registry change with store revision > ``after``, in order (errors as for config)."""
        ...

    async def close(self) -> None: ...
