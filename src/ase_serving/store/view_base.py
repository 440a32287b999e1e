"""The loop shared by the views of :mod:`ase_serving.store.view` (what it does: that module's docstring).

:class:`BaseView` lists, watches, reconnects with backoff, lists again after a compaction, keeps
the disk cache and calls ``on_change``; a view fills in its hooks: how to list and watch its part
of the store (``_list``, ``_watch``, ``_probe``), how to read and make its events (``_unpack``,
``_event``, ``_same``) and how to write and read its items in the cache (``_dump``, ``_load``,
``_cache_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from ase_serving.backoff import Backoff
from ase_serving.files import write_private
from ase_serving.store.base import Compacted, StoreError, StoreUnavailable

# The views' logger, named by the module their users import (a logging setup keeps working).
log = logging.getLogger("ase_serving.store.view")

K = TypeVar("K")
V = TypeVar("V")
E = TypeVar("E")

CACHE_FORMAT = 1


class _End:
    """Put on the event queue when a watch ends without an error."""


class BaseView(Generic[K, V, E]):
    """The loop shared by the views; subclasses say how to list, watch and name events."""

    #: "config", "registry", "prefix": for messages and the cache file's "of".
    what = "store"
    #: Registry has no ping, so a reconnect is probed (and checked) with a fresh list.
    relist_on_reconnect = False

    def __init__(
        self,
        on_change: Callable[[list[E]], None] | None,
        backoff: tuple[float, float],
        cache_file: Path | None = None,
    ) -> None:
        #: Where the items are kept for a start while the store is down (None: nowhere). Written
        #: owner-only (0600): a consumers' cache holds their secrets.
        self.cache_file = cache_file
        self._cache_tried = self._cache_loaded = False
        self._on_change = on_change
        self._backoff = Backoff(*backoff)
        self._items: dict[K, V] = {}
        #: The store revision the items are consistent with (0 before anything was loaded).
        self.revision = 0
        #: True while the view is in touch with the store (listed or resumed, watch open).
        self.connected = False
        #: Why the last attempt failed (None once connected again).
        self.last_error: str | None = None
        #: How many times the view tried to reach the store (first list included).
        self.attempts = 0
        self._listed = False
        self._ready = asyncio.Event()
        self._tick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- hooks ---------------------------------------------------------------------------------

    async def _list(self) -> tuple[dict[K, V], int]:
        raise NotImplementedError

    def _watch(self, after: int) -> AsyncIterator[E]:
        raise NotImplementedError

    async def _probe(self) -> None:
        """Raise unless the store answers (used before resuming a watch)."""

    def _unpack(self, event: E) -> tuple[K, V | None, int]:
        """(key, value or None for a delete, store revision)."""
        raise NotImplementedError

    def _event(self, key: K, value: V | None, revision: int) -> E:
        raise NotImplementedError

    def _same(self, old: V, new: V) -> bool:
        raise NotImplementedError

    def skipped(self) -> dict[str, str]:
        """Records the store could not read and the view goes on without, by store key: why."""
        return {}

    def _cache_id(self) -> str:
        """What the cache file is of (a scope, a prefix): a file of something else is not used."""
        return self.what

    def _dump(self, key: K, value: V) -> dict[str, Any]:
        raise NotImplementedError

    def _load(self, entry: dict[str, Any]) -> tuple[K, V]:
        raise NotImplementedError

    @property
    def from_cache(self) -> bool:
        """Whether the view serves what its disk cache held (the store not reached since start)."""
        return self._cache_loaded and not self._listed

    def _save_cache(self) -> None:
        """Write the items to ``cache_file`` (after each applied change)."""
        if self.cache_file is None:
            return
        doc = {
            "format": CACHE_FORMAT,
            "of": f"{self.what}:{self._cache_id()}",
            "revision": self.revision,
            "items": [self._dump(key, self._items[key]) for key in sorted(self._items)],  # type: ignore[type-var]
        }
        write_private(self.cache_file, orjson.dumps(doc))

    def _serve_cache(self) -> None:
        """Serve ``cache_file`` when the store cannot be reached at start."""
        if self._cache_tried or self._listed or self.cache_file is None:
            return
        self._cache_tried = True  # once: a missing or unreadable file is not looked at again
        try:
            doc: dict[str, Any] = orjson.loads(self.cache_file.read_bytes())
            if doc.get("format") != CACHE_FORMAT or doc.get("of") != f"{self.what}:{self._cache_id()}":
                log.warning("%s view: %s is of something else; not used", self.what, self.cache_file)
                return
            items = dict(self._load(entry) for entry in doc["items"])
            revision = int(doc["revision"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s view: cache %s is unreadable (%s); not used", self.what, self.cache_file, exc)
            return
        self._cache_loaded = True
        log.warning(
            "%s view: the store is unreachable; serving %d item(s) from %s (revision %d)",
            self.what,
            len(items),
            self.cache_file,
            revision,
        )
        self._items = items
        self.revision = revision
        # The file already holds this state: no need to write it back.
        self._changed([self._event(key, value, revision) for key, value in items.items()], save=False)

    # -- public --------------------------------------------------------------------------------

    async def start(self, wait: float = 5.0) -> None:
        """Start following the store; return once the first list succeeded, or after ``wait``
        seconds (then serving the disk cache, if any, while retrying in the background)."""
        if self._task is not None:
            raise RuntimeError(f"this {self.what} view was already started")
        self._task = asyncio.create_task(self._run(), name=f"ase {self.what} view")
        ready = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait({ready, self._task}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._task.done():
            self._task.result()  # only a bug ends the loop: let it show
        if not self._listed:
            self._serve_cache()

    async def wait_revision(self, revision: int, timeout: float) -> bool:
        """Wait until the view has applied everything up to store ``revision``; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.revision < revision:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._tick.wait(), remaining)
        return True

    async def close(self) -> None:
        """Stop following the store (the items stay readable)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        need_list = True
        while True:
            self.attempts += 1
            connected_at: float | None = None
            try:
                if need_list:
                    items, revision = await self._list()
                    self._replace(items, revision)
                    need_list = False
                else:
                    await self._probe()
                connected_at = time.monotonic()
                self._set_connected()
                await self._follow()
                raise StoreUnavailable(f"the {self.what} watch ended")
            except Compacted as exc:
                # The store no longer has our revision: list again (the diff is reported).
                log.info("%s view: %s; listing again", self.what, exc)
                need_list = True
                self.last_error = str(exc)
            except StoreError as exc:
                self._set_disconnected(str(exc))
                need_list = need_list or self.relist_on_reconnect
            except Exception as exc:
                # A backend bug must not end the view; it is retried like an outage, but shown.
                log.exception("%s view: unexpected error", self.what)
                self._set_disconnected(f"{type(exc).__name__}: {exc}")
                need_list = True
            # A connection that held for a while was a success: start the backoff over. One that
            # breaks at once keeps growing the delay, so a flapping store is never hammered.
            if connected_at is not None and time.monotonic() - connected_at > self._backoff.cap:
                self._backoff.reset()
            await asyncio.sleep(self._backoff.next())

    def _set_connected(self) -> None:
        if not self.connected and self.attempts > 1:
            log.info("%s view: connected again at revision %d", self.what, self.revision)
        self.connected = True
        self.last_error = None

    def _set_disconnected(self, error: str) -> None:
        if self.connected or self.attempts == 1:
            log.warning("%s view: store unreachable (%s); serving the last known state", self.what, error)
        self.connected = False
        self.last_error = error
        if not self._listed:
            self._serve_cache()

    async def _follow(self) -> None:
        """Apply watch events until the watch breaks (raises) or ends (returns)."""
        queue: asyncio.Queue[E | BaseException | _End] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(self._watch(self.revision), queue))
        # Several keys may change in one store revision; only within one stream may a revision repeat.
        last_in_stream = -1
        try:
            while True:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                events: list[E] = []
                stop: BaseException | _End | None = None
                for entry in batch:
                    if isinstance(entry, (BaseException, _End)):
                        stop = entry
                        break
                    events.append(entry)
                applied = []
                for event in events:
                    key, value, revision = self._unpack(event)
                    if revision < self.revision or (revision == self.revision != last_in_stream):
                        continue  # already seen (a backend that repeats after a reconnect)
                    last_in_stream = revision
                    if value is None:
                        self._items.pop(key, None)
                    else:
                        self._items[key] = value
                    self.revision = revision
                    applied.append(event)
                if applied:
                    self._changed(applied)
                if isinstance(stop, BaseException):
                    raise stop
                if stop is not None:
                    return
        finally:
            pump.cancel()
            await asyncio.wait({pump})

    @staticmethod
    async def _pump(events: AsyncIterator[E], queue: asyncio.Queue[E | BaseException | _End]) -> None:
        # A separate task reads the watch so that the loop can take every event already
        # delivered as one batch (one on_change call, one cache write).
        try:
            async for event in events:
                queue.put_nowait(event)
            queue.put_nowait(_End())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            queue.put_nowait(exc)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _replace(self, items: dict[K, V], revision: int) -> None:
        """Take a full list; report only what differs from what the view had."""
        events = [
            self._event(key, value, revision)
            for key, value in items.items()
            if key not in self._items or not self._same(self._items[key], value)
        ]
        events += [self._event(key, None, revision) for key in self._items if key not in items]
        self._items = dict(items)
        self.revision = revision
        self._listed = True
        self._changed(events)
        self._ready.set()

    def _changed(self, events: list[E], save: bool = True) -> None:
        """Tell ``on_change``, write the cache and wake ``wait_revision`` callers."""
        if events and self._on_change is not None:
            try:
                self._on_change(events)
            except Exception:
                log.exception("%s view: on_change failed (the view goes on)", self.what)
        if save:
            try:
                self._save_cache()
            except OSError as exc:
                log.warning("%s view: cannot write the cache: %s", self.what, exc)
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()
