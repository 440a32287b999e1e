"""ApiSchema YAML -> service schema: the seed's own file, every constraint enforced, errors with
file and line."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import pytest

from ase_serving.schema import ApiDefinitionError, check_service_schema, from_yaml
from ase_serving.schema.loaded import load_service_schema
from tests.schema.support import SEED_YAML as SEED
from tests.schema.support import accepts

B64 = base64.b64encode(b"\xff\xd8 jpeg bytes").decode()


def write(tmp_path: Path, text: str, name: str = "ai_api.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_seeds_yaml_works_as_written_with_a_warning_per_misspelling() -> None:
    compiled = from_yaml(SEED)
    warnings = [str(w) for w in compiled.warnings]
    lines = SEED.read_text().splitlines()

    def warned(word: str, right: str) -> str:
        hits = [w for w in warnings if repr(word) in w and repr(right) in w]
        assert len(hits) == 1, (word, warnings)
        # file:line: the line named is the one that holds the word.
        line = int(hits[0].split(":")[1])
        assert word in lines[line - 1], (hits[0], lines[line - 1])
        return hits[0]

    warned("paramters", "parameters")
    warned("palyload", "payload")
    warned("vedio", "video")
    warned("configFilname", "configFileName")
    assert "read as 'other'" in warned("base64", "other")
    assert all(w.startswith(f"{SEED}:") for w in warnings)

    doc = compiled.doc
    assert check_service_schema(doc) == []
    meta = doc["meta"]
    assert (meta["serviceId"], meta["version"], meta["route"]) == (
        "image-detect",
        "1.0.0",
        "/v1/private/image-detect",
    )
    assert (meta["project"], meta["group"], meta["region"]) == ("guiderAllService", "gas", "dx")
    assert meta["interface"] == ["once", "session"]
    assert meta["image-detect"] == {
        "input": {
            "audio1": {"dataType": "audio", "encoding": "speex-wb", "compress": "raw", "format": "plain"},
            "text1": {"dataType": "text", "encoding": "utf-8", "compress": "raw", "format": "json"},
            "image1": {"dataType": "other", "compress": "raw", "format": "jpg"},
            "vedio1": {"dataType": "video", "compress": "raw"},
        },
        "accept": {"audio1": {"dataType": "audio", "encoding": "speex-wb"}},
    }
    # metadata.name names the file, configFileName the config item.
    assert (compiled.spec.file_name, compiled.item_name) == ("my-api-schema.json", "xxxx.json")
    # Payload entries are in schemainput and schemaoutput too.
    payload = doc["schemainput"]["properties"]["payload"]
    assert sorted(payload["properties"]) == ["audio1", "image1", "text1", "vedio1"]
    assert payload["required"] == ["image1"]
    assert payload["properties"]["vedio1"]["required"] == ["video"]
    assert sorted(doc["schemaoutput"]["properties"]) == ["audio1"]
    own = doc["schemainput"]["properties"]["parameter"]["properties"]["image-detect"]
    assert own["required"] == ["vcn", "someother"]
    assert own["properties"]["audio1"]["properties"]["encoding"]["enum"] == ["speex-wb"]


def test_generated_schemas_are_valid_draft7_by_an_independent_validator() -> None:
    doc = from_yaml(SEED).doc
    for part in ("schemainput", "schemaoutput"):
        jsonschema.Draft7Validator.check_schema(doc[part])
        # ... and by the one the gateway compiles them with.
        jsonschema_rs.Draft7Validator(doc[part])


def seed_body() -> dict[str, Any]:
    return {
        "header": {"app_id": "app1", "uid": "u1", "status": 3},
        "parameter": {
            "image-detect": {
                "vcn": "xiaoyan",
                "speed": 100,
                "isauto": True,
                "someother": {"value1": "a", "value2": "b"},
                "audio1": {"encoding": "speex-wb"},
            }
        },
        "payload": {
            "image1": {"format": "jpg", "status": 3, "other": B64},
            "audio1": {"encoding": "speex-wb", "status": 3, "audio": B64},
        },
    }


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()
P = "parameter.image-detect"

# (what it checks, the field changed, the new value, accepted?)
SEED_CASES = [
    ("the valid body", None, None, True),
    ("type string", f"{P}.vcn", 5, False),
    ("type integer", f"{P}.speed", 100.5, False),
    ("type integer, not a numeric string", f"{P}.speed", "100", False),
    ("type boolean", f"{P}.isauto", "yes", False),
    ("minimum", f"{P}.speed", 49, False),
    ("minimum itself", f"{P}.speed", 50, True),
    ("maximum", f"{P}.speed", 200001, False),
    ("maximum itself", f"{P}.speed", 200000, True),
    ("required parameter", f"{P}.vcn", _DELETE, False),
    ("required object parameter", f"{P}.someother", _DELETE, False),
    ("an optional parameter may be left out", f"{P}.isauto", _DELETE, True),
    ("nested object: its field types", f"{P}.someother", {"value1": 1}, False),
    ("nested object: must be an object", f"{P}.someother", "text", False),
    ("a parameter that is not defined", f"{P}.vcnn", "x", False),
    ("the output's accept entry: its encodings", f"{P}.audio1", {"encoding": "mp3"}, False),
    ("the output's accept entry: no other keys", f"{P}.audio1", {"rate": 1}, False),
    ("required payload", "payload.image1", _DELETE, False),
    ("an optional payload may be left out", "payload.audio1", _DELETE, True),
    ("payload: a stream that is not defined", "payload.audio2", {"audio": B64}, False),
    ("payload: the data under its type's name", "payload.image1", {"format": "jpg", "image": B64}, False),
    ("payload: a declared encoding", "payload.audio1", {"encoding": "opus", "audio": B64}, False),
    ("payload: status values", "payload.image1", {"status": 7, "other": B64}, False),
    ("header: app_id required", "header.app_id", _DELETE, False),
    ("header: status values", "header.status", 4, False),
    ("header: other fields pass", "header.trace", "t-1", True),
    ("parameter must be there when it holds required ones", "parameter", _DELETE, False),
]


@pytest.mark.parametrize(("what", "path", "value", "ok"), SEED_CASES, ids=[c[0] for c in SEED_CASES])
def test_seed_schema_accepts_and_rejects(what: str, path: str | None, value: Any, ok: bool) -> None:
    schema = from_yaml(SEED).doc["schemainput"]
    body = seed_body() if path is None else _set(seed_body(), path, value)
    assert accepts(schema, body) is ok, what


CONSTRAINTS = """\
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {serviceName: rules, version: "2"}
spec:
  interface: once
  request:
    parameters:
      properties:
        mail: {type: string, format: email}
        code: {type: string, minLength: 2, maxLength: 4, pattern: "^[A-Z]+$"}
        mode: {type: string, enum: [fast, exact]}
        n32: {type: integer, format: int32}
        ratio: {type: number, exclusiveMinimum: 0, maximum: 1}
        step: {type: integer, multipleOf: 5}
        tags: {type: array, items: {type: string, maxLength: 3}, minItems: 1, maxItems: 2}
        box:
          type: object
          properties:
            w: {type: integer, minimum: 1}
            inner: {type: object, properties: {deep: {type: boolean}}, required: [deep]}
          required: [w]
"""

RULE_CASES = [
    ("format email", "mail", "user@example.com", True),
    ("format email refused", "mail", "not-an-address", False),
    ("minLength", "code", "A", False),
    ("maxLength", "code", "ABCDE", False),
    ("pattern", "code", "ab", False),
    ("lengths and pattern hold", "code", "ABC", True),
    ("enum", "mode", "slow", False),
    ("enum holds", "mode", "exact", True),
    ("int32 upper bound", "n32", 2**31, False),
    ("int32 lower bound", "n32", -(2**31) - 1, False),
    ("int32 holds", "n32", 2**31 - 1, True),
    ("exclusiveMinimum", "ratio", 0, False),
    ("number maximum", "ratio", 1.5, False),
    ("number holds", "ratio", 0.25, True),
    ("multipleOf", "step", 7, False),
    ("array items", "tags", ["abcd"], False),
    ("minItems", "tags", [], False),
    ("maxItems", "tags", ["a", "b", "c"], False),
    ("array holds", "tags", ["a", "b"], True),
    ("nested required", "box", {}, False),
    ("nested minimum", "box", {"w": 0}, False),
    ("two levels deep: required", "box", {"w": 1, "inner": {}}, False),
    ("two levels deep: type", "box", {"w": 1, "inner": {"deep": "no"}}, False),
    ("two levels deep holds", "box", {"w": 1, "inner": {"deep": False}}, True),
]


@pytest.mark.parametrize(("what", "name", "value", "ok"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_every_parameter_constraint_is_enforced(
    tmp_path: Path, what: str, name: str, value: Any, ok: bool
) -> None:
    doc = from_yaml(write(tmp_path, CONSTRAINTS)).doc
    assert doc["meta"]["interface"] == ["once"]
    body = {"header": {"app_id": "a"}, "parameter": {"rules": {name: value}}}
    assert accepts(doc["schemainput"], body) is ok, what


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ApiDefinitionError) as info:
        from_yaml(path)
    return [str(p) for p in info.value.problems]


HEAD = "apiVersion: ase-serving/v1\nkind: ApiSchema\nmetadata: {serviceName: s}\n"
#: Up to the parameters' properties; a test adds its own at 8 spaces (its first one is on line 8).
PARAMS = HEAD + "spec:\n  request:\n    parameters:\n      properties:\n"
# (what, YAML, the expected message's line number, field and words)
ERROR_CASES = [
    ("YAML syntax", HEAD + "spec:\n  request: [unclosed\n", 6, "", "invalid YAML"),
    (
        "unknown kind",
        "apiVersion: ase-serving/v1\nkind: Schema\nmetadata: {serviceName: s}\n",
        2,
        "kind",
        "unknown kind 'Schema'",
    ),
    (
        "unknown apiVersion",
        "apiVersion: v9\nkind: ApiSchema\nmetadata: {serviceName: s}\n",
        1,
        "apiVersion",
        "unknown apiVersion 'v9'",
    ),
    (
        "unknown type",
        PARAMS + "        a: {type: strng}\n",
        8,
        "spec.request.parameters.properties.a",
        "unknown type 'strng'",
    ),
    (
        "minimum > maximum",
        PARAMS + "        a:\n          type: integer\n          minimum: 9\n          maximum: 3\n",
        8,
        "spec.request.parameters.properties.a",
        "minimum 9 > maximum 3",
    ),
    (
        "minLength > maxLength",
        PARAMS + "        a: {type: string, minLength: 5, maxLength: 1}\n",
        8,
        "spec.request.parameters.properties.a",
        "minLength 5 > maxLength 1",
    ),
    (
        "a required name that is not defined",
        PARAMS + "        a: {type: string}\n      required:\n        - a\n        - b\n",
        11,
        "spec.request.parameters.required[1]",
        "required parameter 'b' is not defined",
    ),
    (
        "a required input that is not defined",
        HEAD + "spec:\n  request:\n    payload:\n      properties:\n"
        "        img: {type: image}\n      required: [pic]\n",
        9,
        "spec.request.payload.required[0]",
        "required input 'pic' is not defined",
    ),
    (
        "a duplicate name",
        PARAMS + "        a: {type: string}\n        a: {type: integer}\n",
        9,
        "spec.request.parameters.properties.a",
        "duplicate key 'a' (first at line 8)",
    ),
    (
        "an output named like a parameter",
        PARAMS + "        a: {type: string}\n"
        "  response:\n    payload:\n      properties:\n        a: {type: text}\n",
        12,
        "spec.response.payload.properties.a",
        "output 'a' has the name of a parameter",
    ),
    (
        "a misspelt constraint",
        PARAMS + "        a: {type: integer, maximun: 3}\n",
        8,
        "spec.request.parameters.properties.a.maximun",
        "did you mean 'maximum'?",
    ),
    (
        "unknown data type",
        HEAD + "spec:\n  request:\n    payload:\n      properties:\n        x: {type: hologram}\n",
        8,
        "spec.request.payload.properties.x",
        "unknown data type 'hologram'",
    ),
    (
        "an enum value of the wrong type",
        PARAMS + "        a: {type: integer, enum: [1, two]}\n",
        8,
        "spec.request.parameters.properties.a",
        "enum values ['two'] are not of type integer",
    ),
    (
        "a string format nobody checks",
        PARAMS + "        a: {type: string, format: colour}\n",
        8,
        "spec.request.parameters.properties.a",
        "format 'colour' is not a string format",
    ),
    (
        "a default out of its range",
        PARAMS + "        a: {type: integer, minimum: 1, maximum: 9, default: 0}\n",
        8,
        "spec.request.parameters.properties.a",
        "default 0 does not meet its own constraints: 0 is less than the minimum of 1",
    ),
    (
        "a default outside its enum, in an array's items",
        PARAMS + "        a: {type: array, items: {type: string, enum: [x, y], default: z}}\n",
        8,
        "spec.request.parameters.properties.a.items",
        "default 'z' does not meet its own constraints",
    ),
    (
        "a default beyond its number format",
        PARAMS + "        a: {type: integer, format: int32, default: 4294967296}\n",
        8,
        "spec.request.parameters.properties.a",
        "4294967296 is greater than the maximum of 2147483647",
    ),
    (
        "no service name",
        "apiVersion: ase-serving/v1\nkind: ApiSchema\nmetadata: {version: '1'}\n",
        3,
        "metadata.serviceName",
        "required",
    ),
]


@pytest.mark.parametrize(
    ("what", "text", "line", "field", "words"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_errors_name_the_file_line_and_field(
    tmp_path: Path, what: str, text: str, line: int, field: str, words: str
) -> None:
    problems = _problems(tmp_path, text)
    where = f"{tmp_path / 'ai_api.yml'}:{line}: " + (f"{field}: " if field else "")
    assert any(p.startswith(where) and words in p for p in problems), (what, problems)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        PARAMS + "        a: {type: integer, minimum: 5, maximum: 1}\n        b: {type: nope}\n"
        "        c: {type: string, minLenght: 1}\n      required: [zz]\n",
    )
    assert len(problems) == 4, problems
    assert [p.split(":")[1] for p in problems] == ["8", "9", "10", "11"]


def test_an_empty_file_and_a_list_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "ai_api.yml"
    for text, where in (("", f"{file}"), ("- a\n- b\n", f"{file}:1")):
        problems = _problems(tmp_path, text)
        assert problems == [f"{where}: must be an ApiSchema mapping (apiVersion, kind, metadata, spec)"]


def test_interface_route_and_timeouts_reach_meta(tmp_path: Path) -> None:
    doc = from_yaml(
        write(
            tmp_path,
            HEAD + "spec:\n  interface: [session]\n  route: [/v1/asr, /v2/asr]\n  read_timeout: 5\n"
            "  session_timeout: 60\n  sub: asr\n",
        )
    ).doc
    meta = doc["meta"]
    assert (meta["interface"], meta["route"], meta["read_timeout"], meta["session_timeout"], meta["sub"]) == (
        ["session"],
        ["/v1/asr", "/v2/asr"],
        5,
        60,
        "asr",
    )
    # Nothing required: a body with just the header is valid, and parameters may be left out.
    assert accepts(doc["schemainput"], {"header": {"app_id": "a", "status": 0}})
    problems = _problems(tmp_path, HEAD + "spec:\n  interface: stream\n  route: v1/x\n  read_timeout: -1\n")
    assert any("interface ['stream']" in p for p in problems)
    assert any("route 'v1/x' must start with '/'" in p for p in problems)
    assert any("read_timeout must be a number of seconds > 0" in p for p in problems)


def test_client_errors_reach_meta_and_are_checked(tmp_path: Path) -> None:
    doc = from_yaml(write(tmp_path, HEAD + "spec:\n  client_errors: [20002, 20001, 20002]\n")).doc
    assert doc["meta"]["client_errors"] == [20001, 20002]
    assert load_service_schema(doc).client_errors == frozenset({20001, 20002})
    problems = _problems(tmp_path, HEAD + "spec:\n  client_errors: [10110, 10910, 0]\n")
    assert sum("is not one of the wrapper's own codes" in p for p in problems) == 3, problems
    problems = _problems(tmp_path, HEAD + "spec:\n  client_errors: 20002\n")
    assert any("client_errors" in p and "such as [20002]" in p for p in problems), problems


def test_additional_parameters_allowed_only_when_said(tmp_path: Path) -> None:
    text = (
        HEAD + "spec:\n  request:\n    parameters:\n      additionalProperties: true\n"
        "      properties:\n        a: {type: string}\n"
    )
    schema = from_yaml(write(tmp_path, text)).doc["schemainput"]
    assert accepts(schema, {"header": {"app_id": "x"}, "parameter": {"s": {"a": "1", "extra": 2}}})
    assert not accepts(schema, {"header": {"app_id": "x"}, "parameter": {"s": {"a": 1}}})


def test_service_and_version_overrides(tmp_path: Path) -> None:
    compiled = from_yaml(SEED, service="detector", version="9")
    assert (compiled.doc["meta"]["serviceId"], compiled.doc["meta"]["version"]) == ("detector", "9")
    assert "detector" in compiled.doc["schemainput"]["properties"]["parameter"]["properties"]
