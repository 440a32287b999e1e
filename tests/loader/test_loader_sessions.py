"""Sessions over the bidi stream: sync and async results, end rules, cancel, timeouts, 10202."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ase_serving import errors
from ase_serving.errors import BadRequest
from ase_serving.loader.client import LoaderClient
from ase_serving.protocol.items import DataItem, Request, Status
from tests.conftest import StartLoader
from tests.support import WRAPPERS, LoaderProcess, project_copy, wait_for

pytestmark = pytest.mark.timeout(60)


def item(data: bytes, status: int) -> DataItem:
    return DataItem(key="in", data=data, status=status)


@pytest.fixture(scope="module")
def sync_loader(module_loaders: StartLoader) -> LoaderProcess:
    return module_loaders(WRAPPERS / "session_sync", "--lic", "2")


@pytest.fixture(scope="module")
def sync(sync_loader: LoaderProcess) -> LoaderClient:
    return sync_loader.client()


def _idle(c: LoaderClient) -> bool:
    info = c.info()
    return info.lic_busy == 0 and info.sessions == 0


def test_sync_session_echoes_frames_and_ends_with_status_2(sync: LoaderClient, tmp_path: Path) -> None:
    first = Request(sid="sync1", params={"marker": str(tmp_path)}, status=Status.BEGIN)
    first.items = [item(b"a", Status.BEGIN)]
    sess = sync.session(first)
    first_result = sess.recv(timeout=10)
    assert first_result is not None
    assert (first_result.status, first_result.sid, first_result.items[0].data) == (
        Status.BEGIN,
        "sync1",
        b"a",
    )
    sess.send(Status.CONTINUE, [item(b"b", Status.CONTINUE)])
    sess.send(Status.END, [item(b"c", Status.END)])
    rest = sess.results(timeout=10)
    assert [(r.code, r.status, [i.data for i in r.items]) for r in rest] == [
        (0, Status.CONTINUE, [b"b"]),
        (0, Status.END, [b"c"]),
    ]
    assert sess.recv(timeout=5) is None  # the stream ended after the status-2 result
    with pytest.raises(BadRequest) as exc:
        sess.send(Status.CONTINUE, [item(b"late", Status.CONTINUE)])
    assert exc.value.code == errors.FRAME_AFTER_END
    wait_for(lambda: (tmp_path / "destroyed-s1-sync1").exists() or list(tmp_path.glob("destroyed-*")))
    wait_for(lambda: _idle(sync), what="slot released")


def test_wrapper_error_in_a_frame_ends_the_session(sync: LoaderClient, tmp_path: Path) -> None:
    first = Request(sid="bad", params={"marker": str(tmp_path), "fail_write": "1"}, status=Status.BEGIN)
    sess = sync.session(first)
    sess.send(Status.CONTINUE, [item(b"x", Status.CONTINUE)])
    results = sess.results(timeout=10)
    assert [(r.code, r.message, r.status) for r in results] == [(10077, "write refused (10077)", Status.END)]
    wait_for(lambda: list(tmp_path.glob("destroyed-*")), what="wrapperDestroy after the error")
    wait_for(lambda: _idle(sync), what="slot released")


def test_client_cancel_runs_destroy_and_frees_the_slot(sync: LoaderClient, tmp_path: Path) -> None:
    sess = sync.session(Request(sid="gone", params={"marker": str(tmp_path)}, status=Status.BEGIN))
    sess.send(Status.CONTINUE, [item(b"1", Status.CONTINUE)])
    got = sess.recv(timeout=10)
    assert got is not None and got.items[0].data == b"1"
    assert sync.info().sessions == 1
    sess.close()  # the caller goes away mid-session
    wait_for(lambda: list(tmp_path.glob("destroyed-*")), what="wrapperDestroy after cancel")
    wait_for(lambda: _idle(sync), what="slot released after cancel")


def test_all_slots_held_by_sessions_gives_10110(sync: LoaderClient, tmp_path: Path) -> None:
    held = [sync.session(Request(sid=f"h{i}", status=Status.BEGIN)) for i in range(2)]
    wait_for(lambda: sync.info().sessions == 2, what="two open sessions")
    extra = sync.session(Request(sid="extra", status=Status.BEGIN))
    assert [r.code for r in extra.results(timeout=10)] == [errors.NO_LICENCE]
    assert sync.once(Request()).code == errors.UNSUPPORTED_MODE  # session-only service
    for s in held:
        s.close()
    wait_for(lambda: _idle(sync), what="slots released")


def test_idle_session_times_out_with_10114(loaders: StartLoader, tmp_path: Path) -> None:
    project = project_copy("session_sync", tmp_path, "[loader]\nread_timeout = 0.4")
    loader = loaders(project)
    c = loader.client()
    sess = c.session(Request(sid="idle", params={"marker": str(tmp_path)}, status=Status.BEGIN))
    t0 = time.monotonic()
    results = sess.results(timeout=10)
    assert [r.code for r in results] == [errors.TIMEOUT]
    assert "no frame for 0.4 s (read_timeout)" in results[0].message
    assert 0.3 < time.monotonic() - t0 < 5
    wait_for(lambda: list(tmp_path.glob("destroyed-*")), what="wrapperDestroy after the idle timeout")
    wait_for(lambda: _idle(c), what="slot released")


def test_session_longer_than_session_timeout(loaders: StartLoader, tmp_path: Path) -> None:
    project = project_copy("session_sync", tmp_path, "[loader]\nsession_timeout = 0.6\nread_timeout = 10")
    c = loaders(project).client()
    sess = c.session(Request(sid="long", status=Status.BEGIN))
    deadline = time.monotonic() + 10
    codes: list[int] = []
    while not sess.ended and time.monotonic() < deadline:
        sess.send(Status.CONTINUE, [item(b"tick", Status.CONTINUE)])
        res = sess.recv(timeout=10)
        if res is not None:
            codes.append(res.code)
    # The session may end while the loop waits for a tick's answer: its last results are queued.
    while (res := sess.recv(timeout=10)) is not None:
        codes.append(res.code)
    assert codes[-1] == errors.TIMEOUT and set(codes[:-1]) == {0}
    wait_for(lambda: _idle(c), what="slot released")


@pytest.fixture(scope="module")
def async_client(module_loaders: StartLoader) -> LoaderClient:
    return module_loaders(WRAPPERS / "session_async", "--lic", "2").client()


def test_async_results_arrive_through_callback(async_client: LoaderClient) -> None:
    sess = async_client.session(Request(sid="as1", status=Status.BEGIN, items=[item(b"one", Status.BEGIN)]))
    sess.send(Status.CONTINUE, [item(b"two", Status.CONTINUE)])
    sess.send(Status.END, [item(b"three", Status.END)])
    results = sess.results(timeout=10)
    assert [r.code for r in results] == [0, 0, 0]
    assert [[i.data for i in r.items] for r in results] == [[b"ONE"], [b"TWO"], [b"THREE", b"END"]]
    assert [r.status for r in results] == [Status.BEGIN, Status.CONTINUE, Status.END]
    wait_for(lambda: _idle(async_client), what="slot released")


def test_frame_after_the_last_frame_is_10202(async_client: LoaderClient, tmp_path: Path) -> None:
    # The session waits for its async end (held by the gate) when the caller sends one frame too many.
    first = Request(sid="as2", params={"gate": str(tmp_path / "gate")}, status=Status.BEGIN)
    sess = async_client.session(first)
    sess.send(Status.END, [item(b"last", Status.END)])
    sess.send(Status.CONTINUE, [item(b"too late", Status.CONTINUE)])
    results = sess.results(timeout=10)
    assert [(r.code, r.status) for r in results][-1] == (errors.FRAME_AFTER_END, Status.END)
    assert results[-1].message == "frame sent after the session ended"
    (tmp_path / "gate").touch()
    wait_for(lambda: _idle(async_client), what="slot released")


def test_async_client_once_info_and_session(sync_loader: LoaderProcess, tmp_path: Path) -> None:
    import asyncio

    from ase_serving.loader.client import AsyncLoaderClient

    async def scenario() -> None:
        c = AsyncLoaderClient(sync_loader.grpc, timeout=10)
        try:
            assert (await c.info()).service_id == "session_sync"
            assert (await c.once(Request())).code == errors.UNSUPPORTED_MODE
            sess = c.session(Request(sid="aio", params={"marker": str(tmp_path)}, status=Status.BEGIN))
            await sess.send(Status.CONTINUE, [item(b"x", Status.CONTINUE)])
            await sess.send(Status.END, [item(b"y", Status.END)])
            got = [await sess.recv(), await sess.recv()]
            assert [(r.status, r.items[0].data) for r in got if r] == [
                (Status.BEGIN, b"x"),
                (Status.END, b"y"),
            ]
            assert await sess.recv() is None
            with pytest.raises(BadRequest):
                await sess.send(Status.CONTINUE, [])
        finally:
            await c.close()

    asyncio.run(scenario())
    wait_for(lambda: list(tmp_path.glob("destroyed-*")), what="wrapperDestroy")
