"""`asectl setup` against a real embedded config centre: checked before saved, saved 0600."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.cli.cluster_support import on_terminal
from tests.store.embedded_server import EmbeddedServer
from tests.store.etcd_server import free_port
from tests.support import ASECTL, asectl, one_line_error

pytestmark = pytest.mark.timeout(60)


def test_setup_saves_checked_settings_readable_by_the_owner_only(
    tmp_path: Path, centre: EmbeddedServer
) -> None:
    proc = asectl(
        "setup",
        "--address",
        centre.url,
        "--account",
        "admin",
        "--password",
        centre.password,
        "--project",
        "shop",
        "--json",
        home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    saved = tmp_path / "cluster.json"
    assert json.loads(proc.stdout) == {
        "address": centre.url,
        "backend": "http",
        "account": "admin",
        "password_set": True,
        "region": "default",
        "project": "shop",
        "group": "default",
        "lb": None,
        "gateway": None,
        "saved": str(saved),
    }
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    entry = json.loads(saved.read_text())["regions"]["default"]
    assert (entry["address"], entry["account"], entry["password"]) == (centre.url, "admin", centre.password)

    # Run again without flags and without a terminal: the saved values are the defaults; nothing is asked.
    again = asectl("setup", "--group", "prod", home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "accepts account admin" in again.stdout
    entry = json.loads(saved.read_text())["regions"]["default"]
    assert (entry["project"], entry["group"], entry["password"]) == ("shop", "prod", centre.password)


def test_wrong_password_exits_1_and_saves_nothing(tmp_path: Path, centre: EmbeddedServer) -> None:
    proc = asectl("setup", "--address", centre.url, "--account", "admin", "--password", "nope", home=tmp_path)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert (
        "refused account 'admin'" in line and "wrong account or password" in line and "nothing saved" in line
    )
    assert not (tmp_path / "cluster.json").exists()


def test_no_password_is_refused_by_the_write_check(tmp_path: Path, centre: EmbeddedServer) -> None:
    # The embedded centre answers a ping without an account; only the write check catches this.
    proc = asectl("setup", "--address", centre.url, "--account", "", home=tmp_path)
    assert proc.returncode == 1
    assert "needs an account" in one_line_error(proc)
    assert not (tmp_path / "cluster.json").exists()


def test_store_down_and_bad_addresses(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = asectl("setup", "--address", url, "--password", "x", home=tmp_path)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert line.startswith(f"error: cannot reach the config centre at {url}: ")
    assert line.endswith("start it with `asectl init` (nothing saved)")

    proc = asectl("setup", "--address", "ftp://127.0.0.1:1", home=tmp_path)
    assert proc.returncode == 2
    assert "must start with one of" in one_line_error(proc)
    assert not (tmp_path / "cluster.json").exists()


def test_setup_prompts_on_a_terminal(tmp_path: Path, centre: EmbeddedServer) -> None:
    """On a TTY every missing value is asked for; the password is not echoed."""
    env = {**os.environ, "ASE_HOME": str(tmp_path)}
    answers = [("address", centre.url), ("Account", ""), ("Password", centre.password), ("Project", "p1")]
    answers.append(("LB service", ""))
    returncode, text = on_terminal([*ASECTL, "setup", "--group", "g1"], env, answers)
    assert returncode == 0, text
    assert answers == [] and "[admin]" in text  # the account's default is shown
    assert centre.password not in text  # not echoed
    entry = json.loads((tmp_path / "cluster.json").read_text())["regions"]["default"]
    assert (entry["address"], entry["account"], entry["password"]) == (centre.url, "admin", centre.password)
    assert (entry["project"], entry["group"], entry["lb"]) == ("p1", "g1", None)
