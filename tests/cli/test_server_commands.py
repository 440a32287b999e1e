"""``asectl gateway serve``, ``asectl lb serve`` and ``asectl config serve``: the flags of the
servers' ``python -m`` entry points, from the same settings fields (their processes:
tests/gateway/test_gateway_process.py, tests/lb/test_lb_service.py, tests/cli/test_config_cli.py
and tests/store/test_embedded_server.py); ``asectl loader run``: the fields of RunOptions (its
process: tests/cli/test_loader_run_options.py)."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from ase_serving.cli.loader_serve import RunOptions
from ase_serving.cli.main import make_app
from ase_serving.envflags import env_name, flags_of, parser
from ase_serving.gateway.settings import GatewaySettings
from ase_serving.lb.settings import LbSettings
from ase_serving.store.embedded.settings import EmbeddedSettings

SERVERS = [
    ("gateway", GatewaySettings, "ASE_GATEWAY"),
    ("lb", LbSettings, "ASE_LB"),
    ("config", EmbeddedSettings, "ASE_CONFIGD"),
]
#: Flags each server has (a check that the settings class is the one its users know).
KNOWN = {
    "gateway": {"--port", "--host", "--config", "--log-level"},
    "lb": {"--port", "--host", "--config", "--log-level"},
    "config": {"--port", "--host", "--data", "--history", "--login-failures"},
}


def _command(group: str) -> typer.core.TyperCommand:
    app = make_app([group, "serve"])
    return typer.main.get_command(app).commands[group].commands["serve"]  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(("group", "settings", "prefix"), SERVERS)
def test_the_command_has_the_flags_of_python_m(group: str, settings: type, prefix: str) -> None:
    typer_flags = {o for p in _command(group).params for o in p.opts if o != "--help"}
    argparse_flags = {
        o for a in parser(settings, "x", "x", prefix)._actions for o in a.option_strings if o.startswith("--")
    }
    assert typer_flags == argparse_flags - {"--help"}
    assert KNOWN[group] <= typer_flags
    result = CliRunner().invoke(
        make_app([group, "serve", "--help"]), [group, "serve", "--help"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0
    for flag in typer_flags:
        assert f"(env {env_name(prefix, flag)})" in result.stdout, flag


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["gateway", "serve", "--loop", "trio"], "'trio' is not one of auto, asyncio, uvloop"),
        (["gateway", "serve", "--workers", "two"], "Invalid value for '--workers'"),
        (["gateway", "serve", "--nope"], "No such option: --nope"),
        (["lb", "serve", "--log-level", "loud"], "'loud' is not one of debug, info, warning, error"),
        (["lb", "serve", "--ttl", "soon"], "Invalid value for '--ttl'"),
        (["config", "serve", "--port", "x"], "Invalid value for '--port'"),
        (["config", "serve", "--login-backoff", "soon"], "Invalid value for '--login-backoff'"),
    ],
)
def test_a_bad_flag_is_a_usage_error_before_any_server_starts(args: list[str], said: str) -> None:
    result = CliRunner().invoke(make_app(args), args, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert said in result.stderr


def test_the_groups_say_what_they_serve() -> None:
    result = CliRunner().invoke(make_app(), ["--help"], env={"COLUMNS": "200"})
    assert re.search(r"│ gateway +The gateway: ", result.stdout), result.stdout
    assert re.search(r"│ lb +The LB service: ", result.stdout), result.stdout


def test_loader_run_has_the_argument_and_options_of_run_options() -> None:
    """One definition: each field of RunOptions is the command's argument or one of its options,
    with the field's help and default; nothing else is."""
    app = make_app(["loader", "run"])
    command = typer.main.get_command(app).commands["loader"].commands["run"]  # type: ignore[attr-defined]
    params = {p.name: p for p in command.params if p.name != "help"}
    fields = flags_of(RunOptions)
    assert list(params) == [f.name for f in fields]
    for f in fields:
        param = params[f.name]
        assert param.help.replace("\\[", "[").startswith(f.spec.help), f.name  # markup escaped
        assert param.default == f.default, f.name
        if f.spec.argument:
            assert param.param_type_name == "argument" and f.name == "folder"
        else:
            assert param.param_type_name == "option" and param.opts == [f.option], f.name
    assert params["advertise"].envvar == "ASE_LOADER_ADVERTISE"
    result = CliRunner().invoke(app, ["loader", "run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "[env var: ASE_LOADER_ADVERTISE]" in result.stdout
    assert "[x>=2.0]" in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--ttl", "1.5"], "Invalid value for '--ttl': 1.5 is not in the range x>=2.0."),
        (["--workers", "two"], "Invalid value for '--workers'"),
        (["--nope"], "No such option: --nope"),
    ],
)
def test_a_bad_loader_run_option_is_a_usage_error_before_any_loader_starts(
    args: list[str], said: str
) -> None:
    argv = ["loader", "run", "no-such-folder", *args]
    result = CliRunner().invoke(make_app(argv), argv, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert said in result.stderr
