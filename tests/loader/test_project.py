"""ase.toml -> LoaderSettings: defaults, every key, flags winning, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from ase_serving.loader.project import ProjectError, load_project

WRAPPER = "def wrapperInit(config):\n    return 0\n"


def project(tmp_path: Path, toml: str | None = None, name: str = "my-engine") -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "wrapper.py").write_text(WRAPPER)
    if toml is not None:
        (root / "ase.toml").write_text(toml)
    return root


def test_defaults_without_ase_toml(tmp_path: Path) -> None:
    s = load_project(project(tmp_path))
    assert s.service == "my-engine" and s.version == "1.0.0" and s.modes == frozenset()
    assert (s.workers, s.lic, s.host, s.port, s.metrics_port) == (1, 1, "127.0.0.1", 0, 0)
    assert (s.once_timeout_s, s.read_timeout_s, s.session_timeout_s, s.drain_timeout_s) == (30, 15, 180, 30)
    assert s.session_results == "auto" and s.wrapper_config == {} and s.direct


def test_every_key(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        """
[service]
name = "asr"
version = "2.1.0"
modes = ["session"]
[loader]
workers = 2
lic = 4
host = "0.0.0.0"
port = 50051
metrics_port = 9100
once_timeout = 5
read_timeout = 2.5
session_timeout = 60
drain_timeout = 0
session_results = "async"
direct = false
[wrapper]
model_dir = "/models"
beam = 8
fast = true
ratio = 0.5
""",
    )
    s = load_project(root)
    assert (s.service, s.version, s.modes) == ("asr", "2.1.0", frozenset({"session"}))
    assert (s.workers, s.lic, s.host, s.port, s.metrics_port) == (2, 4, "0.0.0.0", 50051, 9100)
    assert (s.once_timeout_s, s.read_timeout_s, s.session_timeout_s, s.drain_timeout_s) == (5, 2.5, 60, 0)
    assert s.session_results == "async" and not s.direct
    # wrapperInit gets strings, as the seed's config did.
    assert s.wrapper_config == {"model_dir": "/models", "beam": "8", "fast": "true", "ratio": "0.5"}
    assert s.project_dir == root.resolve()


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    root = project(tmp_path, '[service]\nname = "a"\nversion = "1"\n[loader]\nworkers = 3\nport = 1\n')
    s = load_project(root, service="b", version="2", workers=1, lic=2, host="::1", port=0, metrics_port=7)
    assert (s.service, s.version, s.workers, s.lic, s.host, s.port, s.metrics_port) == (
        "b",
        "2",
        1,
        2,
        "::1",
        0,
        7,
    )


def test_single_mode_as_a_string(tmp_path: Path) -> None:
    assert load_project(project(tmp_path, '[service]\nmodes = "once"\n')).modes == frozenset({"once"})


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[service\n", "ase.toml: invalid TOML"),
        ("service = 3\n", "[service] must be a table"),
        ('[service]\nmodes = ["batch"]\n', "[service] modes must be a list of 'once' and 'session'"),
        ('[service]\nname = "no spaces"\n', "service name 'no spaces' is not valid"),
        ("[loader]\nworkers = 0\n", "[loader] workers must be a number >= 1, got 0"),
        ('[loader]\nlic = "2"\n', "[loader] lic must be a number >= 1, got '2'"),
        ("[loader]\nread_timeout = true\n", "[loader] read_timeout must be a number"),
        ("[loader]\nport = -1\n", "[loader] port must be a number >= 0"),
        ('[loader]\nsession_results = "later"\n', "session_results must be one of sync, async, auto"),
        ('[loader]\ndirect = "yes"\n', "[loader] direct must be true or false, got 'yes'"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, toml: str, fragment: str) -> None:
    with pytest.raises(ProjectError) as info:
        load_project(project(tmp_path, toml))
    assert fragment in str(info.value)


def test_missing_folder_and_wrapper(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no such folder"):
        load_project(tmp_path / "absent")
    with pytest.raises(
        ProjectError, match=r"no wrapper\.py here \(create one with `asectl loader new NAME`\)"
    ):
        load_project(tmp_path)


def test_flag_values_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="at least 1"):
        load_project(project(tmp_path), workers=0)


def test_metrics_port_minus_one_turns_the_endpoint_off(tmp_path: Path) -> None:
    (tmp_path / "wrapper.py").write_text("def wrapperInit(config):\n    return 0\n")
    (tmp_path / "ase.toml").write_text("[loader]\nmetrics_port = -1\n")
    assert load_project(tmp_path).metrics_port is None
    (tmp_path / "ase.toml").write_text("[loader]\nmetrics_port = 9109\n")
    assert load_project(tmp_path).metrics_port == 9109
