"""Hot configuration: a pushed schema is live within about a second, a change applies to the next
request, a delete removes the route; with the config centre down the gateway keeps serving, also
after a restart of the gateway itself (from its disk cache)."""

from __future__ import annotations

import time

from tests.gateway.support import Cluster, GatewayProcess, Serving, once_body
from tests.support import WRAPPERS, wait_for

ROUTE = "/v1/private/hot"


def schema(max_length: int) -> str:
    return f"""
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {{serviceName: hot, version: "1.0.0", name: hot}}
spec:
  interface: once
  request:
    parameters:
      properties:
        name: {{type: string, maxLength: {max_length}}}
    payload:
      properties:
        text: {{type: text}}
  response:
    payload:
      properties:
        text: {{type: text}}
"""


# A loader of service hot and a gateway: the tests push (and change, and delete) its schema.
SERVING = Serving(loaders=((WRAPPERS / "echo", "--service", "hot"),))


def code(gw: GatewayProcess, name: str = "abc") -> int:
    result: int = gw.post(ROUTE, once_body(service="hot", name=name)).json()["header"]["code"]
    return result


def test_push_change_delete(cluster: Cluster, gw: GatewayProcess) -> None:
    assert code(gw) == 10404
    start = time.monotonic()
    key = cluster.put_schema(schema(5))
    wait_for(lambda: code(gw) != 10404, 5, "the pushed route live")
    live_after = time.monotonic() - start
    assert live_after < 2.0, f"the route took {live_after:.2f} s to go live"
    wait_for(lambda: code(gw) == 0, 15, "the loader registered")
    assert code(gw, "abcdef") == 10163  # maxLength 5

    cluster.put_schema(schema(10))  # the change applies to the next request
    wait_for(lambda: code(gw, "abcdef") == 0, 5, "the relaxed constraint applied")
    assert code(gw, "x" * 11) == 10163

    cluster.delete(key)
    wait_for(lambda: code(gw) == 10404, 5, "the deleted route gone")
    gw.wait_no_route(ROUTE)


def test_an_invalid_schema_is_not_served_and_says_why(cluster: Cluster, gw: GatewayProcess) -> None:
    from ase_serving.store import ConfigKey

    key = ConfigKey("default", "default", "broken", "1.0.0", "broken.json")
    cluster.put(key, b'{"meta": {"serviceId": "broken", "version": "1.0.0"}, "schemainput": {"type": 7}}')
    wait_for(lambda: key.path in gw.health()["problems"], 5, "the problem reported on /health")
    assert "schemainput" in gw.health()["problems"][key.path]
    assert gw.post("/v1/private/broken", once_body()).status_code == 404
    cluster.delete(key)
    wait_for(lambda: key.path not in gw.health()["problems"], 5, "the problem gone with the item")


def test_traffic_goes_on_while_the_config_centre_is_down(cluster: Cluster, gw: GatewayProcess) -> None:
    cluster.put_schema(schema(8))
    wait_for(lambda: code(gw) == 0, 15, "the route live and its loader known")
    cluster.centre.kill()
    try:
        wait_for(lambda: not gw.health()["config"]["connected"], 10, "the gateway noticing the outage")
        codes = [code(gw) for _ in range(20)]
        assert codes == [0] * 20
        # A gateway started now, with the centre still down, serves from its disk cache.
        with cluster.gateway() as second:
            assert ROUTE in second.routes()
            assert second.health()["config"]["connected"] is False
            wait_for(
                lambda: second.post(ROUTE, once_body()).json()["header"]["code"] != 10404, 5, "cached route"
            )
    finally:
        cluster.centre.start()
    wait_for(lambda: gw.health()["config"]["connected"], 15, "the gateway back in touch")
    assert code(gw) == 0
