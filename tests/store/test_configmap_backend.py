"""The configmap backend on real directories laid out like a Kubernetes ConfigMap volume."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import pytest

from ase_serving.store import (
    ConfigEvent,
    ConfigKey,
    ConfigScope,
    InvalidName,
    NotFound,
    ReadOnly,
    StoreUnavailable,
    open_backend,
)
from ase_serving.store.configmap import DirConfigStore, parse_address
from tests.support import run

T = TypeVar("T")
FAST = 0.05  # poll interval for tests that do not test the default


async def next_event(events: AsyncIterator[ConfigEvent], timeout: float = 10.0) -> ConfigEvent:
    return await asyncio.wait_for(anext(events), timeout)


class KubeVolume:
    """A directory written the way the kubelet writes a ConfigMap volume.

    Data lives in ``..<timestamp>/``; ``..data`` points at it; every key is a symlink ``key -> ..data/key``.
    An update writes a new timestamp dir, swaps ``..data`` atomically (rename of a symlink), then removes
    the symlinks of keys that are gone and the old dir.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.generation = 0
        self.keys: set[str] = set()

    def apply(self, files: dict[str, bytes]) -> None:
        self.generation += 1
        data = self.root / f"..2026_11_25_{self.generation:02d}"
        data.mkdir()
        for name, content in files.items():
            (data / name).write_bytes(content)
        old = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
        tmp = self.root / "..data_tmp"
        os.symlink(data.name, tmp)
        os.replace(tmp, self.root / "..data")
        for name in files:
            if not (self.root / name).is_symlink():
                os.symlink(f"..data/{name}", self.root / name)
        for name in self.keys - set(files):
            (self.root / name).unlink()
        self.keys = set(files)
        if old is not None:
            shutil.rmtree(self.root / old)


def test_parse_address() -> None:
    assert parse_address("configmap:///etc/ase/config") == (Path("/etc/ase/config"), "default", "default")
    assert parse_address("configmap:///d%20x?project=p&group=g") == (Path("/d x"), "p", "g")
    for bad in ("configmap://etc/ase", "configmap:///d?region=x", "configmap:///d?project=a/b", "configmap:"):
        with pytest.raises(InvalidName):
            parse_address(bad)


def test_both_layouts(tmp_path: Path) -> None:
    nested = tmp_path / "proj" / "grp" / "ocr" / "v2"
    nested.mkdir(parents=True)
    (nested / "schema.json").write_bytes(b'{"nested": true}')
    (tmp_path / "asr--v1--schema.json").write_bytes(b'{"flat": true}')
    (tmp_path / "asr--v1--model--a.yaml").write_bytes(b"a: 1")  # the name may hold "--"

    async def main() -> None:
        backend = open_backend(f"configmap://{tmp_path}?project=team&group=blue")
        assert backend.kind == "configmap" and backend.registry is None
        assert backend.config.writable is False
        await backend.config.ping()
        items, revision = await backend.config.list()
        assert [i.key.path for i in items] == [
            "proj/grp/ocr/v2/schema.json",
            "team/blue/asr/v1/model--a.yaml",
            "team/blue/asr/v1/schema.json",
        ]
        assert revision == 3 and all(i.revision == 1 for i in items)
        assert sorted(i.store_revision for i in items) == [1, 2, 3]
        flat = await backend.config.get(ConfigKey("team", "blue", "asr", "v1", "schema.json"))
        assert flat.content == b'{"flat": true}'
        only_team, _ = await backend.config.list(ConfigScope("team", "blue", "asr"))
        assert len(only_team) == 2
        with pytest.raises(NotFound):
            await backend.config.get(ConfigKey("default", "default", "asr", "v1", "schema.json"))
        await backend.close()

    run(main())


@pytest.mark.timeout(30)
def test_kubernetes_symlink_swap_is_seen(tmp_path: Path) -> None:
    volume = KubeVolume(tmp_path / "cm")
    volume.apply({"asr--v1--schema.json": b"one", "ocr--v1--schema.json": b"ocr"})
    asr = ConfigKey("default", "default", "asr", "v1", "schema.json")
    ocr = ConfigKey("default", "default", "ocr", "v1", "schema.json")

    async def main() -> None:
        backend = open_backend(f"configmap://{volume.root}")  # the default 0.5 s poll
        items, revision = await backend.config.list()
        assert [(i.key, i.content) for i in items] == [(asr, b"one"), (ocr, b"ocr")]
        events = backend.config.watch(ConfigScope(), revision)

        started = time.monotonic()
        volume.apply({"asr--v1--schema.json": b"two"})  # asr changed, ocr removed
        got = [await next_event(events), await next_event(events)]
        assert time.monotonic() - started < 5.0
        assert [(e.kind, e.key) for e in got] == [("put", asr), ("delete", ocr)]
        assert got[0].item is not None and (got[0].item.content, got[0].item.revision) == (b"two", 2)
        assert [e.store_revision for e in got] == [revision + 1, revision + 2]

        assert [(i.revision, i.content) for i in await backend.config.history(asr)] == [
            (1, b"one"),
            (2, b"two"),
        ]
        assert (await backend.config.get(asr, revision=1)).content == b"one"
        with pytest.raises(NotFound):
            await backend.config.get(ocr)
        assert len(await backend.config.history(ocr)) == 1  # a deleted item keeps its history

        # A key coming back continues its revisions; an unchanged rewrite is no event.
        volume.apply({"asr--v1--schema.json": b"two", "ocr--v1--schema.json": b"ocr again"})
        back = await next_event(events)
        assert back.key == ocr and back.item is not None and back.item.revision == 2
        assert back.store_revision == revision + 3
        await events.aclose()
        await backend.close()

    run(main())


def test_writes_are_refused(tmp_path: Path) -> None:
    store = DirConfigStore(tmp_path)
    key = ConfigKey("default", "default", "asr", "v1", "schema.json")
    with pytest.raises(ReadOnly, match="kubectl apply"):
        run(store.put(key, b"x"))
    with pytest.raises(ReadOnly, match="read-only"):
        run(store.delete(key))
    assert not any(tmp_path.iterdir())


def test_bad_names_are_skipped_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "asr--v1--ok.json").write_bytes(b"ok")
    (tmp_path / "asr--v 1--space.json").write_bytes(b"bad")
    (tmp_path / "no-separators.json").write_bytes(b"bad")
    (tmp_path / ".hidden--v1--x").write_bytes(b"hidden, silently")
    (tmp_path / "p" / "g" / "s" / "v").mkdir(parents=True)
    (tmp_path / "p" / "g" / "s" / "v" / "-leading-dash").write_bytes(b"bad")
    (tmp_path / "p" / "g" / "s" / "v" / "good.txt").write_bytes(b"good")
    (tmp_path / "p" / "stray.txt").write_bytes(b"bad depth")
    store = DirConfigStore(tmp_path, poll_interval=FAST)

    with caplog.at_level(logging.WARNING, logger="ase_serving.store.configmap"):
        items, _ = run(store.list())
        store.refresh(force=True)
    assert [i.key.path for i in items] == ["default/default/asr/v1/ok.json", "p/g/s/v/good.txt"]
    warned = [r.getMessage() for r in caplog.records]
    for name in ("asr--v 1--space.json", "no-separators.json", "-leading-dash", "stray.txt"):
        assert sum(name in m for m in warned) == 1, (name, warned)
    assert not any(".hidden" in m for m in warned)


def test_missing_directory_is_unavailable_not_a_delete(tmp_path: Path) -> None:
    root = tmp_path / "cm"
    store = DirConfigStore(root, poll_interval=FAST)
    key = ConfigKey("default", "default", "asr", "v1", "schema.json")

    async def main() -> None:
        with pytest.raises(StoreUnavailable, match="does not exist"):
            await store.ping()
        root.mkdir()
        (root / "asr--v1--schema.json").write_bytes(b"kept")
        await store.ping()
        _, revision = await store.list()
        events = store.watch(ConfigScope(), revision)

        shutil.rmtree(root)  # unmounted: keep the last known config, say the store is unavailable
        with pytest.raises(StoreUnavailable, match="is the ConfigMap mounted"):
            await next_event(events)
        with pytest.raises(StoreUnavailable):
            await store.list()
        assert store._live[key].item.content == b"kept"
        assert len(store._events) == revision  # no delete was recorded

    run(main())


def test_watch_from_zero_replays_everything_in_scope(tmp_path: Path) -> None:
    for service in ("asr", "ocr", "tts"):
        (tmp_path / f"{service}--v1--schema.json").write_bytes(service.encode())
    store = DirConfigStore(tmp_path, poll_interval=FAST)

    async def main() -> None:
        events = store.watch(ConfigScope(service="ocr"), 0)
        first = await next_event(events)
        assert first.key.service == "ocr" and first.store_revision == 2
        (tmp_path / "ocr--v1--schema.json").write_bytes(b"ocr 2")
        (tmp_path / "tts--v1--schema.json").write_bytes(b"tts 2")  # out of scope
        second = await next_event(events)
        assert second.item is not None and second.item.content == b"ocr 2"
        await events.aclose()

    run(main())
