"""Licence slots: concurrency across workers, 10110 at once when every slot is busy, timeouts."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ase_serving import errors
from ase_serving.loader.client import LoaderClient
from ase_serving.protocol.items import Request, Result
from tests.conftest import StartLoader
from tests.loader.support import gated as _gated
from tests.support import WRAPPERS, LoaderProcess, project_copy, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def slow(module_loaders: StartLoader) -> LoaderProcess:
    return module_loaders(WRAPPERS / "slow", "--workers", "2", "--lic", "1")


def test_calls_run_concurrently_and_the_next_one_gets_10110(slow: LoaderProcess, tmp_path: Path) -> None:
    c = slow.client()
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(c.once, _gated(tmp_path, f"held{i}")) for i in range(2)]
        # Both calls are inside the wrapper at the same time: one per worker.
        wait_for(lambda: len(list(tmp_path.glob("started.*"))) == 2, what="both calls started")
        info = c.info()
        assert (info.lic_total, info.lic_busy) == (2, 2)
        assert sorted(w.lic_busy for w in info.workers) == [1, 1]
        t0 = time.monotonic()
        extra = c.once(Request(sid="extra", params={"sleep": "0"}))
        assert extra.code == errors.NO_LICENCE
        assert time.monotonic() - t0 < 1.0  # answered at once, not queued
        (tmp_path / "gate").touch()
        results: list[Result] = [f.result(timeout=30) for f in held]
    assert [(r.code, r.items[0].data) for r in results] == [(0, b"held0"), (0, b"held1")]
    wait_for(lambda: c.info().lic_busy == 0, what="slots free again")
    assert c.once(Request(sid="after", params={"sleep": "0"})).code == 0


def test_client_deadline_gives_10114(slow: LoaderProcess) -> None:
    c = slow.client()
    res = c.once(Request(params={"sleep": "0.5"}), timeout=0.1)
    assert res.code == errors.TIMEOUT
    wait_for(lambda: c.info().lic_busy == 0, what="slot free after the late call returned")


def test_once_timeout_answers_10114_and_keeps_the_slot_busy(loaders: StartLoader, tmp_path: Path) -> None:
    project = project_copy("slow", tmp_path, "[loader]\nonce_timeout = 0.3")
    loader = loaders(project)
    c = loader.client()
    gate = tmp_path / "gate"
    t0 = time.monotonic()
    res = c.once(Request(params={"gate": str(gate)}))
    elapsed = time.monotonic() - t0
    assert res.code == errors.TIMEOUT
    assert "did not answer within 0.3 s" in res.message
    assert 0.25 < elapsed < 3
    # The engine is still busy with it: the slot is not offered again until it returns.
    assert c.info().lic_busy == 1
    assert c.once(Request(params={"sleep": "0"})).code == errors.NO_LICENCE
    gate.touch()
    wait_for(lambda: c.info().lic_busy == 0, what="slot free once the wrapper returned")
    assert c.once(Request(params={"sleep": "0"})).code == 0


def test_cpu_bound_work_spreads_over_workers(loaders: StartLoader) -> None:
    loader = loaders(WRAPPERS / "cpu", "--workers", "2", "--lic", "1")
    c = loader.client()
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(c.once, Request(params={"ms": "150"})) for _ in range(2)]
        codes = [f.result(timeout=30).code for f in futures]
    # Two calls, two workers: neither is refused (each worker has a slot).
    assert codes == [0, 0]


def test_lic_slots_per_worker(loaders: StartLoader, tmp_path: Path) -> None:
    loader = loaders(WRAPPERS / "slow", "--workers", "1", "--lic", "3")
    c: LoaderClient = loader.client()
    with ThreadPoolExecutor(3) as pool:
        held = [pool.submit(c.once, _gated(tmp_path, f"h{i}")) for i in range(3)]
        wait_for(lambda: len(list(tmp_path.glob("started.*"))) == 3, what="three calls in one worker")
        assert c.once(Request(params={"sleep": "0"})).code == errors.NO_LICENCE
        (tmp_path / "gate").touch()
        assert [f.result(timeout=30).code for f in held] == [0, 0, 0]
