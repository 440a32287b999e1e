"""The small shared parts: one way to write an address, one retry schedule."""

from __future__ import annotations

import pytest

from ase_serving.addr import host_port, serving_line, split_host_port, url
from ase_serving.backoff import Backoff


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("127.0.0.1", 2392, "127.0.0.1:2392"),
        ("::1", 80, "[::1]:80"),
        ("[fe80::1]", 9, "[fe80::1]:9"),
        ("gw", 1, "gw:1"),
    ],
)
def test_an_address_is_written_one_way(host: str, port: int, text: str) -> None:
    assert host_port(host, port) == text
    assert url("http", host, port) == f"http://{text}"
    assert split_host_port(text) == (host.strip("[]"), port)


@pytest.mark.parametrize("text", ["gw", "gw:", ":80", "gw:http", "[::1]", ""])
def test_an_address_without_a_host_or_a_port_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        split_host_port(text)


def test_the_ready_line_names_the_component_the_address_and_its_details() -> None:
    assert serving_line("lb", "[::1]:2391") == "lb serving on [::1]:2391"
    line = serving_line("gateway", "http://gw:1", "(workers 2)")
    assert line == "gateway serving on http://gw:1 (workers 2)"


def test_backoff_doubles_to_its_cap_with_jitter_and_starts_again_after_a_success() -> None:
    backoff = Backoff(0.2, 1.0)
    delays = [backoff.next() for _ in range(6)]
    for delay, full in zip(delays, [0.2, 0.4, 0.8, 1.0, 1.0, 1.0], strict=True):
        assert full / 2 <= delay <= full
    backoff.reset()
    assert 0.1 <= backoff.next() <= 0.2
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(2.0, 1.0)


def test_backoff_draws_its_jitter_from_the_given_source() -> None:
    drawn: list[tuple[float, float]] = []

    def low(a: float, b: float) -> float:
        drawn.append((a, b))
        return a

    backoff = Backoff(1.0, 4.0, uniform=low)
    assert [backoff.next() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert drawn == [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.0, 4.0)]


def test_the_grpc_method_paths_come_from_the_protos() -> None:
    from ase_serving.lb.proto import lb_pb2
    from ase_serving.loader.proto import loader_pb2
    from ase_serving.rpc import method_paths

    assert method_paths(loader_pb2.DESCRIPTOR.services_by_name["Loader"]) == {
        "Once": "/ase.loader.v1.Loader/Once",
        "Session": "/ase.loader.v1.Loader/Session",
        "Info": "/ase.loader.v1.Loader/Info",
    }
    assert list(method_paths(lb_pb2.DESCRIPTOR.services_by_name["Balancer"]).values()) == [
        f"/ase.lb.v1.Balancer/{m}" for m in ("Pick", "Release", "Report", "Nodes", "Health")
    ]


def test_a_server_serves_every_method_of_its_proto_and_no_other() -> None:
    import asyncio

    import grpc

    from ase_serving.lb.balancer import Balancer
    from ase_serving.lb.proto import lb_pb2
    from ase_serving.lb.service import SERVICE, LbService, add_to_server
    from ase_serving.rpc import add_service

    async def go() -> None:
        server = grpc.aio.server()
        service = LbService(Balancer())
        add_to_server(server, service)  # every method of lb.proto: taken
        handlers = service.handlers()
        del handlers["Health"]
        with pytest.raises(ValueError, match=r"are not the methods of ase.lb.v1.Balancer: .*'Health'"):
            add_service(grpc.aio.server(), SERVICE, handlers)
        assert SERVICE is lb_pb2.DESCRIPTOR.services_by_name["Balancer"]

    asyncio.run(go())
