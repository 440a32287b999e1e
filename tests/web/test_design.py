"""The design page's model: YAML <-> design <-> service schema, and problems placed on fields,
all through the reader and checks of ``asectl api create`` (no second implementation)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ase_serving.designer.checks import check_design, check_text
from ase_serving.designer.design import design_from_schema, design_from_yaml, design_yaml, empty_design
from ase_serving.schema import ApiDefinitionError, from_yaml
from examples.support import example_dir
from tests.schema.support import SEED_YAML, YAML

SOURCES = {
    "seed": SEED_YAML.read_text(),
    "readme tts": YAML,
    "echo": (example_dir("echo") / "ai_api.yml").read_text(),
    "asr": (example_dir("asr") / "ai_api.yml").read_text(),
}


def _schema(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "ai_api.yml"
    path.write_text(text)
    return from_yaml(path).doc


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_file_opened_and_written_again_gives_the_same_schema(tmp_path: Path, name: str) -> None:
    text = SOURCES[name]
    design = design_from_yaml(text)
    written = design_yaml(design)
    assert _schema(tmp_path, written) == _schema(tmp_path, text)
    # What the page shows after opening is what it would write, and nothing to complain about.
    checked = check_design(design)
    assert checked["problems"] == [] and checked["warnings"] == []
    assert checked["yaml"] == written and checked["schema"] == _schema(tmp_path, text)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_pushed_schema_opens_as_a_design_that_gives_it_again(tmp_path: Path, name: str) -> None:
    schema = _schema(tmp_path, SOURCES[name])
    design = design_from_schema(copy.deepcopy(schema))
    checked = check_design(design)
    assert checked["problems"] == [], checked["problems"]
    assert checked["schema"] == schema


def test_the_seeds_misspellings_are_read_as_the_right_words_with_the_readers_warnings() -> None:
    text = SOURCES["seed"]
    design = design_from_yaml(text)
    assert [p["name"] for p in design["params"]] == ["vcn", "speed", "isauto", "someother"]
    assert [c["name"] for c in design["params"][3]["properties"]] == ["value1", "value2"]
    assert [(d["name"], d["type"]) for d in design["inputs"]] == [
        ("audio1", "audio"),
        ("text1", "text"),
        ("image1", "other"),
        ("vedio1", "video"),
    ]
    assert design["metadata"]["configFileName"] == "xxxx.json"
    opened = check_text(text, design)
    texts = [w["text"] for w in opened["warnings"]]
    assert "ai_api.yml:14: spec.request.parameters: 'paramters' is a misspelling of 'parameters'; " in (
        "\n".join(texts) + "\n"
    ).replace("read as 'parameters'\n", "")
    vedio = next(w for w in opened["warnings"] if "'vedio'" in w["message"])
    assert vedio["at"] == ["inputs.3"] and vedio["key"] == "type"
    assert next(w for w in opened["warnings"] if "configFilname" in w["message"])["at"] == [
        "metadata.configFileName"
    ]


def _reader_problems(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What `asectl api create -f ai_api.yml` lists for ``text`` (run in its folder)."""
    (tmp_path / "ai_api.yml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ApiDefinitionError) as caught:
        from_yaml("ai_api.yml")
    return [str(p) for p in caught.value.problems]


def test_problems_are_the_readers_own_words_placed_on_their_row_and_keyword(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    design = empty_design("tts")
    speed = {"name": "speed", "required": True, "schema": {"type": "integer", "minimum": 300, "maximum": 200}}
    code = {"name": "code", "required": False, "schema": {"type": "string", "pattern": "(", "default": 7}}
    box = {
        "name": "box",
        "required": False,
        "schema": {"type": "object"},
        "properties": [
            {"name": "w", "required": True, "schema": {"type": "integer", "minimum": 5, "maximum": 1}}
        ],
        "items": None,
    }
    design["params"] = [speed, code, box]
    design["service"]["read_timeout"] = -1
    checked = check_design(design)
    assert checked["schema"] is None
    # Exactly what `asectl api create` reports for the same YAML, in the same order.
    assert [p["text"] for p in checked["problems"]] == _reader_problems(
        tmp_path, checked["yaml"], monkeypatch
    )
    where = {p["message"].split(":")[0]: (p["at"], p["key"]) for p in checked["problems"]}
    assert where["minimum 300 > maximum 200"] == (["params.0"], "minimum")
    assert where["minimum 5 > maximum 1"] == (["params.2.properties.0"], "minimum")
    assert where["default 7 is not of type string"] == (["params.1"], "default")
    assert where["read_timeout must be a number of seconds > 0, not -1"] == (["service.read_timeout"], None)
    assert any(at == ["params.1"] and key == "pattern" for at, key in where.values())


def test_two_rows_of_one_name_reach_the_reader_as_two_keys() -> None:
    design = empty_design("tts")
    row = {"name": "lang", "required": False, "schema": {"type": "string"}, "items": None}
    design["params"] = [row, copy.deepcopy(row)]
    design["inputs"] = [
        {
            "name": "",
            "type": "text",
            "required": False,
            "encoding": [],
            "compress": [],
            "format": [],
            "attrs": {},
        }
    ]
    checked = check_design(design)
    messages = {p["message"]: p["at"] for p in checked["problems"]}
    duplicate = next(m for m in messages if m.startswith("duplicate key 'lang'"))
    assert messages[duplicate] == ["params.0", "params.1"]
    assert messages["name '': use letters, digits, '-', '_' or '.'"] == ["inputs.0"]


def test_a_new_design_is_named_and_served_both_ways() -> None:
    checked = check_design(empty_design("my-engine", "0.1"))
    assert checked["problems"] == []
    meta = checked["schema"]["meta"]
    assert (meta["serviceId"], meta["version"], meta["interface"]) == (
        "my-engine",
        "0.1",
        ["once", "session"],
    )
    assert checked["examples"]["once"]["header"]["status"] == 3
    assert checked["examples"]["session"]["header"]["status"] == 0


def test_a_file_that_is_no_mapping_opens_empty_with_the_readers_error() -> None:
    design = design_from_yaml("- just\n- a list\n")
    assert design["params"] == [] and design["metadata"] == {}
    opened = check_text("- just\n- a list\n", design)
    assert [p["text"] for p in opened["problems"]] == [
        "ai_api.yml:1: must be an ApiSchema mapping (apiVersion, kind, metadata, spec)"
    ]
