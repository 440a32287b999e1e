"""A record in the config centre that cannot be read (issue 16, item 2): a config key with an
invalid name, a loader instance that is not JSON. The gateway skips it, says so on /health and
keeps following every other change; `asectl cluster status` lists it and is not healthy."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

from ase_serving.store.kv_engine import Put
from tests.gateway.support import Cluster, GatewayProcess, Serving, api_yaml, once_body
from tests.support import ASECTL, WRAPPERS, wait_for

BAD_CONFIG = "/ase/config/default/default/svc/1.0/bad name!"
BAD_INSTANCE = "/ase/instances/svc/1.0/127.0.0.1:7499"


def _raw(cluster: Cluster, puts: list[Put], deletes: tuple[str, ...] = ()) -> None:
    """Write to the config centre's keys directly, as a broken tool would."""

    async def go() -> None:
        backend = cluster.centre.backend()
        try:
            await backend.config.kv.txn(puts, list(deletes))
        finally:
            await backend.close()

    asyncio.run(go())


SERVING = Serving(
    schemas=(api_yaml("echo"),), loaders=((WRAPPERS / "echo", "--service", "echo"),), services=("echo",)
)


def test_bad_records_are_skipped_reported_and_later_changes_still_apply(
    cluster: Cluster, gw: GatewayProcess
) -> None:
    assert gw.health()["status"] == "ok"
    _raw(cluster, [Put(BAD_CONFIG, b"{}"), Put(BAD_INSTANCE, b"not json")])
    wait_for(lambda: gw.health()["status"] == "degraded", 10, "/health to say degraded")
    problems = gw.health()["problems"]
    assert BAD_CONFIG in problems and BAD_INSTANCE in problems, problems
    assert gw.client.get("/health").status_code == 200  # it still serves

    # A schema change after the bad records still reaches the gateway.
    cluster.put_schema(api_yaml("echo2"))
    wait_for(lambda: "/v1/private/echo2" in gw.routes(), 10, "a later schema change")
    assert gw.post("/v1/private/echo", once_body()).json()["header"]["code"] == 0

    env = cluster.env()
    status = _cluster_status(env)
    assert status["returncode"] != 0
    assert BAD_CONFIG in status["doc"]["problems"] and BAD_INSTANCE in status["doc"]["problems"]
    gateway = [c for c in status["doc"]["components"] if c["name"] == "gateway"]
    assert not gateway or not gateway[0]["healthy"]

    _raw(cluster, [], (BAD_CONFIG, BAD_INSTANCE))
    wait_for(lambda: gw.health()["status"] == "ok", 10, "/health ok again once they are gone")
    assert _cluster_status(env)["doc"]["problems"] == {}


def _cluster_status(env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [*ASECTL, "cluster", "status", "--json"], env={**os.environ, **env}, capture_output=True, text=True
    )
    return {"returncode": proc.returncode, "doc": json.loads(proc.stdout)}
