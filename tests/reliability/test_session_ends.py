"""Every session a loader created is destroyed (issue 16, item 4): clients that leave right after
their first frame, many at once, through a real gateway to a real loader. wrapperDestroy used to
be skipped for some when the destroy overtook the create in the worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.gateway.support import GatewayProcess, Serving, api_yaml, first_frame, metric_value
from tests.support import WRAPPERS, wait_for

pytestmark = pytest.mark.timeout(180)

SESSIONS = 1000
AT_ONCE = 50


# One worker with one licence: a session holds it from its create to its destroy, so a session that
# gets it proves every earlier one was destroyed.
SERVING = Serving(
    schemas=(api_yaml("session_sync", "session", "", "echo"),),
    loaders=((WRAPPERS / "session_sync", "--workers", "1", "--lic", "1"),),
    services=("session_sync",),
)


def test_sessions_dropped_right_after_the_first_frame_are_all_destroyed(
    gw: GatewayProcess, tmp_path: Path
) -> None:
    created, destroyed = tmp_path / "created", tmp_path / "destroyed"
    created.mkdir()
    destroyed.mkdir()
    # A create that takes a few ms: long enough for the worker to start reading the next frames
    # (the destroy among them) on another thread meanwhile.
    first = first_frame(
        "session_sync", 0, "hi", created=str(created), marker=str(destroyed), create_sleep="0.003"
    )

    async def one() -> None:
        ws = await connect(f"{gw.ws_url}/v1/private/session_sync")
        await ws.send(first)
        ws.transport.abort()  # gone at once: no close handshake, no waiting for a result

    async def run() -> None:
        for start in range(0, SESSIONS, AT_ONCE):
            await asyncio.gather(*(one() for _ in range(min(AT_ONCE, SESSIONS - start))))

    asyncio.run(run())

    # The gateway has ended every session (each sent its destroy after its create)...
    wait_for(
        lambda: (
            metric_value(gw.client.get("/metrics").text, "ase_gateway_sessions_open", service="session_sync")
            == 0
        ),
        60,
        "the gateway's sessions all ended",
    )
    # ... and one more session has had the only licence: every session created before it was
    # destroyed (its licence comes back after wrapperDestroy).
    assert asyncio.run(_one_full_session(gw)) == 0
    names = {p.name.removeprefix("created-") for p in created.iterdir()}
    assert names, "no session reached the loader"
    assert names == {p.name.removeprefix("destroyed-") for p in destroyed.iterdir()}


async def _one_full_session(gw: GatewayProcess) -> int:
    async with connect(f"{gw.ws_url}/v1/private/session_sync") as ws:
        await ws.send(first_frame("session_sync", 2, "last"))
        return int(orjson.loads(await ws.recv())["header"]["code"])


def _gone(gw: GatewayProcess) -> float:
    """Sessions whose client left before they ended (code -1 in the gateway's metrics)."""
    text = gw.client.get("/metrics").text
    return metric_value(text, "ase_gateway_requests_total", service="session_sync", mode="session", code="-1")


def test_a_client_gone_while_its_session_waits_for_a_licence_makes_no_loader_session(
    gw: GatewayProcess, tmp_path: Path
) -> None:
    """Item 4: the loader's only licence is held; a client opens a session and leaves while it
    waits in line. The gateway gives up its place at once: when the licence comes free, no
    loader session is created for it (wrapperCreate never runs), and the next client gets it."""
    held, left = tmp_path / "held", tmp_path / "left"
    held.mkdir()
    left.mkdir()
    before = _gone(gw)

    async def run() -> None:
        async with connect(f"{gw.ws_url}/v1/private/session_sync") as holder:
            await holder.send(first_frame("session_sync", 0, "hold", created=str(held)))
            assert orjson.loads(await holder.recv())["header"]["code"] == 0  # it has the licence
            leaver = await connect(f"{gw.ws_url}/v1/private/session_sync")
            await leaver.send(first_frame("session_sync", 0, "gone", created=str(left)))
            leaver.transport.abort()
            # The gateway saw it go (not after the queue timeout, 10110: that would be later).
            await asyncio.to_thread(
                wait_for, lambda: _gone(gw) == before + 1, 30, "the leaver's session ended"
            )
            await holder.send(orjson.dumps({"header": {"status": 2}}).decode())
            async for _ in holder:
                pass

    asyncio.run(run())
    assert asyncio.run(_one_full_session(gw)) == 0
    assert len(list(held.iterdir())) == 1
    assert list(left.iterdir()) == []  # no wrapperCreate for the client that left
