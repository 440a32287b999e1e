"""``asectl images build`` and ``loader build``'s options, in-process (CliRunner): what they refuse,
in one line, before any image is built. (With a Docker engine, tests/deploy/test_docker_e2e.py
builds the images with this command and checks the missing-base message of ``loader build``.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ase_serving.cli.main import make_app
from ase_serving.cluster.images import (
    FRAMEWORK_IMAGE,
    LOADER_BASE_IMAGE,
    PYTHON_IMAGE,
    builder,
    loader_dockerfile,
)

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], **env: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(make_app(args), args, env=env or None)
    return result.exit_code, result.stdout, result.stderr


def test_images_is_a_group_of_asectl() -> None:
    code, out, _ = _run(["--help"])
    assert code == 0 and "images" in out
    code, out, _ = _run(["images", "build", "--help"], COLUMNS="200")
    assert code == 0
    for text in (FRAMEWORK_IMAGE, LOADER_BASE_IMAGE, PYTHON_IMAGE, "--source", "--python-base", "--verbose"):
        assert text in out, text


def test_a_folder_that_is_no_source_tree_is_refused_in_one_line(tmp_path: Path) -> None:
    code, out, err = _run(["images", "build", "--source", str(tmp_path)])
    assert code == 1 and out == ""
    assert err.startswith(f"error: {tmp_path} is not an ase-serving source tree (no docker/Dockerfile")
    assert "--source DIR" in err and len(err.strip().splitlines()) == 1


def test_without_a_docker_command_it_says_what_to_install(tmp_path: Path) -> None:
    """The source tree is this checkout's (found from the package); no docker on PATH."""
    code, _out, err = _run(["images", "build"], PATH=str(tmp_path))
    assert code == 1
    assert err.startswith("error: docker: no docker command on PATH") and "apt-get install docker.io" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_options_are_usage_errors() -> None:
    code, _out, err = _run(["images", "build", "--tag", "x"])
    assert code == 2 and "No such option" in err
    code, _out, err = _run(["images", "rebuild"])
    assert code == 2 and "No such command" in err


def test_loader_build_help_names_the_way_to_the_base_image() -> None:
    code, out, _ = _run(["loader", "build", "--help"], COLUMNS="200")
    assert code == 0 and "asectl images build" in out and "--verbose" in out


def test_a_projects_requirements_are_installed_quietly(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy\n")
    text = loader_dockerfile(tmp_path)
    assert "pip install --quiet --no-cache-dir --disable-pip-version-check -r" in text


def test_requirements_of_comments_and_blank_lines_only_add_no_pip_step(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# nothing yet\n\n   # numpy\n")
    assert "pip" not in loader_dockerfile(tmp_path)
    (tmp_path / "requirements.txt").write_text("# pinned\nnumpy==2.1  # for the model\n")
    assert "pip install --quiet" in loader_dockerfile(tmp_path)


def _docker_cli(folder: Path, version: str, buildx: bool) -> Path:
    """A docker CLI of ``version`` in ``folder`` (with or without the buildx plugin) for the
    builder's choice; `docker info` answers as an engine does."""
    folder.mkdir()
    script = folder / "docker"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  info) echo 27.0.0 ;;\n"
        f"  --version) echo 'Docker version {version}, build 0000000' ;;\n"
        f"  buildx) {'echo buildx v0.17.0' if buildx else 'echo unknown command >&2; exit 1'} ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(
    ("clis", "chosen", "argv", "env"),
    [
        # A CLI with buildx: its `buildx build --load`.
        ([("28.2.2", True)], 0, ("buildx", "build", "--load"), {}),
        # A newer CLI without buildx first on PATH, Debian's 20.10 after it: the 20.10 one, BuildKit on.
        ([("28.2.2", False), ("20.10.24+dfsg1", False)], 1, ("build",), {"DOCKER_BUILDKIT": "1"}),
        # Only a newer CLI without buildx: the classic builder.
        ([("28.2.2", False)], 0, ("build",), {}),
    ],
)
def test_builds_use_buildkit_where_a_docker_cli_on_path_has_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clis: list[tuple[str, bool]],
    chosen: int,
    argv: tuple[str, ...],
    env: dict[str, str],
) -> None:
    exes = [_docker_cli(tmp_path / f"bin{i}", v, bx) for i, (v, bx) in enumerate(clis)]
    monkeypatch.setenv("PATH", os.pathsep.join(str(e.parent) for e in exes))
    builder.cache_clear()
    try:
        how = builder()
    finally:
        builder.cache_clear()
    assert how.argv == (str(exes[chosen]), *argv)
    assert dict(how.env) == env
    assert how.buildkit == (argv != ("build",) or bool(env))
