"""The configmap backend: read-only config from a directory, typically a mounted Kubernetes ConfigMap.

Address ``configmap:///etc/ase/config?project=P&group=G`` (an absolute path; ``project`` and ``group``
default to ``default``). Two layouts are read, side by side:

- nested: ``DIR/<project>/<group>/<service>/<version>/<name>`` (a ConfigMap volume whose ``items`` give
  each key a ``path``);
- flat: ``DIR/<service>--<version>--<name>``, for the (project, group) of the address, because a
  ConfigMap key cannot hold '/'. The name may itself contain ``--``; service and version may not.

Kubernetes mounts every key as a symlink into ``..data``, a symlink it swaps atomically to a new
timestamped directory on an update. So names starting with '.' are skipped, symlinks are followed, and
changes are found by polling (every ``poll_interval``, 0.5 s) and comparing content hashes. Revisions
exist only in this process: an item's revision counts from 1 when first seen and +1 per change; every
change (a removed file is a delete) takes the next value of one store-wide counter. The history and the
event log are the changes seen since the store was opened (a restart starts again from 1).

Files whose names cannot be key parts are skipped with one logged warning each, never fatal. An unreadable
directory is :class:`StoreUnavailable` (the last known config stays, it is not turned into deletes).

There is no registry here (``Backend.registry`` is None): loaders in a configmap cluster register with
etcd or with the embedded server, given as their own config centre address.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ase_serving.store import Backend
from ase_serving.store.base import (
    DEFAULT_GROUP,
    DEFAULT_PROJECT,
    ConfigEvent,
    ConfigItem,
    ConfigKey,
    ConfigScope,
    InvalidName,
    NotFound,
    ReadOnly,
    StoreUnavailable,
    check_name,
)

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5
FLAT_SEPARATOR = "--"
_READ_ONLY = "the configmap backend is read-only: change the ConfigMap (kubectl apply) instead"


@dataclass(frozen=True)
class _Seen:
    digest: bytes
    item: ConfigItem


def parse_address(address: str) -> tuple[Path, str, str]:
    """``configmap:///dir?project=P&group=G`` -> (dir, project, group); :class:`InvalidName` if malformed."""
    parts = urlsplit(address)
    if parts.scheme.lower() != "configmap" or parts.netloc or not parts.path.startswith("/"):
        raise InvalidName(
            f"configmap address {address!r} is not configmap:///absolute/dir (three slashes), "
            "e.g. configmap:///etc/ase/config?project=default&group=default"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"project", "group"})
    if unknown:
        raise InvalidName(f"configmap address {address!r}: unknown option(s) {', '.join(unknown)}")
    project = check_name("project", query.get("project", [DEFAULT_PROJECT])[-1])
    group = check_name("group", query.get("group", [DEFAULT_GROUP])[-1])
    return Path(unquote(parts.path)), project, group


class DirConfigStore:
    """A read-only :class:`~ase_serving.store.base.ConfigStore` over a directory, polled for changes."""

    writable = False

    def __init__(
        self,
        directory: Path,
        project: str = DEFAULT_PROJECT,
        group: str = DEFAULT_GROUP,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.directory = Path(directory)
        self.project = check_name("project", project)
        self.group = check_name("group", group)
        self.poll_interval = poll_interval
        self.description = f"configmap {self.directory}"
        self._revision = 0
        self._live: dict[ConfigKey, _Seen] = {}
        self._history: dict[ConfigKey, list[ConfigItem]] = {}
        self._events: list[ConfigEvent] = []
        self._scanned_at: float | None = None
        self._warned: set[str] = set()

    # -- reading the directory ----------------------------------------------------------------------

    def _warn(self, path: Path, why: str) -> None:
        if str(path) not in self._warned:
            self._warned.add(str(path))
            log.warning("configmap: ignoring %s: %s", path, why)

    def _unavailable(self, exc: OSError) -> StoreUnavailable:
        return StoreUnavailable(
            f"the configmap directory {self.directory} cannot be read ({exc.strerror or exc}); "
            "is the ConfigMap mounted there?"
        )

    @staticmethod
    def _visible(directory: Path) -> list[Path]:
        return sorted(p for p in directory.iterdir() if not p.name.startswith("."))

    def _read(self, path: Path, key: ConfigKey, found: dict[ConfigKey, tuple[bytes, float]]) -> None:
        try:
            content = path.read_bytes()
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return  # removed between listing and reading: absent
        except OSError as exc:
            # Unreadable for now: keep what we knew rather than report a delete.
            self._warn(path, f"cannot be read ({exc.strerror or exc})")
            if key in self._live:
                seen = self._live[key].item
                found[key] = (seen.content, seen.updated)
            return
        if key in found:
            self._warn(path, f"{key.path} is also given in the nested layout, which wins")
            return
        found[key] = (content, mtime)

    def _scan(self) -> dict[ConfigKey, tuple[bytes, float]]:
        """Every config file now in the directory (both layouts) -> (content, mtime)."""
        found: dict[ConfigKey, tuple[bytes, float]] = {}
        try:
            top = self._visible(self.directory)
        except OSError as exc:
            raise self._unavailable(exc) from None
        flat: list[Path] = []
        for path in top:
            if path.is_dir():
                self._scan_nested(path, [], found)
            elif path.is_file():
                flat.append(path)
        for path in flat:
            parts = path.name.split(FLAT_SEPARATOR, 2)
            if len(parts) != 3:
                self._warn(
                    path,
                    f"a flat file must be named <service>{FLAT_SEPARATOR}<version>{FLAT_SEPARATOR}<name>",
                )
                continue
            try:
                key = ConfigKey(self.project, self.group, *parts)
            except InvalidName as exc:
                self._warn(path, str(exc))
                continue
            self._read(path, key, found)
        return found

    def _scan_nested(
        self, directory: Path, parts: list[str], found: dict[ConfigKey, tuple[bytes, float]]
    ) -> None:
        what = ("project", "group", "service", "version", "name")[len(parts)]
        try:
            check_name(what, directory.name)
        except InvalidName as exc:
            self._warn(directory, str(exc))
            return
        parts = [*parts, directory.name]
        try:
            children = self._visible(directory)
        except OSError as exc:
            self._warn(directory, f"cannot be listed ({exc.strerror or exc})")
            return
        for child in children:
            if len(parts) == 4:  # child is <name>
                if child.is_file():
                    try:
                        key = ConfigKey(parts[0], parts[1], parts[2], parts[3], child.name)
                    except InvalidName as exc:
                        self._warn(child, str(exc))
                        continue
                    self._read(child, key, found)
                else:
                    self._warn(child, "not a file at <project>/<group>/<service>/<version>/<name>")
            elif child.is_dir():
                self._scan_nested(child, parts, found)
            else:
                self._warn(child, "a file above <project>/<group>/<service>/<version>/<name>")

    def _apply(self, found: dict[ConfigKey, tuple[bytes, float]]) -> None:
        """Turn the difference between the last scan and this one into revisions and events."""
        for key in sorted(set(found) | set(self._live)):
            if key not in found:
                self._revision += 1
                del self._live[key]
                self._events.append(ConfigEvent("delete", key, None, self._revision))
                continue
            content, mtime = found[key]
            digest = hashlib.sha256(content).digest()
            seen = self._live.get(key)
            if seen is not None and seen.digest == digest:
                continue
            self._revision += 1
            history = self._history.setdefault(key, [])
            item = ConfigItem(
                key, content, (history[-1].revision + 1) if history else 1, self._revision, mtime
            )
            history.append(item)
            self._live[key] = _Seen(digest, item)
            self._events.append(ConfigEvent("put", key, item, self._revision))

    def refresh(self, force: bool = False) -> None:
        """Scan the directory now if the last scan is older than the poll interval (or ``force``).

        Synchronous on purpose: a ConfigMap holds at most 1 MiB, and with no await between reading and
        applying, concurrent callers can never apply one change twice."""
        now = time.monotonic()
        if not force and self._scanned_at is not None and now - self._scanned_at < self.poll_interval * 0.9:
            return
        self._apply(self._scan())
        self._scanned_at = now

    # -- ConfigStore --------------------------------------------------------------------------------

    async def get(self, key: ConfigKey, revision: int | None = None) -> ConfigItem:
        self.refresh()
        if revision is None:
            seen = self._live.get(key)
            if seen is None:
                raise NotFound(f"no config item {key.path} in {self.directory}")
            return seen.item
        for item in self._history.get(key, []):
            if item.revision == revision:
                return item
        raise NotFound(f"config item {key.path} has no revision {revision} (since this process started)")

    async def history(self, key: ConfigKey) -> list[ConfigItem]:
        self.refresh()
        if key not in self._history:
            raise NotFound(f"no config item {key.path} in {self.directory}")
        return list(self._history[key])

    async def put(self, key: ConfigKey, content: bytes) -> ConfigItem:
        raise ReadOnly(_READ_ONLY)

    async def delete(self, key: ConfigKey) -> int:
        raise ReadOnly(_READ_ONLY)

    async def list(self, scope: ConfigScope | None = None) -> tuple[list[ConfigItem], int]:
        self.refresh()
        items = [s.item for k, s in sorted(self._live.items()) if scope is None or scope.covers(k)]
        return items, self._revision

    async def watch(self, scope: ConfigScope, after: int) -> AsyncIterator[ConfigEvent]:
        # Events are numbered 1, 2, 3, ... so the first one after ``after`` is at index ``after``.
        position = max(after, 0)
        while True:
            self.refresh()
            while position < len(self._events):
                event = self._events[position]
                position += 1
                if scope.covers(event.key):
                    yield event
            await asyncio.sleep(self.poll_interval)

    async def ping(self) -> None:
        if not self.directory.is_dir():
            raise StoreUnavailable(
                f"the configmap directory {self.directory} does not exist; is the ConfigMap mounted there?"
            )
        if not os.access(self.directory, os.R_OK | os.X_OK):
            raise StoreUnavailable(f"the configmap directory {self.directory} is not readable by this user")
        self.refresh(force=True)

    async def close(self) -> None:
        """Nothing to release: the store holds no handles between scans."""


def open_backend(address: str, account: str | None = None, password: str | None = None) -> Backend:
    """The configmap backend at ``address`` (account/password unused: it is a local directory)."""
    directory, project, group = parse_address(address)
    return Backend(
        kind="configmap", address=address, config=DirConfigStore(directory, project, group), registry=None
    )
