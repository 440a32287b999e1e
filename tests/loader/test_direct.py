"""Once calls straight to a worker's own Unix socket, as a gateway on the loader's host sends them.

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
from ase_serving.loader.wire_client import WireLoaderClient
from ase_serving.protocol.items import Request, Result
from tests.conftest import StartLoader
from tests.loader.test_loader_licences import _gated
from tests.support import WRAPPERS, LoaderProcess, project_copy, wait_for

pytestmark = pytest.mark.timeout(90)


def direct_paths(loader: LoaderProcess) -> list[Path]:
    """The workers' sockets of ``loader`` (``<its data socket>-w<index>.sock``)."""
    folder = Path(tempfile.gettempdir()) / f"ase-{os.getuid()}"
    return sorted(folder.glob(f"*-{loader.pid}-w*.sock"))


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


def test_a_direct_socket_takes_once_calls_only(loaders: StartLoader) -> None:
    loader = loaders(WRAPPERS / "echo", "--workers", "1", "--lic", "2")
    [path] = direct_paths(loader)

    async def run() -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(path))
        hello = await reader.readexactly(wire.HEADER_SIZE)
        op, _f, _r, _id, _code, length = wire.HEADER.unpack(hello)
        assert op == wire.OP_HELLO
        await reader.readexactly(length)
        writer.write(wire.HEADER.pack(wire.OP_CREATE, 0, 0, 1, 0, 0))  # a session: not here
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 10)  # closed by the worker
        writer.close()
        return rest

    assert asyncio.run(run()) == b""
    assert direct_once(path, Request(sid="still", params={})).code == 0  # the worker goes on


def test_direct_false_leaves_every_call_to_the_front(loaders: StartLoader, tmp_path: Path) -> None:
    project = project_copy("echo", tmp_path, "[loader]\ndirect = false")
    loader = loaders(project)
    assert direct_paths(loader) == []
    assert loader.client().once(Request(sid="relayed", params={})).code == 0
