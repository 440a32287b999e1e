"""A UserError that a command lets through is printed once for every command, in-process too."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ase_serving.cli.main import make_app
from ase_serving.errors import StartupError, UserError


class Exit3(UserError):
    exit_code = 3


@pytest.mark.parametrize(
    ("exc", "status"),
    [(UserError("the folder has no ase.toml"), 1), (StartupError("port 1 taken"), 1), (Exit3("three"), 3)],
)
def test_a_user_error_is_one_line_and_its_exit_code(exc: UserError, status: int) -> None:
    app = make_app()

    @app.command("boom")
    def boom() -> None:
        raise exc

    result = CliRunner().invoke(app, ["boom"])
    assert result.exit_code == status
    assert result.stderr == f"error: {exc}\n"
    assert result.stdout == ""


def test_another_error_is_not_taken_for_one() -> None:
    app = make_app()

    @app.command("boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    result = CliRunner().invoke(app, ["boom"])
    assert isinstance(result.exception, RuntimeError)


def test_a_command_of_the_tool(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """`config list` with no cluster set up: the StoreError (NotSetUp) it lets through."""
    monkeypatch.setenv("ASE_HOME", str(tmp_path))
    result = CliRunner().invoke(make_app(["config", "list"]), ["config", "list"])
    assert result.exit_code == 1
    assert result.stderr == "error: no cluster set up: run `asectl init` or `asectl setup`\n"
