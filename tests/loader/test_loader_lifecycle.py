"""`asectl loader run` start-up failures, SIGTERM drain, metrics and health."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from ase_serving import errors
from ase_serving.protocol.items import DataItem, Request, Result
from tests.conftest import StartLoader
from tests.support import ASECTL, WRAPPERS, project_copy, wait_for

pytestmark = pytest.mark.timeout(60)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ASECTL, "loader", "run", *args], capture_output=True, text=True, timeout=60)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_init_failure_exits_1_with_the_reason() -> None:
    proc = run_cli(str(WRAPPERS / "init_fails"), "--port", "0", "--metrics-port", "-1")
    assert_one_line_error(proc, "worker 1", "model file /models/missing.bin not found", "10077")


def test_contract_problems_exit_1_naming_them(tmp_path: Path) -> None:
    (tmp_path / "wrapper.py").write_text(
        "def wrapperCreate(usrTag, params, psrIds, psrCnt):\n    return 'h'\n"
    )
    proc = run_cli(str(tmp_path), "--port", "0")
    assert_one_line_error(proc, "wrapperInit is missing", "session mode needs wrapperWrite")


def test_missing_project_exits_1(tmp_path: Path) -> None:
    assert_one_line_error(run_cli(str(tmp_path / "nope")), "no such folder")


def test_port_in_use_exits_1() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli(str(WRAPPERS / "echo"), "--port", str(port))
    assert_one_line_error(proc, f"cannot listen on 127.0.0.1:{port}")


def test_help_shows_an_example() -> None:
    proc = subprocess.run([*ASECTL, "loader", "run", "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "asectl loader run examples/echo --workers 2" in proc.stdout
    assert "--lic" in proc.stdout and "--metrics-port" in proc.stdout


@pytest.mark.timeout(90)
def test_sigterm_drains_in_flight_work_then_runs_fini(loaders: StartLoader, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    project = project_copy("slow", tmp_path, f'[wrapper]\nmarker_dir = "{markers}"')
    loader = loaders(project, "--workers", "2")
    c = loader.client()
    worker_pids = {w.pid for w in c.info().workers}
    gate = tmp_path / "gate"
    results: list[Result] = []
    call = threading.Thread(
        target=lambda: results.append(
            c.once(Request(sid="inflight", params={"gate": str(gate), "started": str(tmp_path / "s")}))
        )
    )
    call.start()
    wait_for(lambda: list(tmp_path.glob("s.*")), what="the call is in the wrapper")
    loader.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: c.info().state == "draining", what="draining state")
    refused = c.once(Request(params={"sleep": "0"}))
    assert (refused.code, refused.message) == (errors.NO_LOADER, "loader is draining")
    status, body = loader.http("/health")
    assert status == 503 and json.loads(body)["status"] == "draining"
    assert not list(markers.iterdir())  # wrapperFini waits for the call in flight
    gate.touch()
    call.join(30)
    assert [(r.code, r.items[0].data) for r in results] == [(0, b"inflight")]
    assert loader.proc.wait(30) == 0
    assert sorted(p.name for p in markers.iterdir()) == sorted(f"fini-{pid}" for pid in worker_pids)


def test_metrics_and_health(loaders: StartLoader) -> None:
    loader = loaders(WRAPPERS / "error", "--lic", "3")
    c = loader.client()
    for _ in range(3):
        assert c.once(Request(items=[DataItem(key="x", data=b"1")])).code == 10042
    status, body = loader.http("/health")
    doc = json.loads(body)
    assert status == 200
    assert (doc["status"], doc["service"], doc["lic_total"], doc["lic_busy"]) == ("ok", "error", 3, 0)
    assert [w["state"] for w in doc["workers"]] == ["ready"]
    status, raw = loader.http("/metrics")
    text = raw.decode()
    assert status == 200

    def value(name: str) -> float:
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert m, f"{name} not in /metrics"
        return float(m.group(1))

    assert value('ase_loader_requests_total{code="10042",method="once"}') == 3
    assert value('ase_loader_errors_total{code="10042",method="once"}') == 3
    assert value("ase_loader_once_seconds_count") == 3
    assert value("ase_loader_licences") == 3
    assert value("ase_loader_licences_busy") == 0
    assert value("ase_loader_sessions") == 0
    assert value("ase_loader_worker_restarts_total") == 0
    assert loader.http("/nope")[0] == 404


def test_worker_restarts_are_counted(loaders: StartLoader) -> None:
    loader = loaders(WRAPPERS / "crasher")
    c = loader.client()
    assert c.once(Request(params={"how": "exit"})).code == errors.WORKER_DIED
    wait_for(lambda: "ase_loader_worker_restarts_total 1.0" in loader.http("/metrics")[1].decode())
    wait_for(lambda: loader.http("/health")[0] == 200, what="healthy again")
