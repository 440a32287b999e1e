"""Two loaders for one service: load spreads by licences; SIGKILL one under load and once requests
keep succeeding on the other, sessions on the dead one end with an error frame."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.gateway.support import Cluster, GatewayProcess, api_yaml, first_frame, frame, once_body, results
from tests.support import WRAPPERS, LoaderProcess, project_copy, wait_for


def loader_calls(loader: LoaderProcess) -> int:
    """Once calls the loader answered, from its own /metrics."""
    _, body = loader.http("/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("ase_loader_requests_total{") and 'method="once"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def direct_callers(loader: LoaderProcess) -> int:
    """Gateways connected to the loader's workers' own sockets, from its /health."""
    _, body = loader.http("/health")
    return sum(int(w["direct_callers"]) for w in orjson.loads(body)["workers"])


def busy(loader: LoaderProcess) -> int:
    """Licences in use in the loader's own count, direct calls included, from its /health."""
    _, body = loader.http("/health")
    return sum(int(w["lic_busy"]) for w in orjson.loads(body)["workers"])


@pytest.fixture
def twins(cluster: Cluster) -> Iterator[tuple[GatewayProcess, list[LoaderProcess]]]:
    cluster.put_schema(api_yaml("twin"))
    loaders = [cluster.loader(WRAPPERS / "echo", "--service", "twin", "--lic", "4") for _ in range(2)]
    with cluster.gateway() as gw:
        gw.wait_route("/v1/private/twin")
        gw.wait_loaders("twin", 2)
        yield gw, loaders
    for loader in loaders:
        loader.kill()


def test_load_spreads_over_both_loaders(twins: tuple[GatewayProcess, list[LoaderProcess]]) -> None:
    gw, loaders = twins
    before = [loader_calls(ld) for ld in loaders]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: gw.post("/v1/private/twin", once_body()).status_code, range(80)))
    assert codes == [200] * 80

    def counts() -> list[int] | None:
        got = [loader_calls(ld) - b for ld, b in zip(loaders, before, strict=True)]
        return got if sum(got) >= 80 else None

    # Workers report the calls gateways send them directly a moment later (OP_STATS): poll.
    got = wait_for(counts, 10, "the loaders' /metrics counting every call")
    assert sum(got) == 80
    assert min(got) >= 20, f"calls per loader: {got}"  # equal licences: about half each


def test_sigkill_one_loader_under_load(twins: tuple[GatewayProcess, list[LoaderProcess]]) -> None:
    gw, loaders = twins
    stop = threading.Event()
    outcomes: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        with httpx.Client(base_url=gw.url, timeout=20.0) as client:
            while not stop.is_set():
                resp = client.post("/v1/private/twin", content=orjson.dumps(once_body("x")))
                with lock:
                    outcomes.append(resp.json()["header"]["code"])

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(outcomes) >= 50, 20, "load running")
        assert loader_calls(loaders[0]) > 0  # the one killed was taking its share
        loaders[0].kill()  # SIGKILL to the whole loader (supervisor and workers)
        seen = len(outcomes)
        wait_for(lambda: len(outcomes) >= seen + 100, 30, "load going on after the kill")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads), "a request hung"
    assert set(outcomes) == {0}, {c: outcomes.count(c) for c in set(outcomes)}


def test_sessions_on_the_killed_loader_end_with_an_error_frame(cluster: Cluster) -> None:
    cluster.put_schema(api_yaml("pair", "session", output="echo"))
    loaders = [cluster.loader(WRAPPERS / "session_sync", "--service", "pair", "--lic", "2") for _ in range(2)]
    try:
        with cluster.gateway() as gw:
            gw.wait_route("/v1/private/pair")

            async def run() -> list[list[dict[str, Any]]]:
                url = f"{gw.ws_url}/v1/private/pair"
                sockets = [await connect(url) for _ in range(4)]
                for ws in sockets:
                    await ws.send(first_frame("pair", 0, "a"))
                    assert orjson.loads(await ws.recv())["header"]["code"] == 0
                # Every licence of both loaders is held now (2 x 2): kill one loader.
                loaders[0].kill()
                for ws in sockets:
                    await ws.send(frame(2, "b"))
                return [await results(ws) for ws in sockets]

            gw.wait_loaders("pair", 2)
            ends = asyncio.run(run())
        codes = sorted(got[-1]["header"]["code"] for got in ends)
        assert codes[:2] == [0, 0] and all(c != 0 for c in codes[2:]), ends
        for got in ends:
            last = got[-1]["header"]
            assert last["status"] == 2
            if last["code"] != 0:
                # The lean wire: a lost connection ends its sessions with 10911 at once.
                assert last["code"] == 10911 and "lost" in last["message"], last
    finally:
        for loader in loaders:
            loader.kill()


def test_new_sessions_skip_a_killed_loader_the_lb_still_lists(cluster: Cluster) -> None:
    cluster.put_schema(api_yaml("spare", "session", output="echo"))
    loaders = [
        cluster.loader(WRAPPERS / "session_sync", "--service", "spare", "--lic", "4") for _ in range(2)
    ]
    try:
        with cluster.gateway() as gw:
            gw.wait_route("/v1/private/spare")
            gw.wait_loaders("spare", 2)
            loaders[0].kill()
            assert len(gw.loaders("spare")) == 2  # its lease has not run out yet

            async def one() -> int:
                async with connect(f"{gw.ws_url}/v1/private/spare") as ws:
                    await ws.send(first_frame("spare", 2, "x"))
                    got = await results(ws)
                code: int = got[-1]["header"]["code"]
                return code

            assert [asyncio.run(one()) for _ in range(6)] == [0] * 6
    finally:
        for loader in loaders:
            loader.kill()


def test_once_calls_go_straight_to_the_workers_of_a_loader_on_this_host(cluster: Cluster) -> None:
    """The gateway calls the workers' own sockets (the loader registered them), not the loader's
    front; a worker that dies with a call answers 10911 (not retried: it may have run), and once
    it is back the gateway calls it directly again."""
    cluster.put_schema(api_yaml("crash"))
    loader = cluster.loader(WRAPPERS / "crasher", "--service", "crash", "--workers", "2", "--lic", "2")
    with cluster.gateway() as gw:
        gw.wait_route("/v1/private/crash")
        gw.wait_loaders("crash", 1)

        def post(how: str) -> dict[str, Any]:
            resp = gw.post("/v1/private/crash", once_body(service="crash", how=how))
            doc: dict[str, Any] = orjson.loads(resp.content)
            return doc

        for _ in range(4):
            assert post("ok")["header"]["code"] == 0
        wait_for(lambda: direct_callers(loader) == 2, 10, "the gateway connected to both workers")
        calls_before = loader_calls(loader)
        assert post("exit")["header"]["code"] == 10911
        wait_for(lambda: post("ok")["header"]["code"] == 0, 30, "served after the restart")
        # The crashing call ran once: the gateway did not send it again elsewhere.
        wait_for(lambda: loader_calls(loader) >= calls_before + 2, 10, "the calls counted")
        assert loader_calls(loader) == calls_before + 2
        wait_for(
            lambda: post("ok")["header"]["code"] == 0 and direct_callers(loader) == 2,
            30,
            "the restarted worker called directly again",
            0.05,
        )


def test_a_full_worker_passes_a_direct_call_to_the_next_one(cluster: Cluster, tmp_path: Path) -> None:
    """One worker busy with a long call: the calls the gateway sends it round robin go on to the
    other worker at once (its 10110), none waits for the long one."""
    cluster.put_schema(api_yaml("pair"))
    loader = cluster.loader(WRAPPERS / "slow", "--service", "pair", "--workers", "2", "--lic", "1")
    gate, started = tmp_path / "gate", tmp_path / "started"
    with cluster.gateway() as gw, ThreadPoolExecutor(1) as pool:
        gw.wait_route("/v1/private/pair")
        gw.wait_loaders("pair", 1)
        held = pool.submit(
            gw.post, "/v1/private/pair", once_body(service="pair", gate=str(gate), started=str(started))
        )
        wait_for(lambda: list(tmp_path.glob("started.*")), 20, "the long call running")
        for i in range(6):  # round robin: every other one first lands on the busy worker
            resp = gw.post("/v1/private/pair", once_body(f"quick{i}", service="pair", sleep="0"))
            assert resp.json()["header"]["code"] == 0, resp.text
        assert not held.done()  # the long call is still in its worker
        gate.touch()
        assert held.result(timeout=30).json()["header"]["code"] == 0
    assert direct_callers(loader) >= 1


def test_the_loaders_once_timeout_holds_on_the_direct_path(cluster: Cluster, tmp_path: Path) -> None:
    """The front is not on a direct call's way: the gateway keeps the loader's once_timeout."""
    cluster.put_schema(api_yaml("lazy"))
    project = project_copy("slow", tmp_path, "[loader]\nonce_timeout = 0.5")
    loader = cluster.loader(project, "--service", "lazy", "--workers", "1", "--lic", "2")
    with cluster.gateway() as gw:  # its own --once-timeout is the default (60 s)
        gw.wait_route("/v1/private/lazy")
        gw.wait_loaders("lazy", 1)
        start = time.monotonic()
        resp = gw.post("/v1/private/lazy", once_body(service="lazy", sleep="5"))
        assert resp.json()["header"]["code"] == 10114, resp.text
        assert time.monotonic() - start < 5  # not the engine's 5 s: the loader's 0.5 s

        wait_for(lambda: direct_callers(loader) == 1, 15, "the call sent to the worker's own socket")
        # The engine's call goes on after the timeout; once it ends (5 s), its slot is free again
        # in the loader's count, with no call after it to carry the news.
        wait_for(lambda: busy(loader) == 0, 30, "the slot freed when the engine's call ended")
