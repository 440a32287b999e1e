"""A gateway started with ``--lb``: every once request asks the LB service (its lean-wire port) for
a loader and releases it there; a lost LB is a clear 11503 until the LB is back."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from ase_serving.lb.wire_client import LbWireClient
from tests.gateway.support import Cluster, api_yaml, once_body
from tests.lb.lb_process import start_lb
from tests.support import WRAPPERS, wait_for

SERVICE = "vialb"
ROUTE = f"/v1/private/{SERVICE}"


def lb_in_use(address: str) -> dict[str, int]:
    async def go() -> dict[str, int]:
        async with LbWireClient(address) as client:
            return {n.address: n.in_use for n in await client.nodes(SERVICE)}

    return asyncio.run(go())


@pytest.mark.timeout(180)
def test_a_gateway_with_lb_picks_and_releases_over_the_lean_wire(cluster: Cluster) -> None:
    cluster.put_schema(api_yaml(SERVICE))
    loader = cluster.loader(WRAPPERS / "echo", "--service", SERVICE, "--lic", "2")
    lb = start_lb("--strategy", "loadMini", env=cluster.env())
    try:
        with cluster.gateway("--lb", lb.wire) as gw:
            gw.wait_route(ROUTE)
            gw.wait_loaders(SERVICE, 1)  # /health lists the LB's nodes: a Nodes call over the wire
            with ThreadPoolExecutor(6) as pool:  # 6 callers, 2 licences: picks wait for releases
                codes = list(
                    pool.map(lambda _: gw.post(ROUTE, once_body()).json()["header"]["code"], range(60))
                )
            assert codes == [0] * 60
            # Every pick was released at the LB (loadMini counts exactly).
            wait_for(lambda: lb_in_use(lb.wire) == {loader.address: 0}, 10, "every licence released")

            # The LB goes away: the gateway answers 11503 and says why.
            wire_port = lb.wire.rsplit(":", 1)[1]
            lb.kill()
            resp = gw.post(ROUTE, once_body())
            header = resp.json()["header"]
            assert (resp.status_code, header["code"]) == (503, 11503), header
            assert f"LB service at {lb.wire} unreachable" in header["message"]
            # Back on the same port: the next request connects to it again.
            lb = start_lb("--strategy", "loadMini", "--wire-port", wire_port, env=cluster.env())
            wait_for(
                lambda: gw.post(ROUTE, once_body()).json()["header"]["code"] == 0,
                20,
                "a pick from the new LB",
            )
            wait_for(lambda: lb_in_use(lb.wire) == {loader.address: 0}, 10, "the new LB's licence released")
    finally:
        lb.kill()
