"""Once calls and sessions straight to a worker's own Unix socket, as a gateway on the loader's
host sends them.

The worker's slots are shared by these calls and the ones the loader relays (10110 either way when
they are all taken); the loader's /metrics and licence counts include them (reported by the
worker a moment later); a worker that dies ends them with 10911 and serves them again after its
restart; a draining loader refuses new ones with 11503 and lets running ones finish.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ase_serving import errors, wire
from ase_serving.loader.wire_client import SessionLimits, WireLoaderClient, WireSession
from ase_serving.protocol.items import DataItem, Request, Result, Status
from tests.conftest import StartLoader
from tests.loader.support import gated as _gated
from tests.support import WRAPPERS, LoaderProcess, project_copy, wait_for

pytestmark = pytest.mark.timeout(90)


def direct_paths(loader: LoaderProcess) -> list[Path]:
    """The workers' sockets of ``loader`` (``<its data socket>-w<index>.sock``)."""
    folder = Path(tempfile.gettempdir()) / f"ase-{os.getuid()}"
    service, version = loader.line.split()[1:3]  # "loader NAME VERSION serving on ..."
    return sorted(folder.glob(f"{service}-{version}-{loader.pid}-w*.sock"))


def direct_once(path: Path, req: Request, timeout: float = 30.0) -> Result:
    async def call() -> Result:
        client = WireLoaderClient(f"unix:{path}")
        try:
            return await client.once(req, timeout)
        finally:
            await client.close()

    return asyncio.run(call())


def once_calls(loader: LoaderProcess) -> int:
    _, body = loader.http("/metrics")
    lines = body.decode().splitlines()
    return int(sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith("ase_loader_requests_total{")))


def counted(loader: LoaderProcess, method: str, code: int) -> float:
    """``ase_loader_requests_total`` of ``loader`` for ``method`` and ``code`` (0 when absent)."""
    for line in loader.http("/metrics")[1].decode().splitlines():
        name, _, rest = line.partition("{")
        labels, _, value = rest.partition("} ")
        if name == "ase_loader_requests_total" and {f'method="{method}"', f'code="{code}"'} <= set(
            labels.split(",")
        ):
            return float(value)
    return 0.0


def test_direct_and_relayed_calls_share_the_slots(loaders: StartLoader, tmp_path: Path) -> None:
    loader = loaders(WRAPPERS / "slow", "--workers", "1", "--lic", "1")
    [path] = direct_paths(loader)
    c = loader.client()
    before = once_calls(loader)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(direct_once, path, _gated(tmp_path, "held"))
        wait_for(lambda: list(tmp_path.glob("started.*")), what="the direct call running")
        # The loader counts the worker's slot as taken (reported by the worker): 10110 through it.
        wait_for(lambda: c.info().lic_busy == 1, what="the direct call's slot counted")
        assert c.once(Request(sid="relayed", params={"sleep": "0"})).code == errors.NO_LICENCE
        assert direct_once(path, Request(sid="second", params={"sleep": "0"})).code == errors.NO_LICENCE
        (tmp_path / "gate").touch()
        result = held.result(timeout=30)
    assert (result.code, result.items[0].data) == (0, b"held")
    wait_for(lambda: c.info().lic_busy == 0, what="the slot free again")
    # Every call is in the loader's /metrics, the direct ones too: held, the relayed 10110 and
    # the direct 10110.
    wait_for(lambda: once_calls(loader) - before == 3, what="/metrics counting the direct calls")

    # The other way round: a relayed call holds the slot, a direct one is refused.
    (tmp_path / "gate").unlink()
    for f in tmp_path.glob("started.*"):
        f.unlink()
    with ThreadPoolExecutor(1) as pool:
        relayed = pool.submit(c.once, _gated(tmp_path, "relayed"))
        wait_for(lambda: list(tmp_path.glob("started.*")), what="the relayed call running")
        assert direct_once(path, Request(sid="direct", params={"sleep": "0"})).code == errors.NO_LICENCE
        (tmp_path / "gate").touch()
        assert relayed.result(timeout=30).code == 0


def test_a_worker_that_dies_ends_its_direct_calls_and_serves_again(loaders: StartLoader) -> None:
    loader = loaders(WRAPPERS / "crasher", "--workers", "1", "--lic", "2")
    [path] = direct_paths(loader)

    async def run() -> tuple[Result, Result]:
        client = WireLoaderClient(f"unix:{path}")
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            died = await client.once(Request(sid="boom", params={"how": "exit"}), 30)
            assert loop.time() - t0 < 5.0  # at once, not at a timeout
            # The worker comes back on the same socket; until then its socket refuses (11503).
            while True:
                again = await client.once(Request(sid="after", params={"how": "ok"}), 30)
                if again.code != errors.NO_LOADER:
                    return died, again
                assert loop.time() - t0 < 60, again.message
                await asyncio.sleep(0.05)
        finally:
            await client.close()

    died, again = asyncio.run(run())
    assert died.code == errors.WORKER_DIED
    assert again.code == 0 and again.items[0].data != b""


def test_a_draining_loader_refuses_new_direct_calls_and_finishes_running_ones(
    loaders: StartLoader, tmp_path: Path
) -> None:
    loader = loaders(WRAPPERS / "slow", "--workers", "1", "--lic", "2")
    [path] = direct_paths(loader)

    async def run() -> tuple[Result, Result]:
        client = WireLoaderClient(f"unix:{path}")
        try:
            held = asyncio.create_task(client.once(_gated(tmp_path, "held"), 60))
            while not list(tmp_path.glob("started.*")):
                await asyncio.sleep(0.01)
            os.kill(loader.pid, signal.SIGTERM)
            while True:  # the same connection: the worker itself answers once it drains
                late = await client.once(Request(sid="late", params={"sleep": "0"}), 30)
                if late.code != 0:
                    break
                await asyncio.sleep(0.01)
            (tmp_path / "gate").touch()
            return await held, late
        finally:
            await client.close()

    held, late = asyncio.run(run())
    assert (held.code, held.items[0].data) == (0, b"held")
    assert late.code == errors.NO_LOADER and "draining" in late.message
    assert loader.proc.wait(30) == 0
    assert not path.exists()  # no new caller can connect


async def _greeted(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection to a worker's socket, past its greeting."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    op, _f, _r, _id, _code, length = wire.HEADER.unpack(await reader.readexactly(wire.HEADER_SIZE))
    assert op == wire.OP_HELLO
    await reader.readexactly(length)
    return reader, writer


def test_a_direct_caller_cannot_send_the_supervisors_ops(loaders: StartLoader) -> None:
    loader = loaders(WRAPPERS / "echo", "--workers", "1", "--lic", "2")
    [path] = direct_paths(loader)

    async def run() -> bytes:
        reader, writer = await _greeted(path)
        writer.write(wire.HEADER.pack(wire.OP_FINI, 0, 0, 1, 0, 0))  # the supervisor's: not here
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 10)  # closed by the worker
        writer.close()
        return rest

    assert asyncio.run(run()) == b""
    assert direct_once(path, Request(sid="still", params={})).code == 0  # the worker goes on


def _item(text: str, status: int = Status.CONTINUE) -> DataItem:
    return DataItem(key="text", data=text.encode(), status=status)


def _session_loader(
    loaders: StartLoader, tmp_path: Path, wrapper: str = "session_sync", lic: int = 1
) -> tuple[LoaderProcess, Path, Path]:
    """A one-worker loader of ``wrapper``, its worker's socket, and a folder for the
    session_sync wrapper's destroy markers."""
    loader = loaders(WRAPPERS / wrapper, "--workers", "1", "--lic", str(lic))
    [path] = direct_paths(loader)
    marker = tmp_path / "destroyed"
    marker.mkdir()
    return loader, path, marker


async def _until_end(session: WireSession) -> list[Result]:
    out = []
    while not session.ended:
        res = await session.recv()
        assert res is not None
        out.append(res)
    return out


def test_a_session_on_a_direct_socket_runs_its_pipelined_frames_in_order(
    loaders: StartLoader, tmp_path: Path
) -> None:
    loader, path, marker = _session_loader(loaders, tmp_path)
    c = loader.client()

    async def run() -> list[Result]:
        client = WireLoaderClient(f"unix:{path}")
        try:
            first = Request(sid="d1", params={"marker": str(marker)}, items=[_item("f0", Status.BEGIN)])
            session = client.session(first, 30, SessionLimits(15, 180))
            assert await session.answered() == 0
            # Every frame sent without waiting for a result: the worker runs them in order.
            for i in range(1, 30):
                await session.send(Status.CONTINUE, [_item(f"f{i}")])
            await session.send(Status.END, [_item("last", Status.END)])
            out = await _until_end(session)
            # The licence is the session's until it is destroyed: nobody else gets it meanwhile.
            wait_for(lambda: c.info().lic_busy == 1, what="the session's slot counted")
            await session.close()
            return out
        finally:
            await client.close()

    results = asyncio.run(run())
    assert [r.code for r in results] == [0] * len(results)
    assert [b.data for r in results for b in r.items] == [
        b"f0",
        *(f"f{i}".encode() for i in range(1, 30)),
        b"last",
    ]
    assert results[0].status == Status.BEGIN and results[-1].status == Status.END
    wait_for(lambda: len(list(marker.iterdir())) == 1, what="wrapperDestroy run")
    wait_for(lambda: c.info().lic_busy == 0, what="the slot free again")
    # The loader counts the session in its /metrics, as one through its front.
    wait_for(lambda: counted(loader, "session", 0) == 1, what="the session counted")


def test_a_destroy_sent_right_after_the_create_waits_for_it(loaders: StartLoader, tmp_path: Path) -> None:
    """Create and destroy in one write, 300 times: each destroy runs after its create, so every
    session that was created is destroyed (wrapperDestroy's marker) and every slot comes back.

    A create may also be refused for want of a licence (10103), and then its destroy finds no
    session: when a create runs longer than the worker's watcher looks (1 ms; a busy machine), a
    second thread reads the connection on, and with both licences held by creates still running,
    the next create finds none. That is the worker's rule, not a loss: refused ones are counted."""
    loader, path, marker = _session_loader(loaders, tmp_path, lic=2)
    n = 300
    refused: set[int] = set()

    async def run() -> None:
        reader, writer = await _greeted(path)

        async def answers() -> None:  # read as they come; a refused create ends its session
            while True:
                try:
                    head = await reader.readexactly(wire.HEADER_SIZE)
                except asyncio.IncompleteReadError:
                    return
                op, _flags, _r, call_id, code, length = wire.HEADER.unpack(head)
                await reader.readexactly(length)
                if op == wire.OP_SESSION_ACK and code == errors.NO_LICENCE:
                    refused.add(call_id)

        drain = asyncio.create_task(answers())
        for i in range(1, n + 1):
            first = wire.encode(Request(sid=f"s{i}", params={"marker": str(marker)}, items=[_item("x", 0)]))
            writer.write(
                wire.HEADER.pack(wire.OP_CREATE, 0, 0, i, 0, len(first))
                + first
                + wire.HEADER.pack(wire.OP_DESTROY, 0, 0, i, 0, 0)
            )
        await writer.drain()
        while len(list(marker.iterdir())) + len(refused) < n:
            assert not drain.done(), "the worker closed the connection"
            await asyncio.sleep(0.01)
        writer.close()
        await drain

    asyncio.run(run())
    assert len(list(marker.iterdir())) == n - len(refused)  # every session created was destroyed
    assert len(refused) < n
    wait_for(lambda: loader.client().info().lic_busy == 0, what="every slot free again")


def test_a_direct_callers_sessions_are_destroyed_when_it_goes_away(
    loaders: StartLoader, tmp_path: Path
) -> None:
    loader, path, marker = _session_loader(loaders, tmp_path)
    c = loader.client()

    async def run() -> None:
        client = WireLoaderClient(f"unix:{path}")
        first = Request(sid="left", params={"marker": str(marker)}, items=[_item("hi", Status.BEGIN)])
        session = client.session(first, 30, SessionLimits(15, 180))
        assert await session.answered() == 0
        await client.close()  # the caller goes away with the session open

    asyncio.run(run())
    wait_for(lambda: len(list(marker.iterdir())) == 1, what="wrapperDestroy run for the orphan")
    wait_for(lambda: c.info().lic_busy == 0, what="its slot free again")
    # The only licence is free: a session through the front opens.
    sess = c.session(Request(sid="next", status=Status.BEGIN, items=[_item("again", Status.BEGIN)]))
    sess.send(Status.END)
    results = list(sess)
    assert results and all(r.code == 0 for r in results)


def test_a_full_worker_refuses_a_direct_session_and_async_results_come_back_to_the_caller(
    loaders: StartLoader,
) -> None:
    loader = loaders(WRAPPERS / "session_async", "--workers", "1", "--lic", "1")
    [path] = direct_paths(loader)

    async def run() -> tuple[int, list[Result]]:
        client = WireLoaderClient(f"unix:{path}")
        try:
            first = Request(sid="a1", params={}, items=[_item("ab", Status.BEGIN)])
            session = client.session(first, 30, SessionLimits(15, 180))
            assert await session.answered() == 0
            # The only slot is this session's: a second one is refused at once.
            second = client.session(Request(sid="a2", params={}), 30, SessionLimits(15, 180))
            refused = await second.answered()
            await session.send(Status.END, [_item("cd", Status.END)])
            out = await _until_end(session)
            await session.close()
            return refused, out
        finally:
            await client.close()

    refused, results = asyncio.run(run())
    assert refused == errors.NO_LICENCE
    assert [b.data for r in results for b in r.items] == [b"AB", b"CD", b"END"]
    assert results[-1].status == Status.END


def test_the_callers_side_keeps_the_loaders_read_timeout(loaders: StartLoader) -> None:
    loader = loaders(WRAPPERS / "session_sync", "--workers", "1", "--lic", "1")
    [path] = direct_paths(loader)
    c = loader.client()

    async def run() -> Result | None:
        client = WireLoaderClient(f"unix:{path}")
        try:
            session = client.session(Request(sid="idle", params={}), 30, SessionLimits(0.3, 180))
            assert await session.answered() == 0
            res = await session.recv()  # no frame from here: the idle limit passes
            await session.close()
            return res
        finally:
            await client.close()

    res = asyncio.run(run())
    assert res is not None and res.code == errors.TIMEOUT
    assert res.message == "timeout: no frame for 0.3 s (read_timeout)"
    wait_for(lambda: c.info().lic_busy == 0, what="the slot free after the destroy")
    # The worker counts the session under the code its caller ended it with.
    wait_for(lambda: counted(loader, "session", errors.TIMEOUT) == 1, what="the timed-out session counted")


def test_direct_false_leaves_every_call_to_the_front(loaders: StartLoader, tmp_path: Path) -> None:
    project = project_copy("echo", tmp_path, "[loader]\ndirect = false")
    loader = loaders(project)
    assert direct_paths(loader) == []
    assert loader.client().once(Request(sid="relayed", params={})).code == 0
