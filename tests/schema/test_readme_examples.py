"""The README's two ways to write one API (YAML and code) give the same service schema."""

from __future__ import annotations

import re
from pathlib import Path

from ase_serving.schema import from_code, from_yaml

README = Path(__file__).resolve().parents[2] / "README.md"


def block(after: str, lang: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(after)
    found = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, start)
    assert found is not None, after
    return found.group(1)


def test_the_readmes_yaml_and_code_examples_agree(tmp_path: Path) -> None:
    (tmp_path / "ai_api.yml").write_text(block("**In YAML**", "yaml"))
    from_yaml_doc = from_yaml(tmp_path / "ai_api.yml").doc
    folder = tmp_path / "tts"
    folder.mkdir()
    (folder / "wrapper.py").write_text(block("**In code**", "python"))
    from_code_doc = from_code(folder / "wrapper.py", "tts", "1.0.0").doc
    # Where to push it is the YAML's business only (code takes it from asectl setup).
    assert (from_yaml_doc["meta"].pop("project"), from_yaml_doc["meta"].pop("group")) == ("demo", "default")
    assert from_code_doc == from_yaml_doc
    own = from_code_doc["schemainput"]["properties"]["parameter"]["properties"]["tts"]
    assert own["properties"]["speed"] == {
        "type": "integer",
        "description": "speaking speed",
        "minimum": 0,
        "maximum": 100,
        "default": 50,
    }
