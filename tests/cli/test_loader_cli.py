"""`asectl loader new` and `asectl loader test`, run as a user runs them: the real console script."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.support import asectl, one_line_error

PLUGINS = Path(__file__).parents[1] / "wrapper" / "plugins"
_SCRIPT = Path(sys.executable).parent / "asectl"
ASECTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ase_serving.cli.main"]

pytestmark = pytest.mark.timeout(60)


def project(tmp_path: Path, plugin: str, cases: dict[str, str] | None = None) -> Path:
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    shutil.copy(PLUGINS / plugin, root / "wrapper.py")
    for name, text in (cases or {}).items():
        (root / "tests" / name).write_text(text)
    return root


# -- loader new -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["once", "session"])
def test_new_project_passes_loader_test_as_generated(tmp_path: Path, mode: str) -> None:
    proc = asectl("loader", "new", "my-engine", "--mode", mode, "--dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "my-engine"
    assert "created" in proc.stdout and f"asectl loader test {root}" in proc.stdout
    # The dev loop it prints: a cluster, then the loader that pushes the (edited) schema.
    assert "\n  asectl init " in proc.stdout
    assert f"\n  asectl loader run {root} --push-schema " in proc.stdout
    for name in ("wrapper.py", "ai_api.yml", "ase.toml", "requirements.txt", "README.md"):
        assert (root / name).is_file()
    assert f'modes = ["{mode}"]' in (root / "ase.toml").read_text()
    assert not list(root.rglob("*.tmpl"))

    proc = asectl("loader", "test", root, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["problems"] == [] and report["warnings"] == []
    names = {c["name"]: c for c in report["cases"]}
    assert names["hello"]["ok"] and names["hello"]["code"] == 0
    # The scaffold ships an expected-error case too, and it checks the engine's own code.
    assert names["too-long"]["ok"] and names["too-long"]["code"] == 20002
    if mode == "once":
        # ... and requests the gateway refuses, checked against ai_api.yml as the gateway does.
        assert names["no-input"]["message"] == "payload.text is required"
        assert (
            names["bad-parameter"]["message"] == 'parameter.my-engine.upper: "yes" is not of type "boolean"'
        )

    # ai_api.yml matches the engine: `asectl api create` takes it as written, for the engine's mode.
    proc = asectl("api", "create", "-f", root / "ai_api.yml", "-o", tmp_path / "out", "--no-push", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["serviceId"] == "my-engine" and proc.stderr == ""
    schema = json.loads((tmp_path / "out" / "my-engine.json").read_text())
    assert schema["meta"]["interface"] == [mode]

    # The table form passes too, and names the cases.
    proc = asectl("loader", "test", root)
    assert proc.returncode == 0 and "hello" in proc.stdout and "passed, 0 failed" in proc.stdout


def test_new_uses_the_wrapper_config(tmp_path: Path) -> None:
    assert asectl("loader", "new", "cfg", "--dir", tmp_path).returncode == 0
    toml = tmp_path / "cfg" / "ase.toml"
    toml.write_text(toml.read_text().replace('prefix = ""', 'prefix = ">> "'))
    proc = asectl("loader", "test", tmp_path / "cfg", "--json")
    assert proc.returncode == 1
    hello = next(c for c in json.loads(proc.stdout)["cases"] if c["name"] == "hello")
    assert hello["reason"] == "output echo is '>> HELLO', expected 'HELLO'"


def test_new_into_an_empty_folder_and_refusing_a_non_empty_one(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert asectl("loader", "new", "empty", cwd=tmp_path).returncode == 0
    proc = asectl("loader", "new", "empty", cwd=tmp_path)
    assert proc.returncode == 1
    assert "already exists and is not empty" in one_line_error(proc)


@pytest.mark.parametrize("name", ["1abc", "a/b", "has space", "-x"])
def test_new_rejects_bad_names(tmp_path: Path, name: str) -> None:
    proc = asectl("loader", "new", name, "--dir", tmp_path)
    if name == "-x":  # looks like an option: a usage error from the parser
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        return
    assert proc.returncode == 2
    assert "invalid project name" in one_line_error(proc)
    assert list(tmp_path.iterdir()) == []


def test_new_help_shows_an_example() -> None:
    proc = asectl("loader", "new", "--help")
    assert proc.returncode == 0 and "asectl loader new my-engine --mode session" in proc.stdout


# -- loader test ------------------------------------------------------------------------------

FAILING = """
- name: good
  request: {payload: {text: {text: {utf8: hi}}}}
  expect: {payload: {echo: {utf8: hi}}}
- name: bad
  request: {payload: {text: {text: {utf8: hi}}}}
  expect: {payload: {echo: {utf8: ho}}}
"""


def test_json_report_of_a_failing_case_keeps_stdout_clean(tmp_path: Path) -> None:
    root = project(tmp_path, "once_toy.py", {"a.yml": FAILING, "b.json": "{broken"})
    proc = asectl("loader", "test", root, "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)  # the wrapper's print() went to stderr
    assert "noise from the wrapper" in proc.stderr
    assert report["ok"] is False and report["problems"] == []
    assert [(c["name"], c["ok"]) for c in report["cases"]] == [("good", True), ("bad", False), ("b", False)]
    assert set(report["cases"][0]) >= {"name", "ok", "code", "message", "ms"}
    assert report["cases"][2]["reason"].startswith("b.json: cannot parse")


def test_table_report_names_the_failure(tmp_path: Path) -> None:
    root = project(tmp_path, "once_toy.py", {"a.yml": FAILING})
    proc = asectl("loader", "test", root)
    assert proc.returncode == 1
    assert "failed" in proc.stdout and "expected 'ho'" in proc.stdout and "1 passed, 1 failed" in proc.stdout


def test_contract_problems_are_listed(tmp_path: Path) -> None:
    root = project(tmp_path, "wrong_arity.py", {"a.yml": FAILING})
    proc = asectl("loader", "test", root, "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["cases"] == []
    assert len(report["problems"]) == 2 and report["problems"][0].startswith(
        "wrapperOnceExec(usrTag, params)"
    )
    proc = asectl("loader", "test", root)
    assert (
        proc.returncode == 1 and "wrapperError(ret, extra)" in proc.stderr and "Traceback" not in proc.stderr
    )


def test_no_cases_passes_with_a_warning(tmp_path: Path) -> None:
    root = project(tmp_path, "module_once.py")
    proc = asectl("loader", "test", root, "--json")
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert (report["ok"], report["problems"], report["cases"]) == (True, [], [])
    # Without ai_api.yml nothing serves it through a gateway: said, as what to add.
    assert report["warnings"] == [
        "no API schema: the gateway has no route for proj until the project has an ai_api.yml "
        "(or an Api class in wrapper.py); `asectl loader new NAME` scaffolds one"
    ]
    assert proc.stderr.strip() == f"warning: no test cases in {root.resolve() / 'tests'}"


def test_default_dir_is_the_current_folder(tmp_path: Path) -> None:
    root = project(tmp_path, "once_toy.py", {"a.yml": FAILING.split("- name: bad")[0]})
    proc = asectl("loader", "test", "--json", cwd=root)
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"] is True


def test_unusable_projects_are_one_line_errors(tmp_path: Path) -> None:
    proc = asectl("loader", "test", tmp_path / "absent")
    assert proc.returncode == 1 and "no such folder" in one_line_error(proc)
    root = project(tmp_path, "once_toy.py")
    (root / "ase.toml").write_text("[loader]\nworkers = 0\n")
    proc = asectl("loader", "test", root, "--json")
    assert proc.returncode == 1 and "[loader] workers must be a number >= 1" in one_line_error(proc)
    assert proc.stdout == ""


def test_test_help_shows_an_example() -> None:
    proc = asectl("loader", "test", "--help")
    assert proc.returncode == 0 and "asectl loader test examples/echo --json" in proc.stdout
