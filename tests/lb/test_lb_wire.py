"""The LB's lean-wire port: a real ``python -m ase_serving.lb`` process and :class:`LbWireClient`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any

import pytest

from ase_serving import errors
from ase_serving.errors import BadRequest, NoLicence, NoLoader
from ase_serving.lb.lean import OP_LB_RELEASE
from ase_serving.lb.wire_client import LbWireClient
from tests.lb.lb_process import start_lb
from tests.support import run, until

S, V = "asr", "1.0"


async def in_use(client: LbWireClient) -> dict[str, int]:
    return {n.address: n.in_use for n in await client.nodes(S, V)}


@pytest.mark.timeout(60)
def test_pick_release_report_nodes_health_over_the_wire() -> None:
    with start_lb("--strategy", "loadMini") as lb:

        async def scenario() -> None:
            async with LbWireClient(lb.wire) as client:
                health = await client.health()
                assert (health.status, health.strategy, health.nodes, health.registry) == (
                    "ok",
                    "loadMini",
                    0,
                    "",
                )
                # Failures are answers with their code and the Balancer's message.
                with pytest.raises(NoLoader) as exc:
                    await client.pick(S, V)
                assert exc.value.code == errors.NO_LOADER
                assert "service 'asr' version '1.0'" in exc.value.message
                await client.report(S, V, "a:1", total=2, idle=2)
                await client.report(S, V, "b:1", total=1, idle=1)
                await client.report(S, V, "c:1", total=8, idle=8, live=False)
                assert sorted([(await client.pick(S, V))[0] for _ in range(3)]) == ["a:1", "a:1", "b:1"]
                with pytest.raises(NoLicence) as full:
                    await client.pick(S, V)
                assert full.value.code == errors.NO_LICENCE
                assert "every licence of service 'asr' version '1.0' is in use" in full.value.message
                # Released, then counted: the releases leave ahead of the next call.
                await client.release(S, V, "a:1")
                await client.release(S, V, "b:1")
                nodes = {n.address: n for n in await client.nodes(S, V)}
                assert {a: (n.avail, n.in_use, n.live) for a, n in nodes.items()} == {
                    "a:1": (1, 1, True),
                    "b:1": (1, 0, True),
                    "c:1": (8, 0, False),
                }
                assert nodes["a:1"].total == 2 and nodes["a:1"].age >= 0
                assert await client.pick(S, V, exclude=["a:1"]) == ["b:1"]
                with pytest.raises(NoLoader, match="2 excluded by the caller, 1 not live"):
                    await client.pick(S, V, exclude=["a:1", "b:1"])
                assert await client.pick(S, V, n=3) == ["a:1"]  # b:1 is full again
                await client.remove(S, V, "c:1")
                assert [n.address for n in await client.nodes()] == ["a:1", "b:1"]
                assert await client.nodes("tts") == []
                with pytest.raises(BadRequest) as bad:
                    await client.report("", V, "d:1", total=1, idle=1)
                assert bad.value.code == errors.SCHEMA_MISMATCH
                assert bad.value.message == "a report needs service, version and address"
                assert (await client.health()).nodes == 2

        run(scenario())
        assert lb.stop() == 0


@pytest.mark.timeout(60)
def test_releases_leave_in_one_frame_and_all_arrive() -> None:
    with start_lb("--strategy", "loadMini") as lb:

        async def scenario() -> None:
            async with LbWireClient(lb.wire) as client:
                await client.report(S, V, "a:1", total=100, idle=100)
                picked = await asyncio.gather(*(client.pick(S, V) for _ in range(50)))
                assert await in_use(client) == {"a:1": 50}
                conn = client._conn
                assert conn is not None
                ops: list[int] = []
                send = conn.send

                def spy(op: int, *args: Any) -> None:
                    ops.append(op)
                    send(op, *args)

                conn.send = spy  # type: ignore[method-assign]
                for (address,) in picked:
                    await client.release(S, V, address)  # queued: returns without a round trip
                assert client.queued_releases == 50 and ops == []
                assert await in_use(client) == {"a:1": 0}  # the 50 went first, in one frame
                assert ops.count(OP_LB_RELEASE) == 1

                # Released while no connection is open: sent on the next one (a release opens it).
                await client.report(S, V, "a:1", total=100, idle=100)
                again = await asyncio.gather(*(client.pick(S, V) for _ in range(3)))
                assert conn.transport is not None
                conn.transport.abort()
                await until(lambda: not client.connected, "the connection to go", 10)
                for (address,) in again:
                    await client.release(S, V, address)
                await until(lambda: client.queued_releases == 0, "the releases to be sent", 10)
                assert await in_use(client) == {"a:1": 0}

            # close() sends what is still queued.
            closing = LbWireClient(lb.wire)
            held = [(await closing.pick(S, V))[0] for _ in range(5)]
            for address in held:
                await closing.release(S, V, address)
            await closing.close()
            async with LbWireClient(lb.wire) as other:
                await until(
                    lambda: _in_use_is(other, {"a:1": 0}), "the releases sent on close to be counted", 10
                )

        run(scenario())
        assert lb.stop() == 0


async def _in_use_is(client: LbWireClient, want: dict[str, int]) -> bool:
    return await in_use(client) == want


@pytest.mark.timeout(60)
def test_a_lost_lb_fails_picks_in_flight_and_the_next_call_reconnects() -> None:
    lb = start_lb("--strategy", "loadMini")
    try:
        wire_port = lb.wire.rsplit(":", 1)[1]

        async def scenario() -> None:
            nonlocal lb
            client = LbWireClient(lb.wire, timeout=20.0)
            try:
                await client.report(S, V, "a:1", total=4, idle=4)
                assert await client.pick(S, V) == ["a:1"]
                os.kill(lb.proc.pid, signal.SIGSTOP)  # the pick below stays in flight
                inflight = asyncio.ensure_future(client.pick(S, V))
                await until(lambda: client._conn is not None and client._conn.pending, "a pick in flight", 10)
                lb.kill()
                with pytest.raises(NoLoader) as lost:
                    await inflight
                assert lost.value.code == errors.NO_LOADER
                assert lost.value.message.startswith(f"LB service at {lb.wire} unreachable: connection lost")
                # Nothing listens now: the next call tries again and says so.
                with pytest.raises(NoLoader, match=f"LB service at {lb.wire} unreachable: .*refused"):
                    await client.pick(S, V)
                # An LB on that port again: the next call connects to it.
                lb = start_lb("--strategy", "loadMini", "--wire-port", wire_port)
                await client.report(S, V, "b:1", total=1, idle=1)
                assert await client.pick(S, V) == ["b:1"]
            finally:
                await client.close()

        run(scenario())
    finally:
        lb.kill()


@pytest.mark.timeout(60)
def test_a_pick_answered_after_its_timeout_is_released() -> None:
    with start_lb("--strategy", "loadMini") as lb:

        async def scenario() -> None:
            async with LbWireClient(lb.wire, timeout=0.5) as client:
                await client.report(S, V, "a:1", total=4, idle=4)
                os.kill(lb.proc.pid, signal.SIGSTOP)
                try:
                    with pytest.raises(NoLoader, match=r"unreachable: no answer within 0.5 s"):
                        await client.pick(S, V)
                finally:
                    os.kill(lb.proc.pid, signal.SIGCONT)
                client.timeout = 20.0
                # The LB applied the pick after all (the frame was on the connection, ahead of any
                # Nodes call); its late answer comes back and the client releases it.
                await until(lambda: _in_use_is(client, {"a:1": 0}), "the late pick to be released", 10)
                assert client.queued_releases == 0

        run(scenario())
        assert lb.stop() == 0


def test_not_an_lb_wire_port_is_a_clear_no_loader() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def closed() -> None:
        async with LbWireClient(f"127.0.0.1:{port}", timeout=2.0) as client:
            with pytest.raises(NoLoader, match=f"LB service at 127.0.0.1:{port} unreachable: .*refused"):
                await client.pick(S, V)

    run(closed())
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        LbWireClient("lb-without-port")
    with start_lb() as lb:

        async def grpc_port() -> None:
            async with LbWireClient(lb.address, timeout=1.0) as client:
                with pytest.raises(NoLoader) as exc:
                    await client.pick(S, V)
            assert exc.value.message.startswith(f"LB service at {lb.address} unreachable: ")
            assert "the LB's lean-wire port (--wire-port)?" in exc.value.message

        run(grpc_port())
