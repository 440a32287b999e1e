"""A worker that dies (os._exit, segfault) ends its calls with 10911 at once and is restarted."""

from __future__ import annotations

import time

import pytest

from ase_serving import errors
from ase_serving.loader.client import LoaderClient
from ase_serving.protocol.items import DataItem, Request, Status
from tests.conftest import StartLoader
from tests.support import WRAPPERS, LoaderProcess, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def crasher(module_loaders: StartLoader) -> LoaderProcess:
    return module_loaders(WRAPPERS / "crasher", "--workers", "1", "--lic", "2")


def _serving_again(c: LoaderClient, restarts: int) -> bool:
    info = c.info()
    w = info.workers[0]
    return w.state == "ready" and w.restarts == restarts and info.lic_total == 2


@pytest.mark.parametrize(("how", "why"), [("segv", "signal SIGSEGV"), ("exit", "exit code 7")])
def test_worker_death_is_10911_then_restart(crasher: LoaderProcess, how: str, why: str) -> None:
    c = crasher.client()
    before = c.info().workers[0]
    t0 = time.monotonic()
    res = c.once(Request(sid="boom", params={"how": how}))
    assert time.monotonic() - t0 < 1.0
    assert res.code == errors.WORKER_DIED
    assert res.message == (
        f"engine worker 1 (pid {before.pid}) died ({why}) while running this request; it is being restarted"
    )
    wait_for(lambda: _serving_again(c, before.restarts + 1), what="worker restarted")
    ok = c.once(Request(params={"how": "ok"}))
    assert ok.code == 0
    assert int(ok.items[0].data) == c.info().workers[0].pid != before.pid
    assert crasher.proc.poll() is None  # the loader itself never went down


def test_session_on_a_dying_worker_ends_with_10911(crasher: LoaderProcess) -> None:
    c = crasher.client()
    restarts = c.info().workers[0].restarts
    sess = c.session(Request(sid="sx", status=Status.BEGIN))
    sess.send(Status.CONTINUE, [DataItem(key="a", data=b"segv")])
    results = sess.results(timeout=10)
    assert [r.code for r in results] == [errors.WORKER_DIED]
    assert "died (signal SIGSEGV)" in results[0].message
    wait_for(lambda: _serving_again(c, restarts + 1), what="worker restarted")
    assert c.info().sessions == 0
