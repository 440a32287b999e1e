"""A gateway started while the config centre is down (issue 16, item 3): it serves from the disk
caches of the config, the consumers and the loaders, says so on /health, starts without waiting
for the centre, and logs one line per kind of failure a second, not one per request."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator

import pytest

from tests.gateway.support import Cluster, GatewayProcess, api_yaml, once_body
from tests.support import WRAPPERS, wait_for

ECHO = "/v1/private/echo"


@pytest.fixture(scope="module")
def first(cluster: Cluster) -> Iterator[tuple[GatewayProcess, dict[str, str]]]:
    cluster.put_schema(api_yaml("echo"))
    cluster.put_schema(api_yaml("nobody"))  # a service no loader serves: 11503
    cluster.loader(WRAPPERS / "echo", "--service", "echo")
    with cluster.gateway(auth=True) as gateway:
        gateway.wait_route(ECHO)
        creds = cluster.consumer(name="cached")
        body = once_body(app_id=creds["app_id"])
        wait_for(
            lambda: gateway.post(ECHO, body, headers={"X-Api-Key": creds["api_key"]}).status_code == 200,
            15,
            "the consumer and the echo loader known to the gateway",
        )
        yield gateway, creds


def test_a_gateway_started_while_the_centre_is_down_serves_from_its_caches(
    cluster: Cluster, first: tuple[GatewayProcess, dict[str, str]]
) -> None:
    _gateway, creds = first
    caches = sorted((cluster.home / "cache").glob("gateway-*.json"))
    assert [p.name.split(".", 1)[1] for p in caches] == ["consumers.json", "json", "loaders.json"]
    consumers = next(p for p in caches if p.name.endswith(".consumers.json"))
    assert stat.S_IMODE(consumers.stat().st_mode) == 0o600  # it holds the consumers' secrets

    cluster.centre.kill()
    try:
        started = time.monotonic()
        with cluster.gateway(auth=True) as second:
            took = time.monotonic() - started  # process start to /health answering 200
            # Three views waiting 5 s each for the centre took 15 s; from the caches it is about
            # one short wait (the bound is loose: a busy machine).
            assert took < 5.0, f"the gateway took {took:.1f} s to start"
            resp = second.post(
                ECHO, once_body(app_id=creds["app_id"]), headers={"X-Api-Key": creds["api_key"]}
            )
            assert resp.status_code == 200 and resp.json()["header"]["code"] == 0, resp.text
            health = second.health()
            assert health["status"] == "degraded"
            for view in ("config view", "consumers view", "registry view"):
                assert "from cache" in health["problems"][view], health["problems"]

            # A failure repeated per request is logged once a second per (service, code).
            key = {"X-Api-Key": creds["api_key"]}
            t0 = time.monotonic()
            codes = [
                second.post("/v1/private/nobody", once_body(app_id=creds["app_id"]), headers=key).status_code
                for _ in range(100)
            ]
            seconds = time.monotonic() - t0
            assert codes == [503] * 100
            lines = second.log().count("once nobody failed with 11503")
            assert 1 <= lines <= seconds + 1, (lines, seconds)
    finally:
        cluster.centre.start()


def test_the_throttle_logs_one_line_per_key_per_interval() -> None:
    from ase_serving.gateway.asgi import Throttle

    now = [100.0]
    throttle = Throttle(every=1.0, clock=lambda: now[0])
    assert throttle.allow(("echo", 11503)) == 0
    assert [throttle.allow(("echo", 11503)) for _ in range(5)] == [None] * 5
    assert throttle.allow(("other", 11503)) == 0  # another key is its own
    now[0] += 1.0
    held = throttle.allow(("echo", 11503))
    assert held == 5 and "5 more like it" in throttle.note(held)
    assert throttle.note(0) == ""
