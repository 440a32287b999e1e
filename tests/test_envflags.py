"""Every server flag is also an environment variable (ase_serving.envflags)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from ase_serving.envflags import FlagField, apply_env, argv, env_name, flag, flags_of, parser, values
from ase_serving.gateway.settings import GatewaySettings
from ase_serving.lb.settings import LbSettings


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-body", type=int, default=16)
    ap.add_argument("--trusted-proxy", action="append", default=[])
    ap.add_argument("--access-log", action="store_true")
    ap.add_argument("--loop", default="auto", choices=("auto", "uvloop", "asyncio"))
    return ap


def test_a_variable_sets_a_flags_default_and_the_flag_still_wins() -> None:
    env = {
        "X_MAX_BODY": "99",
        "X_TRUSTED_PROXY": "10.0.0.1, 10.0.0.2",
        "X_ACCESS_LOG": "true",
        "X_LOOP": "asyncio",
    }
    ap = _parser()
    apply_env(ap, "X", env)
    args = ap.parse_args([])
    assert (args.max_body, args.trusted_proxy, args.access_log, args.loop) == (
        99,
        ["10.0.0.1", "10.0.0.2"],
        True,
        "asyncio",
    )
    assert ap.parse_args(["--max-body", "5"]).max_body == 5
    assert "[env X_MAX_BODY]" in ap.format_help()


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"X_MAX_BODY": "lots"}, "X_MAX_BODY='lots' is not a valid value for --max-body"),
        ({"X_ACCESS_LOG": "maybe"}, "X_ACCESS_LOG='maybe': use 1 or 0"),
        ({"X_LOOP": "trio"}, "X_LOOP='trio': choose from auto, uvloop, asyncio"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_the_variable(
    env: dict[str, str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        apply_env(_parser(), "X", env)
    assert info.value.code == 2 and said in capsys.readouterr().err


def test_the_gateway_and_the_lb_take_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from ase_serving.gateway.__main__ import parse_args as gateway_args
    from ase_serving.lb.__main__ import parse_args as lb_args

    monkeypatch.setenv("ASE_GATEWAY_MAX_BODY", "1234")
    monkeypatch.setenv("ASE_GATEWAY_PUBLIC_HOST", "api.example.com,10.0.0.5:2392")
    args = gateway_args([])
    assert args.max_body == 1234 and args.public_hosts == ["api.example.com", "10.0.0.5:2392"]
    assert env_name("ASE_LB", "--port") == "ASE_LB_PORT"
    monkeypatch.setenv("ASE_LB_PORT", "2399")
    assert lb_args([]).port == 2399


def _sample(f: FlagField) -> object:
    """A value of ``f``'s kind that is not its default."""
    if f.kind is bool:
        return True
    if f.kind is list:
        return ["10.0.0.1", "api.example.com:8443"]
    if f.spec.choices:
        return next(c for c in f.spec.choices if c != f.default)
    return {int: 7, float: 2.5, str: "a value"}[f.kind]


@pytest.mark.parametrize(("settings", "prefix"), [(GatewaySettings, "ASE_GATEWAY"), (LbSettings, "ASE_LB")])
def test_the_command_line_asectl_passes_on_is_read_back_as_given(
    settings: type, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``asectl gateway serve`` passes the flags it was given to ``python -m ase_serving.gateway``
    (envflags.argv): every flag, of every kind, reads back as the value given."""
    for name in list(os.environ):
        if name.startswith(prefix + "_"):
            monkeypatch.delenv(name)
    fields = flags_of(settings)
    given = {f.name: _sample(f) for f in fields}
    args = parser(settings, "x", "x", prefix).parse_args(argv(fields, given))
    assert values(settings, args) == given
    # A flag not given is not passed on: its variable (or default) decides in the server.
    assert argv(fields, {}) == []
    assert argv(fields, {"port": 0}) == ["--port=0"]


@dataclass
class _Run:
    """A command with what ``asectl loader run`` takes: a positional path, a lowest value, an
    optional path, a flag with a variable of its own."""

    folder: Path = flag(Path(), "the project", argument=True)
    ttl: float = flag(10.0, "seconds", min=2.0)
    cert: Path | None = flag(None, "a PEM file")
    advertise: str | None = flag(None, "HOST to register", env="X_OWN_ADVERTISE")


def test_a_positional_path_a_lowest_value_and_a_flags_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = flags_of(_Run)
    assert [(f.name, f.option, f.kind, f.optional) for f in fields] == [
        ("folder", "folder", Path, False),
        ("ttl", "--ttl", float, False),
        ("cert", "--cert", Path, True),
        ("advertise", "--advertise", str, True),
    ]
    given = {"folder": Path("-odd/dir"), "ttl": 2.0, "cert": Path("c.pem"), "advertise": "h"}
    assert argv(fields, given) == ["--ttl=2.0", "--cert=c.pem", "--advertise=h", "--", "-odd/dir"]
    assert values(_Run, parser(_Run, "x", "x", "X").parse_args(argv(fields, given))) == given
    assert values(_Run, parser(_Run, "x", "x", "X").parse_args([])) == {
        "folder": Path(),
        "ttl": 10.0,
        "cert": None,
        "advertise": None,
    }
    monkeypatch.setenv("X_OWN_ADVERTISE", "10.1.2.3")
    monkeypatch.setenv("X_ADVERTISE", "not this")
    ap = parser(_Run, "x", "x", "X")
    assert ap.parse_args([]).advertise == "10.1.2.3"
    assert "[env X_OWN_ADVERTISE]" in ap.format_help()


def test_a_value_below_the_lowest_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parser(_Run, "x", "x", "X").parse_args(["--ttl", "1.5"])
    assert info.value.code == 2
    assert "argument --ttl: 1.5 is below 2, the least --ttl takes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser(_Run, "x", "x", "X").parse_args(["--ttl", "soon"])
    assert "argument --ttl: invalid float value: 'soon'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        apply_env(parser(_Run, "x", "x", "X"), "X", {"X_TTL": "1"})
    assert "X_TTL='1' is not a valid value for --ttl" in capsys.readouterr().err
