"""The examples' API definitions (ocr: the Api class in code; asr: ai_api.yml) and their test cases.

Every test case that expects success must be a request the service schema accepts, or the
gateway would refuse what the engine serves; a case the schema refuses must be one the engine
refuses too.
"""

from __future__ import annotations

import jsonschema_rs
import pytest

from ase_serving.loader.project import load_project
from ase_serving.loader.testcases import load_cases
from ase_serving.schema import Compiled, from_code, from_yaml, openapi_document
from ase_serving.schema.loaded import load_service_schema
from examples.support import example_dir

pytest.importorskip("rapidocr_onnxruntime")


def compiled(name: str) -> Compiled:
    folder = example_dir(name)
    if (folder / "ai_api.yml").is_file():
        return from_yaml(folder / "ai_api.yml")
    settings = load_project(folder)
    return from_code(folder / "wrapper.py", settings.service, settings.version)


@pytest.mark.parametrize("name", ["ocr", "asr"])
def test_the_schema_accepts_every_case_the_engine_serves(name: str) -> None:
    made = compiled(name)
    assert made.warnings == []
    settings = load_project(example_dir(name))
    assert (made.spec.service_id, made.spec.version) == (settings.service, settings.version)
    assert made.spec.modes == sorted(settings.modes)
    validator = jsonschema_rs.Draft7Validator(made.doc["schemainput"])
    served = [c for c in load_cases(example_dir(name) / "tests") if c.expect.code == 0]
    assert served
    for case in served:
        errors = [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(case.request)]
        assert errors == [], case.name
    openapi_document([load_service_schema(made.doc)])


def test_the_ocr_schema_refuses_what_the_engine_refuses_for_want_of_an_image() -> None:
    validator = jsonschema_rs.Draft7Validator(compiled("ocr").doc["schemainput"])
    cases = {c.name: c for c in load_cases(example_dir("ocr") / "tests")}
    # The case expects what the gateway answers (10163: `asectl loader test` checks it as the
    # gateway does); the engine's own 20301 answers callers of the loader itself (test_ocr.py).
    assert cases["no-image"].expect.code == 10163
    assert not validator.is_valid(cases["no-image"].request)
    # Not an image inside: the schema cannot know; the engine says so (20302).
    assert validator.is_valid(cases["not-an-image"].request)
    body = cases["hello-image"].request
    assert not validator.is_valid({**body, "parameter": {"ocr": {"min_score": 2}}})
    assert validator.is_valid({**body, "parameter": {"ocr": {"min_score": 0.5}}})
