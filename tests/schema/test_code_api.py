"""The API defined in code (``Api(BaseASEApi)`` in wrapper.py) -> the same service schema as YAML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ase_serving.schema import ApiDefinitionError, from_code, from_yaml
from tests.schema.test_yaml_api import accepts

WRAPPER_TAIL = """

def wrapperInit(config):
    return 0


def wrapperOnceExec(usrTag, params, reqData, respData, psrIds, psrCnt):
    return 0
"""

# The seed's own example, as written there (min=11 > max=10).
SEED = """\
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


def test_code_and_yaml_give_the_same_service_schema(tmp_path: Path) -> None:
    from_code_doc = from_code(project(tmp_path, CODE), "tts", "2.0").doc
    (tmp_path / "ai_api.yml").write_text(YAML)
    from_yaml_doc = from_yaml(tmp_path / "ai_api.yml").doc
    assert from_code_doc == from_yaml_doc
    schema = from_code_doc["schemainput"]
    body = {
        "header": {"app_id": "a"},
        "parameter": {"tts": {"speed": 60, "vcn": "xiaoyan", "box": {"w": 2}, "tags": ["ab"]}},
        "payload": {"text": {"encoding": "utf8", "text": "aGk="}},
    }
    assert accepts(schema, body)
    bad = {"speed": 10, "vcn": "xiaoyan"}
    assert not accepts(schema, {**body, "parameter": {"tts": bad}})
    assert not accepts(schema, {**body, "parameter": {"tts": {"speed": 60, "vcn": "x", "box": {}}}})
    assert from_code_doc["meta"]["tts"]["accept"] == {
        "audio": {"dataType": "audio", "encoding": ["raw", "lame"], "sample_rate": 16000}
    }


def test_the_seeds_example_is_refused_naming_param1(tmp_path: Path) -> None:
    wrapper = project(tmp_path, SEED, "seed")
    with pytest.raises(ApiDefinitionError) as info:
        from_code(wrapper, "seed", "1.0.0")
    problems = [str(p) for p in info.value.problems]
    # Both declarations (request line 6, response line 11) are named, each with its line.
    assert problems == [
        f"{wrapper}:6: param1: minimum 11 > maximum 10: no value can satisfy both",
        f"{wrapper}:11: param1: minimum 11 > maximum 10: no value can satisfy both",
    ]


def test_response_args_are_outputs_holding_their_value(tmp_path: Path) -> None:
    fixed = SEED.replace("max=10, min=11", "max=10, min=1")
    doc = from_code(project(tmp_path, fixed, "seed"), "seed", "1.0.0").doc
    out = doc["schemaoutput"]["properties"]["param1"]
    assert out["required"] == ["text"]
    assert out["x-value"] == {"type": "integer", "description": "user param1", "minimum": 1, "maximum": 10}
    assert doc["meta"]["seed"]["accept"] == {f"param{i}": {"dataType": "text"} for i in (1, 2, 3)}
    # The request side: param1 and param2 required, each bounded as declared.
    own = doc["schemainput"]["properties"]["parameter"]["properties"]["seed"]
    assert own["required"] == ["param1", "param2"]
    assert set(own["properties"]) == {"param1", "param2", "param3"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('        a = base.Arg("a", bytes)\n', "a: unknown type 'bytes'"),
        ('        a = base.Arg("a", int)\n        b = base.Arg("a", str)\n', "duplicate parameter name 'a'"),
        ('        a = base.Data("a", "hologram")\n', "a: unknown data type 'hologram'"),
        ('        a = base.Arg("a", str, min=5, max=1)\n', "a: minLength 5 > maxLength 1"),
        ('        a = base.Arg("a", int, enum=[1, "b"])\n', "a: enum values ['b'] are not of type integer"),
        ("        raise RuntimeError('no config')\n", "Api.request(): raised RuntimeError('no config')"),
    ],
)
def test_impossible_declarations_name_the_argument_and_line(tmp_path: Path, body: str, words: str) -> None:
    source = "from ase_serving import api as base\n\n\nclass Api(base.BaseASEApi):\n    def request(self):\n"
    wrapper = project(tmp_path, source + body)
    with pytest.raises(ApiDefinitionError) as info:
        from_code(wrapper, "tts", "1")
    problems = [str(p) for p in info.value.problems]
    assert any(p.startswith(f"{wrapper}:") and words in p for p in problems), problems
    assert all(p.split(":")[1].isdigit() for p in problems), problems


def test_no_class_several_classes_and_a_broken_import(tmp_path: Path) -> None:
    none = project(tmp_path, "x = 1\n", "none")
    with pytest.raises(ApiDefinitionError, match="no class derived from BaseASEApi"):
        from_code(none, "none", "1")
    two = "from ase_serving import api as base\n\nclass A(base.BaseASEApi): pass\n\n"
    two += "class B(base.BaseASEApi): pass\n"
    with pytest.raises(ApiDefinitionError, match=r"several BaseASEApi classes \(A, B\)"):
        from_code(project(tmp_path, two, "two"), "two", "1")
    broken = project(tmp_path, "import not_a_module_anywhere\n", "broken")
    failed = r"importing wrapper.py failed \(line 1\): ModuleNotFoundError"
    with pytest.raises(ApiDefinitionError, match=failed):
        from_code(broken, "broken", "1")


def test_args_outside_a_collection_register_nowhere() -> None:
    from ase_serving import api as base
    from ase_serving.api import collecting

    base.Arg("loose", int)  # made at import time of a plugin, say: must not leak into a later collection
    with collecting() as found:
        inner = base.Arg("w", int)
        outer = base.Arg("box", dict, properties=[inner])
    assert found == [outer]


def test_python_m_schema_prints_the_schema_or_the_problems(tmp_path: Path) -> None:
    good = project(tmp_path, CODE, "good")
    gen = [sys.executable, "-m", "ase_serving.schema"]
    done = subprocess.run([*gen, str(good), "tts", "2.0"], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(done.stdout)
    assert doc["name"] == "tts.json"
    assert doc["schema"] == from_code(good, "tts", "2.0").doc
    bad = project(tmp_path, SEED, "bad")
    done = subprocess.run([*gen, str(bad), "bad", "1"], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "param1: minimum 11 > maximum 10" in done.stderr


def test_client_errors_of_the_api_class_reach_meta(tmp_path: Path) -> None:
    source = CODE.replace(
        '    interface = "once"\n', '    interface = "once"\n    client_errors = [20002]\n', 1
    )
    assert source != CODE
    assert from_code(project(tmp_path, source), "tts", "2.0").doc["meta"]["client_errors"] == [20002]
