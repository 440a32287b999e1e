"""``asectl loader call`` against a real loader serving examples/echo and examples/stream_echo."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ASECTL, LoaderProcess, start_loader

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def echo() -> Iterator[LoaderProcess]:
    with start_loader(EXAMPLES / "echo") as loader:
        yield loader


def call(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ASECTL, "loader", "call", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.timeout(120)
def test_call_once_prints_the_public_response(echo: LoaderProcess) -> None:
    proc = call(echo.grpc, str(EXAMPLES / "echo/tests/hello.yml"), "--decode")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["header"]["code"] == 0
    assert doc["header"]["sid"].startswith("call")
    assert doc["payload"]["echo"]["text"] == "aGVsbG8="
    assert doc["payload"]["echo"]["text_utf8"] == "hello"


@pytest.mark.timeout(120)
def test_call_with_a_plain_body_and_an_error_code(echo: LoaderProcess, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"header": {"app_id": "a"}, "parameter": {"echo": {}}, "payload": {}}))
    proc = call(echo.grpc, str(body))
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["header"]["code"] == 20001
    assert proc.stderr.strip().splitlines() == [
        "error: the loader answered 20001: no input: send at least one payload item, e.g. payload.text"
    ]


@pytest.mark.timeout(120)
def test_call_a_session_case() -> None:
    with start_loader(EXAMPLES / "stream_echo") as loader:
        cases = sorted((EXAMPLES / "stream_echo/tests").glob("*.y*ml"))
        ok_case = next(p for p in cases if "error" not in p.name)
        proc = call(loader.grpc, str(ok_case))
    assert proc.returncode == 0, proc.stderr
    frames = json.loads(proc.stdout)
    assert isinstance(frames, list) and frames
    assert frames[-1]["header"]["status"] == 2
    assert all(f["header"]["code"] == 0 for f in frames)


def test_call_missing_file_and_no_loader(tmp_path: Path) -> None:
    proc = call("127.0.0.1:1", str(tmp_path / "nope.json"))
    assert proc.returncode == 1
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
    body = tmp_path / "b.json"
    body.write_text('{"header": {}, "payload": {"t": {"text": "aGk="}}}')
    proc = call("127.0.0.1:1", str(body), "--timeout", "2")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: the loader answered")
