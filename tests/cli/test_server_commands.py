"""``asectl gateway serve``, ``asectl lb serve`` and ``asectl config serve``: the flags of the
servers' ``python -m`` entry points, from the same settings fields (their processes:
tests/gateway/test_gateway_process.py, tests/lb/test_lb_service.py,
tests/cli/test_config_cli.py and tests/store/test_embedded_server.py)."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from ase_serving.cli.main import make_app
from ase_serving.envflags import env_name, parser
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
