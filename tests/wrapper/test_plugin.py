"""load_plugin: both wrapper styles, and every contract problem named at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ase_serving.wrapper import PluginError, load_plugin

PLUGINS = Path(__file__).parent / "plugins"


def problems_of(name: str, modes: list[str] | None = None) -> list[str]:
    with pytest.raises(PluginError) as info:
        load_plugin(PLUGINS / name, modes)
    return info.value.problems


def test_module_style_once() -> None:
    plugin = load_plugin(PLUGINS / "module_once.py")
    assert plugin.modes == frozenset({"once"})
    assert plugin.has("wrapperOnceExec") and not plugin.has("wrapperCreate")
    resp: list[dict[str, object]] = []
    assert plugin.funcs["wrapperOnceExec"]("t", {}, [{"data": b"x"}], resp, [], 0) == 0
    assert resp[0]["data"] == b"x"


def test_class_style_session() -> None:
    plugin = load_plugin(PLUGINS / "class_style.py")
    assert plugin.modes == frozenset({"session"})
    # Methods are bound to one Wrapper instance: the loader calls them without `self`.
    assert plugin.funcs["wrapperCreate"]("sid", {}, [], 0) == "h1"


def test_project_folder_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "wrapper.py").write_text((PLUGINS / "module_once.py").read_text())
    assert load_plugin(tmp_path).path == tmp_path / "wrapper.py"


def test_both_modes_defaults_and_varargs_are_accepted() -> None:
    plugin = load_plugin(PLUGINS / "both_modes.py", ["once", "session"])
    assert plugin.modes == frozenset({"once", "session"})


def test_missing_init_is_named() -> None:
    assert problems_of("missing_init.py") == ["wrapperInit is missing (every wrapper needs it)"]


def test_wrong_arity_names_function_and_argument_count() -> None:
    problems = problems_of("wrong_arity.py")
    assert len(problems) == 2
    assert problems[0].startswith("wrapperOnceExec(usrTag, params) cannot be called as wrapperOnceExec(")
    assert "it must take 6 arguments" in problems[0]
    assert problems[1].startswith("wrapperError(ret, extra)")
    assert "it must take 1 argument" in problems[1]


def test_import_error_reports_line_and_exception() -> None:
    (problem,) = problems_of("import_error.py")
    assert problem == "importing wrapper.py failed (line 5): RuntimeError: engine library not found"


def test_partial_session_set_names_the_missing_functions() -> None:
    assert problems_of("partial_session.py") == ["session mode needs wrapperRead, wrapperDestroy (missing)"]


def test_required_mode_missing() -> None:
    assert problems_of("module_once.py", ["session"]) == [
        "session mode needs wrapperCreate, wrapperWrite, wrapperRead, wrapperDestroy (missing)"
    ]
    assert problems_of("class_style.py", ["once", "session"]) == ["once mode needs wrapperOnceExec (missing)"]


def test_no_mode_at_all() -> None:
    (problem,) = problems_of("init_only.py")
    assert problem.startswith("no mode is served")


def test_unknown_mode() -> None:
    assert problems_of("module_once.py", ["batch"]) == ["unknown mode 'batch' (use once or session)"]


def test_not_callable_and_all_problems_at_once() -> None:
    problems = problems_of("not_callable.py", ["session"])
    assert "wrapperInit is a int, not a function" in problems
    assert "wrapperInit is missing (every wrapper needs it)" in problems
    assert any(p.startswith("session mode needs wrapperCreate") for p in problems)


def test_missing_file(tmp_path: Path) -> None:
    (problem,) = problems_of(str(tmp_path))
    assert "a wrapper project needs a wrapper.py" in problem


def test_wrapper_class_that_fails_to_construct(tmp_path: Path) -> None:
    file = tmp_path / "wrapper.py"
    file.write_text("class Wrapper:\n    def __init__(self):\n        raise ValueError('no gpu')\n")
    (problem,) = problems_of(str(file))
    assert problem == "creating Wrapper() failed: ValueError: no gpu"
