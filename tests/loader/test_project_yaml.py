"""ai_api.yml metadata names the service: flags > ase.toml = ai_api.yml (a mismatch is refused) > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from ase_serving.loader.project import ProjectError, load_project
from tests.support import WRAPPERS

WRAPPER = "def wrapperInit(config):\n    return 0\n"

#: The seed's example, typos included (the metadata is what the loader reads).
SEED_YAML = """\
apiVersion: iflytek.com/v1alpha1
kind: ApiSchema
metadata:
  group: gas                 # configuration-centre group
  region: dx                 # configuration-centre region
  serviceName: image-detect  # service name
  projectName: guiderAllService  # configuration project name
  version: "1.0.3"           # configuration version
  configFilname: xxxx.json
  creationTimestamp: null
  name: my-api-schema
spec:
  request:
    paramters:
      properties:
        vcn: {description: "a word that xxx", type: string}
      required: [vcn]
    payload:
      properties:
        image1: {compress: raw, type: base64, format: jpg, raw: string}
      required: [image1]
  response:
    palyload:
      properties:
        audio1: {type: audio, encoding: speex-wb}
"""


def project(tmp_path: Path, yml: str | None = SEED_YAML, toml: str | None = None) -> Path:
    root = tmp_path / "folder-name"
    root.mkdir()
    (root / "wrapper.py").write_text(WRAPPER)
    if yml is not None:
        (root / "ai_api.yml").write_text(yml)
    if toml is not None:
        (root / "ase.toml").write_text(toml)
    return root


def test_wrapper_and_ai_api_yml_are_enough(tmp_path: Path) -> None:
    s = load_project(project(tmp_path))
    assert (s.service, s.version) == ("image-detect", "1.0.3")


def test_ase_toml_and_the_yaml_must_agree_and_flags_win_over_both(tmp_path: Path) -> None:
    # ase.toml naming the service otherwise than ai_api.yml: refused, saying which file to change
    # (it used to win silently: the route was /v1/private/from-toml while the YAML said image-detect).
    root = project(tmp_path, toml='[service]\nname = "from-toml"\n')
    with pytest.raises(ProjectError) as err:
        load_project(root)
    assert str(err.value) == (
        f"ase.toml and ai_api.yml disagree: [service] name is 'from-toml' in {root / 'ase.toml'} but "
        f"metadata.serviceName is 'image-detect' in {root / 'ai_api.yml'}; set name = \"image-detect\" in "
        "ase.toml (or delete it there: ai_api.yml's then counts)"
    )
    (root / "ase.toml").write_text('[service]\nversion = "2"\n')
    with pytest.raises(ProjectError, match=r"version is '2' in .* but metadata\.version is '1\.0\.3'"):
        load_project(root)
    # Agreeing files are fine; the toml naming the service only takes the version from the YAML.
    (root / "ase.toml").write_text('[service]\nname = "image-detect"\n')
    s = load_project(root)
    assert (s.service, s.version) == ("image-detect", "1.0.3")
    # Flags win over both: a loader started with --service serves the schema under that name.
    s = load_project(root, service="from-flag", version="9")
    assert (s.service, s.version) == ("from-flag", "9")


def test_yaml_without_metadata_falls_back_to_defaults(tmp_path: Path) -> None:
    s = load_project(project(tmp_path, yml="apiVersion: v1\nkind: ApiSchema\n"))
    assert (s.service, s.version) == ("folder-name", "1.0.0")


def test_unquoted_numeric_version_is_text(tmp_path: Path) -> None:
    yml = "kind: ApiSchema\nmetadata:\n  serviceName: ocr\n  version: 2.1\n"
    s = load_project(project(tmp_path, yml=yml))
    assert (s.service, s.version) == ("ocr", "2.1")


def test_broken_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    root = project(tmp_path, yml="kind: ApiSchema\nmetadata:\n  serviceName: [ocr\n  version: 1\n")
    with pytest.raises(ProjectError) as err:
        load_project(root)
    message = str(err.value)
    assert f"{root / 'ai_api.yml'}:" in message and "invalid YAML" in message
    line = int(message.split("ai_api.yml:", 1)[1].split(":", 1)[0])
    assert line in (3, 4, 5)  # the unclosed '[' on line 3, reported where the parser gives up


@pytest.mark.parametrize(
    ("yml", "needle"),
    [
        ("- a\n- b\n", "must be an ApiSchema mapping"),
        ("kind: Deployment\n", "kind must be ApiSchema"),
        ("kind: ApiSchema\nmetadata: [1]\n", "metadata must be a mapping"),
        ("kind: ApiSchema\nmetadata:\n  serviceName: 'a b'\n", "metadata.serviceName in ai_api.yml"),
        ("kind: ApiSchema\nmetadata:\n  version: 'x/y'\n", "service version 'x/y' is not valid"),
    ],
)
def test_unusable_yaml_is_refused(tmp_path: Path, yml: str, needle: str) -> None:
    with pytest.raises(ProjectError, match=needle):
        load_project(project(tmp_path, yml=yml))


def test_lic_best_is_read_and_capped_at_the_total(tmp_path: Path) -> None:
    root = project(tmp_path, yml=None, toml="[loader]\nworkers = 2\nlic = 3\nlic_best = 4\n")
    assert load_project(root).lic_best == 4
    assert load_project(root, lic=1).lic_best == 2
    assert load_project(WRAPPERS / "echo").lic_best is None
