"""Shared by the schema tests and the CLI's: the seed's API definitions (YAML and code), a
project folder of a wrapper, two JSON Schema validators that must agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs

DATA = Path(__file__).parent / "data"


SEED_YAML = DATA / "seed_ai_api.yml"


def validators(schema: dict[str, Any]) -> list[Any]:
    """The gateway's validator and an independent one: both must agree on every body."""
    return [
        jsonschema_rs.Draft7Validator(schema),
        jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER),
    ]


def accepts(schema: dict[str, Any], body: Any) -> bool:
    answers = {v.is_valid(body) for v in validators(schema)}
    assert len(answers) == 1, f"the validators disagree on {body}"
    return answers.pop()


# The seed's own example, as written there (min=11 > max=10).
SEED_CODE = """\
from ase_serving import api as base


class Api(base.BaseASEApi):
    def request(self):
        param1 = base.Arg("param1", int, "user param1", max=10, min=11, required=True)
        param2 = base.Arg("param2", str, "user param2", required=True)
        param3 = base.Arg("param3", str, "user param3", required=False)

    def response(self):
        param1 = base.Arg("param1", int, "user param1", max=10, min=11, required=True)
        param2 = base.Arg("param2", str, "user param2", required=True)
        param3 = base.Arg("param3", str, "user param3", required=False)
"""


# One API written both ways: the two must give the same service schema.
CODE = """\
from ase_serving import api as base


class Api(base.BaseASEApi):
    \"\"\"Text to speech.\"\"\"

    interface = "once"
    read_timeout = 5

    def request(self):
        speed = base.Arg("speed", int, "speaking speed", min=50, max=200000, required=True)
        vcn = base.Arg("vcn", str, "voice name", required=True, enum=["xiaoyan", "aisjiuxu"])
        code = base.Arg("code", str, "a code", min=2, max=4, pattern="^[A-Z]+$")
        tags = base.Arg("tags", list, "tags", max=2, items=base.Arg("tag", str, max=3))
        box = base.Arg(
            "box",
            dict,
            "a box",
            properties=[base.Arg("w", int, min=1, required=True), base.Arg("label", str)],
        )
        text = base.Data("text", "text", "what to say", encoding="utf8", required=True)

    def response(self):
        audio = base.Data("audio", "audio", "the speech", encoding=["raw", "lame"], sample_rate=16000)
"""


YAML = """\
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {serviceName: tts, version: "2.0", name: tts}
spec:
  description: Text to speech.
  interface: once
  read_timeout: 5
  request:
    parameters:
      properties:
        speed: {type: integer, description: speaking speed, minimum: 50, maximum: 200000}
        vcn: {type: string, description: voice name, enum: [xiaoyan, aisjiuxu]}
        code: {type: string, description: a code, minLength: 2, maxLength: 4, pattern: "^[A-Z]+$"}
        tags: {type: array, description: tags, maxItems: 2, items: {type: string, maxLength: 3}}
        box:
          type: object
          description: a box
          properties: {w: {type: integer, minimum: 1}, label: {type: string}}
          required: [w]
      required: [speed, vcn]
    payload:
      properties:
        text: {type: text, description: what to say, encoding: utf8}
      required: [text]
  response:
    payload:
      properties:
        audio: {type: audio, description: the speech, encoding: [raw, lame], sample_rate: 16000}
"""


def project(tmp_path: Path, source: str, name: str = "tts") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "wrapper.py").write_text(source + WRAPPER_TAIL)
    return folder / "wrapper.py"


WRAPPER_TAIL = """

def wrapperInit(config):
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    return 0
"""
