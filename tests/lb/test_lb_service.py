"""The LB as its own service: a real ``python -m ase_serving.lb`` process, over gRPC."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from ase_serving import errors
from ase_serving.errors import NoLicence, NoLoader
from ase_serving.lb.client import LbClient, lb_healthy
from ase_serving.store import Instance
from tests.lb.lb_process import run_lb, start_lb
from tests.store.embedded_server import start_embedded
from tests.support import run, until

S, V = "asr", "1.0"
T = TypeVar("T")


@pytest.mark.timeout(60)
def test_report_then_pick_over_grpc() -> None:
    with start_lb("--strategy", "load") as lb:
        assert lb.line == f"lb serving on {lb.address} (strategy load); lean wire on {lb.wire}"
        assert lb.wire.startswith("127.0.0.1:") and lb.wire != lb.address
        assert "serving from Report calls only" in lb.stderr()

        async def scenario() -> None:
            async with LbClient(lb.address) as client:
                assert await lb_healthy(lb.address, 2.0)
                health = await client.health()
                assert (health.status, health.strategy, health.registry) == ("ok", "load", "")
                # Unknown service: NoLoader with its code and a message naming it.
                with pytest.raises(NoLoader) as exc:
                    await client.pick(S, V)
                assert exc.value.code == errors.NO_LOADER
                assert "service 'asr' version '1.0'" in exc.value.message
                await client.report(S, V, "a:1", total=8, idle=6)
                await client.report(S, V, "b:1", total=8, idle=3)
                await client.report(S, V, "c:1", total=8, idle=8, live=False)
                got = Counter([(await client.pick(S, V))[0] for _ in range(9)])
                assert got == Counter({"a:1": 6, "b:1": 3})
                with pytest.raises(NoLicence) as full:
                    await client.pick(S, V)
                assert full.value.code == errors.NO_LICENCE
                await client.report(S, V, "a:1", total=8, idle=8)
                await client.report(S, V, "b:1", total=8, idle=7)
                assert await client.pick(S, V, n=3) == ["a:1", "b:1"]
                assert await client.pick(S, V, exclude=["a:1"]) == ["b:1"]
                with pytest.raises(NoLoader, match="2 excluded by the caller, 1 not live"):
                    await client.pick(S, V, exclude=["a:1", "b:1"])
                nodes = {n.address: n for n in await client.nodes(S, V)}
                assert (nodes["a:1"].idle, nodes["a:1"].avail, nodes["a:1"].in_use) == (8, 7, 1)
                assert nodes["c:1"].live is False
                await client.remove(S, V, "c:1")
                assert [n.address for n in await client.nodes()] == ["a:1", "b:1"]

        run(scenario())
        assert lb.stop() == 0


@pytest.mark.timeout(60)
def test_load_mini_release_over_grpc_and_ttl() -> None:
    with start_lb("--strategy", "loadMini", "--ttl", "1") as lb:

        async def scenario() -> None:
            async with LbClient(lb.address) as client:
                await client.report(S, V, "a:1", total=2, idle=0)
                assert [(await client.pick(S, V))[0] for _ in range(2)] == ["a:1", "a:1"]
                with pytest.raises(NoLicence):
                    await client.pick(S, V)
                await client.release(S, V, "a:1")
                assert await client.pick(S, V) == ["a:1"]

                # Nothing reports: the node expires after the TTL.
                async def gone() -> bool:
                    try:
                        await client.pick(S, V)
                    except NoLoader:
                        return True
                    except NoLicence:
                        return False
                    return False

                await until(gone, "the silent node to expire", 10.0)

        run(scenario())
        assert lb.stop() == 0


def test_lb_healthy_is_false_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run(lb_healthy(f"127.0.0.1:{port}", 2.0)) is False


def test_start_up_errors_are_one_line() -> None:
    bad = run_lb("--strategy", "fastest")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: unknown strategy 'fastest': use one of load, loadMini, poll"
    ]
    unknown = run_lb("--port", "0", "--config", "zk://somewhere:1")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: config centre address 'zk://somewhere:1' is not understood")
    assert "Traceback" not in unknown.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        taken = run_lb("--port", str(port), "--wire-port", "0")
        wire_taken = run_lb("--port", "0", "--wire-port", str(port))
    assert taken.returncode == 1
    assert "cannot listen on 127.0.0.1:" in taken.stderr
    assert "Traceback" not in taken.stderr
    assert wire_taken.returncode == 1
    assert wire_taken.stderr.splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port} (lean wire): Address already in use; "
        "choose another --wire-port"
    )
    assert "Traceback" not in wire_taken.stderr
    bad_port = run_lb("--wire-port", "70000")
    assert bad_port.returncode == 2
    assert bad_port.stderr.strip() == "error: --wire-port 70000 is not 0..65535"


@pytest.mark.timeout(90)
def test_fed_from_the_embedded_registry(tmp_path: Path) -> None:
    with start_embedded(tmp_path / "configd") as centre:
        # The credentials come from the cluster settings (here: ASE_CONFIG_*), as after `asectl init`.
        env = {
            "ASE_CONFIG_ADDRESS": centre.url,
            "ASE_CONFIG_ACCOUNT": centre.account,
            "ASE_CONFIG_PASSWORD": centre.password,
        }
        with start_lb("--ttl", "3", env=env) as lb:
            assert "warning" not in lb.stderr()

            async def scenario() -> None:
                backend = centre.backend()
                assert backend.registry is not None
                registry = backend.registry
                async with LbClient(lb.address) as client:
                    health = await client.health()
                    assert health.registry == centre.url and health.registry_connected
                    attrs = {"lic_total": 4, "lic_idle": 4, "live": True, "workers": 1}
                    reg = await registry.register(Instance(S, V, "127.0.0.1:7001", attrs), ttl=20)
                    picked = picked_addr(client, "127.0.0.1:7001")
                    await until(picked, "the registered instance to be picked", 15.0)
                    # Draining (live false) -> never picked; deregistered -> gone.
                    reg = await registry.update(reg, {**attrs, "live": False})

                    async def refused(match: str) -> bool:
                        try:
                            await client.pick(S, V)
                        except NoLoader as exc:
                            return match in exc.message
                        return False

                    await until(lambda: refused("1 not live"), "the draining instance to be skipped", 15.0)
                    await registry.deregister(reg)
                    await until(lambda: refused("none registered"), "the instance to disappear", 15.0)
                    # Registered instances outlive the LB's own TTL: the feed re-reports them.
                    reg2 = await registry.register(Instance(S, V, "127.0.0.1:7002", attrs), ttl=20)
                    await until(picked_addr(client, "127.0.0.1:7002"), "the second instance", 15.0)
                    await asyncio.sleep(4.0)  # > --ttl 3: would have expired without the re-reports
                    assert await client.pick(S, V) == ["127.0.0.1:7002"]
                    await registry.deregister(reg2)
                await backend.close()

            run(scenario())
            assert lb.stop() == 0


def picked_addr(client: LbClient, address: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            return await client.pick(S, V) == [address]
        except (NoLoader, NoLicence):
            return False

    return check


@pytest.mark.timeout(60)
def test_asectl_lb_serve_becomes_the_lb_with_its_flags_and_variables() -> None:
    # A variable sets what no flag gives; a flag given wins over its variable.
    env = {"ASE_LB_STRATEGY": "loadMini", "ASE_LB_TTL": "7"}
    with (
        start_lb(env=env, asectl=True) as from_env,
        start_lb("--strategy", "poll", env=env, asectl=True) as given,
    ):
        assert from_env.line.startswith("lb serving on ") and "(strategy loadMini)" in from_env.line
        assert "(strategy poll)" in given.line
        # asectl replaced itself (same pid) with the LB's own entry point and the flags it was given.
        argv = Path(f"/proc/{given.proc.pid}/cmdline").read_bytes().decode().split("\0")
        assert argv[argv.index("-m") + 1 :] == ["ase_serving.lb", "--port=0", "--strategy=poll", ""]

        async def strategy(address: str) -> str:
            async with LbClient(address) as client:
                return (await client.health()).strategy

        assert run(strategy(from_env.address)) == "loadMini"
