"""What `asectl loader run` prints about a service's API, from its schema (no process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ase_serving.cli.loader_lines import api_lines, call_line, definition_line
from ase_serving.schema import ServiceSchema, from_yaml, load_service_schema

YAML = """\
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {{serviceName: asr2, version: "1.0.0", name: asr2}}
spec:
  interface: {interface}
  request:
    parameters:
      properties:
        n: {{type: integer, minimum: 3, maximum: 9}}
        lang: {{type: string, enum: [en, fr]}}
        note: {{type: string}}
      required: [n, lang]
    payload:
      properties:
        audio: {{type: audio, encoding: raw}}
        hint: {{type: text}}
      required: [audio]
"""


def schema(tmp_path: Path, interface: str) -> ServiceSchema:
    path = tmp_path / "ai_api.yml"
    path.write_text(YAML.format(interface=interface))
    return load_service_schema(from_yaml(path).doc)


@pytest.mark.parametrize(
    ("interface", "session"), [("once", ""), ("session", "--session "), ("[once, session]", "")]
)
def test_the_call_line_sends_what_the_schema_requires(tmp_path: Path, interface: str, session: str) -> None:
    svc = schema(tmp_path, interface)
    # Required parameters with values the schema accepts; the required input, from a file to name.
    assert call_line(svc, home="") == (
        f"asectl call asr2 {session}--param n=3 --param lang=en --data audio:audio=@FILE"
    )
    assert call_line(svc, home="/tmp/my home").startswith("ASE_HOME='/tmp/my home' asectl call asr2")


def test_api_lines_name_the_routes_docs_and_call(tmp_path: Path) -> None:
    svc = schema(tmp_path, "[once, session]")
    lines = api_lines("asr2", "http://gw:1/", svc)
    assert lines[:2] == [
        "api  http://gw:1/v1/private/asr2  (POST and WebSocket)",
        "docs http://gw:1/docs?service=asr2",
    ]
    assert lines[2].startswith("try  ") and lines[2].endswith("    # in another terminal")
    # No gateway: nothing to print; no schema: what to add, instead of URLs that would answer 10404.
    assert api_lines("asr2", None, svc) == []
    (none,) = api_lines("asr2", "http://gw:1", None)
    assert none.startswith("api  none: no API schema: the gateway has no route for asr2 until")


def test_the_definition_line_is_one_line_naming_every_problem() -> None:
    line = definition_line("s", ["a.yml:3: x: bad", "a.yml:4: y: worse"], "my dir")
    assert line == (
        "cannot serve s: 2 problems in its API definition, so no gateway would serve it: a.yml:3: x: bad; "
        "a.yml:4: y: worse; fix them and run again (`asectl loader test 'my dir'` checks it without a server)"
    )
