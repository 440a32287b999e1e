"""schemathesis over the gateway's ``/openapi.json`` (issue 16): positive and negative cases made
from the documented schemas, sent to a real gateway in front of the examples (echo, stream_echo)
and ``typed`` (a parameter of each JSON type, served by echo's wrapper): no 5xx, every answer
documented (status, content type, body schema), every body that breaks the schema refused.

schemathesis runs from its own virtualenv (``.venv-schemathesis``, made by ``scripts/install``):
it pins ``jsonschema_rs`` below the version the gateway validates with, so it must not share the
project's. ``ASE_FUZZ_EXAMPLES`` sets the examples per operation (default 40 here).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from examples.support import example_dir
from tests.gateway.support import GatewayProcess, Serving, once_body
from tests.reliability.strategies import TYPED_YAML

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = ROOT / ".venv-schemathesis" / "bin" / "schemathesis"
EXAMPLES = int(os.environ.get("ASE_FUZZ_EXAMPLES", "40"))
#: Every check of a single call, but two that do not apply here: ``ignored_auth`` (auth is off in
#: this cluster, so a call without credentials succeeds) and ``positive_data_acceptance`` (a body
#: the schema takes may still be refused for what a schema cannot say: echo's 20002 for data that
#: is not UTF-8, 10110 when both licences are busy, 405 for a GET on the WebSocket's route).
CHECKS = ["--checks", "all", "--exclude-checks", "ignored_auth,positive_data_acceptance"]

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not SCHEMATHESIS.exists(),
        reason="no .venv-schemathesis (scripts/install makes it): schemathesis not run",
    ),
]


SERVING = Serving(
    schemas=(TYPED_YAML,),
    loaders=(
        (example_dir("echo"),),
        (example_dir("echo"), "--service", "typed"),
        (example_dir("stream_echo"),),
    ),
    services=("echo", "typed", "stream_echo"),
)


def test_every_case_schemathesis_makes_from_the_openapi_document_gets_a_documented_answer(
    gw: GatewayProcess, tmp_path: Path
) -> None:
    cmd = [
        str(SCHEMATHESIS),
        "run",
        f"{gw.url}/openapi.json",
        *CHECKS,
        "--mode",
        "all",  # positive and negative cases
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "16",
        "--report",
        "junit",
        "--report-junit-path",
        str(tmp_path / "junit.xml"),
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    done = subprocess.run(  # in tmp_path: schemathesis keeps a cache folder where it runs
        cmd, capture_output=True, text=True, timeout=800, env=env, stdin=subprocess.DEVNULL, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    print(done.stdout[-3000:])
    report = (tmp_path / "junit.xml").read_text()
    assert "<testcase" in report, report[:2000]  # it did test operations
    # The gateway still serves afterwards (no licence leaked).
    assert gw.post("/v1/private/echo", once_body("after", app_id="test")).json()["header"]["code"] == 0
