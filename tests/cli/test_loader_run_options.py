"""``asectl loader run``'s argument and options are :class:`RunOptions`'s fields, defined there once
(issue 17): what the command line gives is what the loader it becomes serves with. The command runs
as a user runs it (a real process, which ``exec``s ``python -m ase_serving.cli.loader_serve``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ase_serving.cli.loader_serve import RunOptions, parse
from tests.conftest import StartLoader
from tests.support import WRAPPERS, asectl, cli_tools_imported_by, one_line_error, self_signed_cert

pytestmark = pytest.mark.timeout(90)


def test_every_option_given_arrives_in_the_loaders_run_options(loaders: StartLoader, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    # start_loader adds --port 0 and --metrics-port 0; --advertise comes from its variable.
    loader = loaders(
        WRAPPERS / "echo",
        "--service", "optsvc", "--version", "2.0.0", "--workers", "1", "--lic", "3",
        "--host", "127.0.0.1", "--data-port", "0", "--data-host", "127.0.0.1",
        "--data-tls-cert", str(cert), "--data-tls-key", str(key),
        "--standalone", "--ttl", "3.5", "--log-level", "debug",
        env={"ASE_LOADER_ADVERTISE": "10.1.2.3"}, via_asectl=True,
    )  # fmt: skip
    # asectl became (same pid) the loader's own entry point, given the options as RunOptions.
    argv = Path(f"/proc/{loader.pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
    assert argv[argv.index("-m") + 1] == "ase_serving.cli.loader_serve"
    got = parse(argv[argv.index("-m") + 2 :])
    assert got == RunOptions(
        folder=WRAPPERS / "echo",
        service="optsvc",
        version="2.0.0",
        workers=1,
        lic=3,
        port=0,
        host="127.0.0.1",
        data_port=0,
        data_tls_cert=cert,
        data_tls_key=key,
        data_host="127.0.0.1",
        metrics_port=0,
        standalone=True,
        ttl=3.5,
        advertise="10.1.2.3",
        log_level="debug",
    )
    # Every field but --push-schema (below: it needs a cluster) was given other than its default.
    default = RunOptions()
    same = {
        f.name for f in dataclasses.fields(RunOptions) if getattr(got, f.name) == getattr(default, f.name)
    }
    assert same == {"push_schema"}
    # ... and served with.
    assert loader.line.startswith("loader optsvc 2.0.0 serving on 127.0.0.1:"), loader.line
    assert "(1 worker x 3 licences)" in loader.line, loader.line


def test_push_schema_arrives_in_the_loader() -> None:
    proc = asectl("loader", "run", WRAPPERS / "echo", "--standalone", "--push-schema", "--metrics-port", "-1")
    assert proc.returncode == 2
    assert one_line_error(proc) == (
        "error: --push-schema writes the schema to the cluster's config centre: drop --standalone"
    )


def test_the_loader_it_becomes_imports_no_command_line_tool() -> None:
    """RunOptions lives with the loader, which carries no Typer, Click, Rich or pydantic."""
    assert cli_tools_imported_by("ase_serving.cli.loader_serve") == []


@pytest.mark.parametrize(("flag", "value", "lowest"), [("--port", "99999", 0), ("--metrics-port", "-2", -1)])
def test_a_port_out_of_range_is_one_line(flag: str, value: str, lowest: int) -> None:
    """Not a port silently taken modulo 65536: one line naming the flag, exit 1."""
    proc = asectl("loader", "run", WRAPPERS / "echo", "--standalone", flag, value)
    assert proc.returncode == 1
    assert one_line_error(proc) == (
        f"error: {flag} {value} is not a port: give {lowest}..65535 (0 picks a free one)"
    )
