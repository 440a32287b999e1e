"""The config store contract: the same tests against every backend (embedded, etcd, configmap).

For configmap the changes are made the only way a ConfigMap changes, by writing files
(``config_backend.write``/``remove``); the store's own put/delete are refused (last test).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import pytest

from ase_serving.store import (
    ConfigEvent,
    ConfigKey,
    ConfigScope,
    ConfigStore,
    InvalidName,
    NotFound,
    ReadOnly,
    open_backend,
)
from tests.store.conftest import ConfigCase, take

T = TypeVar("T")
pytestmark = pytest.mark.timeout(90)


@contextlib.asynccontextmanager
async def watching(
    store: ConfigStore, scope: ConfigScope, after: int
) -> AsyncIterator[AsyncIterator[ConfigEvent]]:
    events = store.watch(scope, after)
    try:
        yield events
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def summary(events: list[ConfigEvent]) -> list[tuple[str, str, bytes | None]]:
    return [(e.kind, e.key.name, e.item.content if e.item else None) for e in events]


def assert_ordered(events: list[ConfigEvent], after: int) -> None:
    revisions = [e.store_revision for e in events]
    assert revisions == sorted(revisions), revisions
    assert len(set(revisions)) == len(revisions), f"a revision repeats: {revisions}"
    assert all(r > after for r in revisions), (after, revisions)
    for e in events:
        if e.item is not None:
            assert e.item.store_revision == e.store_revision


def test_put_get_list_and_scopes(config_backend: ConfigCase) -> None:
    case = config_backend
    a, b = case.key("a", service="s1"), case.key("b", service="s1")
    c, v2 = case.key("c", service="s2"), case.key("a", service="s1", version="2")
    other = case.key("a", service="s1", group="other")

    async def body() -> None:
        for key in (a, b, c, v2, other):
            item = await case.write(key, key.path.encode())
            assert (item.key, item.content, item.revision) == (key, key.path.encode(), 1)
        got = await case.store.get(b)
        assert (got.key, got.content, got.revision) == (b, b.path.encode(), 1)
        with pytest.raises(NotFound):
            await case.store.get(case.key("missing", service="s1"))

        async def names(scope: ConfigScope | None) -> list[ConfigKey]:
            items, revision = await case.store.list(scope)
            assert revision >= max(i.store_revision for i in items)
            return [i.key for i in items if i.key.project == case.project]

        assert await names(ConfigScope(case.project)) == [a, b, v2, c]
        assert await names(ConfigScope(case.project, service="s1")) == [a, b, v2]
        assert await names(ConfigScope(case.project, service="s1", version="1")) == [a, b]
        assert await names(ConfigScope(case.project, "other")) == [other]
        assert await names(None) == sorted([a, b, c, v2, other])
        items, _ = await case.store.list(ConfigScope(case.project, service="s2"))
        assert [(i.key, i.content) for i in items] == [(c, c.path.encode())]

    case.run(body)


def test_revisions_and_get_by_revision(config_backend: ConfigCase) -> None:
    case = config_backend
    key = case.key("settings.yml")

    async def body() -> None:
        written = [await case.write(key, f"v{n}".encode()) for n in (1, 2, 3)]
        assert [i.revision for i in written] == [1, 2, 3]
        store_revisions = [i.store_revision for i in written]
        assert store_revisions == sorted(set(store_revisions)), store_revisions
        latest = await case.store.get(key)
        assert (latest.revision, latest.content, latest.store_revision) == (3, b"v3", store_revisions[2])
        for n in (1, 2, 3):
            old = await case.store.get(key, revision=n)
            assert (old.revision, old.content) == (n, f"v{n}".encode())
        history = await case.store.history(key)
        assert [(i.revision, i.content) for i in history] == [(1, b"v1"), (2, b"v2"), (3, b"v3")]
        with pytest.raises(NotFound):
            await case.store.get(key, revision=4)
        with pytest.raises(NotFound):
            await case.store.history(case.key("never-written"))

    case.run(body)


def test_delete_keeps_history_and_revisions_continue(config_backend: ConfigCase) -> None:
    case = config_backend
    key = case.key("app.json")

    async def body() -> None:
        await case.write(key, b"one")
        second = await case.write(key, b"two")
        deleted_at = await case.remove(key)
        assert deleted_at > second.store_revision
        with pytest.raises(NotFound):
            await case.store.get(key)
        items, _ = await case.store.list(ConfigScope(case.project))
        assert key not in [i.key for i in items]
        assert [i.content for i in await case.store.history(key)] == [b"one", b"two"]
        assert (await case.store.get(key, revision=1)).content == b"one"
        again = await case.write(key, b"three")
        assert again.revision == 3
        assert again.store_revision > deleted_at
        assert [i.revision for i in await case.store.history(key)] == [1, 2, 3]
        if case.store.writable:
            await case.store.delete(key)
            with pytest.raises(NotFound):
                await case.store.delete(key)
            with pytest.raises(NotFound):
                await case.store.delete(case.key("never-written"))

    case.run(body)


def test_watch_sees_every_change_after_a_revision_in_order(config_backend: ConfigCase) -> None:
    case = config_backend
    a, b = case.key("a"), case.key("b")
    scope = ConfigScope(case.project)

    async def body() -> None:
        _, start = await case.store.list(scope)
        # Made before the watch starts: the watch must still deliver them (after < now).
        await case.write(a, b"a1")
        await case.write(b, b"b1")
        async with watching(case.store, scope, start) as events:
            early = await take(events, 2)
            await case.write(a, b"a2")
            await case.remove(b)
            late = await take(events, 2)
        got = early + late
        assert summary(got) == [
            ("put", "a", b"a1"),
            ("put", "b", b"b1"),
            ("put", "a", b"a2"),
            ("delete", "b", None),
        ]
        assert_ordered(got, start)
        assert [e.item.revision for e in got if e.item] == [1, 1, 2]

    case.run(body)


def test_watch_resumes_after_reconnect_without_gap_or_duplicate(config_backend: ConfigCase) -> None:
    case = config_backend
    scope = ConfigScope(case.project)
    keys = [case.key(f"k{n}") for n in range(5)]

    async def body() -> None:
        _, start = await case.store.list(scope)
        for key in keys[:3]:
            await case.write(key, key.name.encode())
        async with watching(case.store, scope, start) as events:
            first = await take(events, 2)
        last_seen = first[-1].store_revision
        # Changes while no watch is open, then a new watch (a new connection where the backend
        # has one) from the last revision seen.
        for key in keys[3:]:
            await case.write(key, key.name.encode())
        again = case.second_store()
        async with watching(again, scope, last_seen) as events:
            rest = await take(events, 3)
            # Nothing else is queued: the next event is a change made now.
            await case.write(keys[0], b"sentinel")
            (sentinel,) = await take(events, 1)
        assert [e.key.name for e in first + rest] == ["k0", "k1", "k2", "k3", "k4"]
        assert_ordered(first + rest + [sentinel], start)
        assert (sentinel.key, sentinel.item and sentinel.item.content) == (keys[0], b"sentinel")

    case.run(body)


def test_scoped_watch_does_not_see_other_groups_or_services(config_backend: ConfigCase) -> None:
    case = config_backend

    async def body() -> None:
        _, start = await case.store.list()
        async with (
            watching(case.store, ConfigScope(case.project, "g1"), start) as group_events,
            watching(case.store, ConfigScope(case.project, "g1", "svc-a"), start) as service_events,
        ):
            await case.write(case.key("x", group="g2"), b"other group")
            await case.write(case.key("x", service="svc-b", group="g1"), b"other service")
            await case.write(case.key("x", service="svc-a", group="g1"), b"mine")
            # Events come in order, so if either watch saw an earlier write it would come first.
            assert summary(await take(group_events, 2)) == [
                ("put", "x", b"other service"),
                ("put", "x", b"mine"),
            ]
            (mine,) = await take(service_events, 1)
            assert (mine.key.group, mine.key.service, mine.item and mine.item.content) == (
                "g1",
                "svc-a",
                b"mine",
            )

    case.run(body)


def test_list_is_consistent_with_its_revision(config_backend: ConfigCase) -> None:
    case = config_backend
    scope = ConfigScope(case.project)
    keys = [case.key(f"item{n}") for n in range(8)]

    async def body() -> None:
        half = asyncio.Event()

        async def writer() -> None:
            for n, key in enumerate(keys):
                await case.write(key, f"{n}".encode())
                await case.write(key, f"{n}!".encode())
                if n == len(keys) // 2:
                    half.set()

        task = asyncio.create_task(writer())
        try:
            # List while the writer goes on: whatever the list missed, a watch from its revision has.
            await half.wait()
            items, revision = await case.store.list(scope)
            await task
        finally:
            task.cancel()
        assert all(i.store_revision <= revision for i in items)
        state = {i.key: i.content for i in items}
        missing = 2 * len(keys) - sum(i.revision for i in items)
        async with watching(case.store, scope, revision) as events:
            later = await take(events, missing)
        assert_ordered(later, revision)
        for e in later:
            assert e.item is not None
            state[e.key] = e.item.content
        assert state == {key: f"{n}!".encode() for n, key in enumerate(keys)}

    case.run(body)


@pytest.mark.parametrize(
    "content",
    [bytes(range(256)) * 3, "grüße, 你好, ✓\n".encode(), b"", b"\r\n\x00trailing\x00"],
    ids=["binary", "utf8", "empty", "nul-crlf"],
)
def test_content_is_bytes_exact(config_backend: ConfigCase, content: bytes) -> None:
    case = config_backend
    key = case.key("blob.bin")

    async def body() -> None:
        _, start = await case.store.list(ConfigScope(case.project))
        written = await case.write(key, content)
        assert written.content == content
        assert (await case.store.get(key)).content == content
        assert (await case.store.get(key, revision=written.revision)).content == content
        items, _ = await case.store.list(ConfigScope(case.project))
        assert [i.content for i in items] == [content]
        async with watching(case.store, ConfigScope(case.project), start) as events:
            (event,) = await take(events, 1)
        assert event.item is not None and event.item.content == content

    case.run(body)


@pytest.mark.parametrize(
    "parts",
    [
        ("p", "g", "s", "1", ""),
        ("p", "g", "s", "1", "a/b"),
        ("p", "g", "s", "1", ".hidden"),
        ("p", "g", "s", "1", "white space"),
        ("", "g", "s", "1", "n"),
        ("p", "g/h", "s", "1", "n"),
        ("p", "g", "s", "..", "n"),
        ("p", "g", "-s", "1", "n"),
    ],
)
@pytest.mark.parametrize("address", ["http://127.0.0.1:9", "etcd://127.0.0.1:9"], ids=["embedded", "etcd"])
def test_invalid_names_fail_before_any_io(parts: tuple[str, ...], address: str) -> None:
    # A backend nobody listens on: an InvalidName (not StoreUnavailable) proves no I/O happened.
    backend = open_backend(address)

    async def body() -> None:
        try:
            with pytest.raises(InvalidName) as caught:
                await backend.config.get(ConfigKey(*parts))
            assert isinstance(caught.value, ValueError)
            with pytest.raises(InvalidName):
                ConfigKey.from_path("/".join(parts))
        finally:
            await backend.close()

    asyncio.run(body())


def test_invalid_scopes() -> None:
    with pytest.raises(InvalidName):
        ConfigScope("p", "g", version="1")  # a version needs a service
    with pytest.raises(InvalidName):
        ConfigScope("p", "a b")
    with pytest.raises(InvalidName):
        ConfigKey.from_path("p/g/s/1")


def test_configmap_refuses_writes(tmp_path: Path) -> None:
    directory = tmp_path / "cm"
    directory.mkdir()
    backend = open_backend(f"configmap://{directory}")
    key = ConfigKey("p", "g", "s", "1", "n")

    async def body() -> None:
        try:
            assert backend.registry is None
            assert backend.config.writable is False
            with pytest.raises(ReadOnly):
                await backend.config.put(key, b"x")
            with pytest.raises(ReadOnly):
                await backend.config.delete(key)
            assert (await backend.config.list())[0] == []
            assert not (directory / key.path).exists()
        finally:
            await backend.close()

    asyncio.run(body())
