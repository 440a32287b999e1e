"""The API defined in code (``Api(BaseASEApi)`` in wrapper.py) -> the same service schema as YAML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ase_serving.schema import ApiDefinitionError, from_code, from_yaml
from tests.schema.support import CODE, YAML, accepts, project
from tests.schema.support import SEED_CODE as SEED


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
