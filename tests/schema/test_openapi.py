"""Service schemas -> OpenAPI 3.1 (checked by openapi-spec-validator); the original gateway's files load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from ase_serving.schema import (
    ServiceSchema,
    ServiceSchemaError,
    example_request,
    from_code,
    from_yaml,
    load_service_schema,
    openapi_document,
)
from tests.schema.support import CODE, project
from tests.schema.support import SEED_YAML as SEED
from tests.support import validate_openapi as validate

DATA = Path(__file__).parent / "data"
ORIGINAL = DATA / "webgate_s8e6e8a48.json"


def services(tmp_path: Path) -> list[ServiceSchema]:
    seed = load_service_schema(from_yaml(SEED).doc)
    tts = load_service_schema(from_code(project(tmp_path, CODE), "tts", "2.0").doc)
    original = load_service_schema(ORIGINAL.read_bytes(), str(ORIGINAL))
    return [seed, tts, original]


def test_the_document_is_valid_openapi_with_a_valid_example_per_operation(tmp_path: Path) -> None:
    doc = openapi_document(services(tmp_path), servers=["http://127.0.0.1:8080"])
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert sorted(doc["paths"]) == ["/v1/private/image-detect", "/v1/private/s8e6e8a48", "/v1/private/tts"]
    for path, ops in doc["paths"].items():
        post = ops["post"]
        body = post["requestBody"]["content"]["application/json"]
        # The example request passes the very schema the gateway validates with.
        validator = jsonschema_rs.Draft7Validator(body["schema"])
        errors = [e.message for e in validator.iter_errors(body["example"])]
        assert errors == [], (path, body["example"])
        assert set(post["responses"]) >= {"200", "400", "401", "404", "408", "415", "429", "503", "504"}
        error = post["responses"]["400"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}


def test_parameters_keep_their_constraints_and_descriptions(tmp_path: Path) -> None:
    doc = openapi_document(services(tmp_path))
    post = doc["paths"]["/v1/private/image-detect"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    speed = schema["properties"]["parameter"]["properties"]["image-detect"]["properties"]["speed"]
    assert speed == {"description": "a speed that xxx", "type": "integer", "minimum": 50, "maximum": 200000}
    # ... and are listed in the operation's text, with the rules a reader needs.
    assert "| `speed` | integer | no | minimum 50, maximum 200000 | a speed that xxx |" in post["description"]
    assert "| `vcn` | string | yes |" in post["description"]
    # Served both ways: the WebSocket side is described in words.
    assert "Streaming session over WebSocket" in post["description"]
    example = post["requestBody"]["content"]["application/json"]["example"]
    assert example["parameter"]["image-detect"]["speed"] == 50


def test_a_session_only_service_is_described_as_a_websocket(tmp_path: Path) -> None:
    text = (
        "apiVersion: ase-serving/v1\nkind: ApiSchema\nmetadata: {serviceName: asr}\n"
        "spec:\n  interface: session\n  read_timeout: 15\n  route: [/v1/private/asr, /v2/asr]\n"
    )
    (tmp_path / "asr.yml").write_text(text)
    svc = load_service_schema(from_yaml(tmp_path / "asr.yml").doc)
    doc = openapi_document([svc])
    validate(doc)
    ops = doc["paths"]["/v1/private/asr"]
    assert list(ops) == ["get"]
    ids = [doc["paths"][r]["get"]["operationId"] for r in ("/v1/private/asr", "/v2/asr")]
    assert ids == ["asr_session", "asr_session_2"]
    assert "ws(s)://HOST/v1/private/asr" in ops["get"]["description"]
    assert "Idle limit 15 s." in ops["get"]["description"]
    # A plain GET (no upgrade) is 405, and an upgrade refused before it is accepted an error body.
    assert set(ops["get"]["responses"]) == {"101", "401", "403", "404", "405", "429"}
    error = ops["get"]["responses"]["405"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}


def test_two_services_on_one_route_are_refused(tmp_path: Path) -> None:
    seed = from_yaml(SEED).doc
    other = orjson.loads(orjson.dumps(seed))
    other["meta"]["serviceId"] = "other"
    claimed = r"route /v1/private/image-detect is claimed by image-detect 1\.0\.0 and other"
    with pytest.raises(ValueError, match=claimed):
        openapi_document([load_service_schema(seed), load_service_schema(other)])


def test_a_schema_file_of_the_original_gateway_loads_as_it_is() -> None:
    svc = load_service_schema(ORIGINAL.read_bytes(), str(ORIGINAL))
    assert (svc.service_id, svc.version, svc.routes) == ("s8e6e8a48", "v1.0", ["/v1/private/s8e6e8a48"])
    assert svc.modes == ["once", "session"]  # it does not say: served both ways
    assert svc.hosts == ["api.example.com", "api2.example.com"]
    assert svc.inputs == {"input1": {"dataType": "text", "encoding": "utf8"}}
    assert svc.accepts == {"result": {"dataType": "text"}}
    assert svc.doc["meta"]["call"] == "atmos-s8e6e8a48"  # unknown fields are kept
    example = example_request(svc)
    assert example["parameter"]["s8e6e8a48"]["lang"] == "cn"
    assert jsonschema_rs.Draft7Validator(svc.schemainput).is_valid(example)


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (b"{not json", "not valid JSON"),
        ({"schemainput": {}, "schemaoutput": {}}, "$.meta: must be an object"),
        (
            {"meta": {"serviceId": "a", "version": "1"}, "schemainput": {"type": 5}, "schemaoutput": {}},
            "$.schemainput.type",
        ),
    ],
)
def test_a_broken_schema_is_refused_with_every_problem(doc: Any, words: str) -> None:
    with pytest.raises(ServiceSchemaError) as info:
        load_service_schema(doc, "x.json")
    assert words in str(info.value)
