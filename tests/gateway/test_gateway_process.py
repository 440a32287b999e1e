"""The gateway as a process: several workers sharing one port, and start-up errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.gateway.support import Cluster, api_yaml, metric_value, once_body
from tests.support import WRAPPERS, cli_tools_imported_by, wait_for


def fresh(url: str, path: str = "/health", body: object = None) -> httpx.Response:
    """One request on a new connection (the kernel hands new connections to either worker)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        if body is None:
            return client.get(path)
        return client.post(path, json=body)


@pytest.mark.timeout(120)
def test_two_workers_both_serve_a_pushed_schema_and_metrics_add_up(cluster: Cluster) -> None:
    cluster.loader(WRAPPERS / "echo", "--service", "multi")
    with cluster.gateway("--workers", "2") as gw:
        pids: set[int] = set()
        wait_for(
            lambda: pids.add(fresh(gw.url).json()["pid"]) or len(pids) == 2, 30, "both workers answering"
        )
        cluster.put_schema(api_yaml("multi"))
        # Every worker follows the config centre on its own: all of them serve the new route.
        seen: dict[int, bool] = {}

        def all_live() -> bool:
            doc = fresh(gw.url).json()
            seen[doc["pid"]] = any(s["serviceId"] == "multi" for s in doc["services"])
            return len(seen) == 2 and all(seen.values())

        wait_for(all_live, 10, "the route live on both workers")
        wait_for(
            lambda: fresh(gw.url, "/v1/private/multi", once_body()).status_code == 200, 20, "loader known"
        )
        # A request is counted once its answer is written, so the count of the last call above may
        # trail its answer: wait until two scrapes agree before taking the starting value.
        labels = {"service": "multi", "mode": "once", "code": "0"}
        counts: list[float] = []

        def settled() -> bool:
            text = fresh(gw.url, "/metrics").text
            counts.append(metric_value(text, "ase_gateway_requests_total", **labels))
            return len(counts) >= 2 and counts[-1] == counts[-2]

        wait_for(settled, 10, "the request count settled")
        before = counts[-1]
        for _ in range(20):
            assert fresh(gw.url, "/v1/private/multi", once_body()).status_code == 200
        # /metrics sums what every worker counted, whichever worker answers the scrape.
        scrapes: list[float] = []

        def summed() -> bool:
            scrapes[:] = [
                metric_value(fresh(gw.url, "/metrics").text, "ase_gateway_requests_total", **labels)
                for _ in range(6)
            ]
            return set(scrapes) == {before + 20}

        wait_for(summed, 10, f"every scrape to count {before + 20:.0f} requests")
        assert set(scrapes) == {before + 20}


def run_gateway(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m ase_serving.gateway ARGS`` with no cluster set up, to its exit."""
    return subprocess.run(
        [sys.executable, "-m", "ase_serving.gateway", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "ASE_HOME": "/nonexistent-ase-home"},
    )


def test_a_taken_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_gateway("--port", str(port))
    assert proc.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in proc.stderr and "--port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_settings_are_all_named_at_once() -> None:
    proc = run_gateway("--strategy", "nope", "--workers", "0", "--max-body", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: unknown strategy 'nope': use one of load, loadMini, poll; workers must be >= 1, not 0; "
        "max_body must be > 0 bytes, not 0"
    )


def test_a_config_centre_address_that_is_not_one_is_refused_before_start() -> None:
    proc = run_gateway("--config", "nope://x")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: config centre address 'nope://x' is not understood")


@pytest.mark.timeout(90)
def test_asectl_gateway_serve_becomes_the_gateway_with_its_flags_and_variables(cluster: Cluster) -> None:
    cluster.put_schema(api_yaml("sized"))
    body = once_body("x" * 400)
    # A variable sets what no flag gives (ASE_GATEWAY_MAX_BODY: 300 bytes, so 413 for this body)...
    with cluster.gateway(asectl=True, env={"ASE_GATEWAY_MAX_BODY": "300"}) as gw:
        gw.wait_route("/v1/private/sized")
        refused = gw.post("/v1/private/sized", body)
        assert refused.status_code == 413 and refused.json()["header"]["code"] == 10413
        # asectl replaced itself (same pid) with the gateway's own entry point and its flags.
        argv = Path(f"/proc/{gw.proc.pid}/cmdline").read_bytes().decode().split("\0")
        assert argv[argv.index("-m") + 1 :][:3] == [
            "ase_serving.gateway",
            "--port=0",
            f"--config={cluster.centre.url}",
        ]
    # ... and a flag given wins over its variable.
    with cluster.gateway("--max-body", "100000", asectl=True, env={"ASE_GATEWAY_MAX_BODY": "300"}) as gw:
        gw.wait_route("/v1/private/sized")
        taken = gw.post("/v1/private/sized", body)
        assert taken.json()["header"]["code"] == 11503  # read whole: on to the LB, which knows no loader


def test_the_servers_entry_points_import_no_command_line_tool() -> None:
    """What ``asectl gateway serve`` / ``lb serve`` become carries no Typer, Click, Rich or pydantic."""
    assert cli_tools_imported_by("ase_serving.gateway.__main__", "ase_serving.lb.__main__") == []
