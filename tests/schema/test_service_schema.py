"""The service schema check: every problem at once, each with the JSON path of the value."""

from __future__ import annotations

from typing import Any

import orjson

from ase_serving.schema import check_service_schema, is_service_schema, schema_routes


def schema(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "meta": {"serviceId": "echo", "version": "1.0"},
        "schemainput": {"type": "object", "properties": {"payload": {"type": "object"}}},
        "schemaoutput": {"type": "object"},
    }
    doc.update(changes)
    return doc


def problems(doc: Any, service: str | None = None, version: str | None = None) -> list[str]:
    return [str(p) for p in check_service_schema(orjson.dumps(doc), service, version)]


def test_a_valid_schema_has_no_problems() -> None:
    assert problems(schema(), "echo", "1.0") == []
    assert is_service_schema(schema())
    assert not is_service_schema({"meta": {}})


def test_every_problem_is_listed_with_its_path() -> None:
    doc = schema(
        meta={"serviceId": "echo", "route": ["/v1/echo", "nope"]},
        schemainput={"type": "objec", "properties": {"a b": {"minimum": "1"}}, "required": "a"},
    )
    del doc["schemaoutput"]
    assert problems(doc) == [
        "$.meta.version: required: a non-empty string",
        "$.meta.route[1]: 'nope' is not a path starting with '/'",
        '$.schemainput.type: "objec" is not a JSON Schema type '
        "(array, boolean, integer, null, number, object, string, or a list of them)",
        '$.schemainput.properties["a b"].minimum: "1" is not of type "number"',
        '$.schemainput.required: "a" is not of type "array"',
        "$.schemaoutput: required: a JSON Schema (draft 7)",
    ]


def test_meta_must_match_the_key_it_is_stored_under() -> None:
    assert problems(schema(), "other", "2.0") == [
        "$.meta.serviceId: is 'echo' but the item is stored under --service 'other'",
        "$.meta.version: is '1.0' but the item is stored under --version '2.0'",
    ]


def test_syntax_errors_and_uncompilable_schemas() -> None:
    [syntax] = check_service_schema(b'{"meta": ')
    assert syntax.path == "$" and syntax.message.startswith("not valid JSON") and "line 1" in syntax.message
    bad_regex = schema(schemaoutput={"pattern": "(["})
    assert problems(bad_regex) == ['$.schemaoutput.pattern: "([" is not a "regex"']
    assert problems([1, 2]) == ["$: must be a JSON object with meta, schemainput and schemaoutput"]


def test_routes_default_and_lists() -> None:
    assert schema_routes(schema()) == ["/v1/private/echo"]
    assert schema_routes(schema(meta={"serviceId": "e", "version": "1", "route": "/x"})) == ["/x"]
    both = schema(meta={"serviceId": "e", "version": "1", "route": ["/a", "/b"]})
    assert schema_routes(both) == ["/a", "/b"]
