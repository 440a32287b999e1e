"""``asectl account add`` against a real embedded config centre: each role as it is then served."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from tests.cli.cluster_support import project_home, set_up
from tests.store.conftest import unique
from tests.store.embedded_server import EmbeddedServer
from tests.support import asectl, one_line_error


@pytest.fixture
def home(tmp_path: Path, centre: EmbeddedServer) -> Path:
    return project_home(tmp_path, centre.url, centre.password)


def _write(centre: EmbeddedServer, auth: tuple[str, str]) -> httpx.Response:
    put = {"puts": [{"key": f"/ase/config/{unique('p')}/g/s/1/x", "value": base64.b64encode(b"1").decode()}]}
    return httpx.post(f"{centre.url}/v1/txn", json=put, auth=auth)


def test_add_an_account_with_each_role(home: Path, centre: EmbeddedServer, tmp_path: Path) -> None:
    reader = unique("reader")
    proc = asectl("account", "add", reader, "--role", "reader", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["account"], doc["role"]) == (reader, "reader") and len(doc["password"]) >= 20
    auth = (reader, doc["password"])
    assert (
        httpx.get(f"{centre.url}/v1/range", params={"prefix": "/ase/consumers/"}, auth=auth).status_code
        == 200
    )
    refused = _write(centre, auth)
    assert refused.status_code == 403 and f"account {reader!r} has the role reader" in refused.json()["error"]

    writer = unique("writer")
    proc = asectl("account", "add", writer, "--role", "writer", "--password", "pw-writer", home=home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"account {writer} added with the role writer\n"  # a given password is not shown
    assert _write(centre, (writer, "pw-writer")).status_code == 200

    # Taken names and unknown roles are refused.
    again = asectl("account", "add", writer, "--role", "reader", home=home)
    assert again.returncode == 1 and f"account {writer!r} already exists" in one_line_error(again)
    bad = asectl("account", "add", unique("x"), "--role", "root", home=home)
    assert bad.returncode == 2 and "'root' is not one of" in bad.stderr

    # Straight into the data directory (the server is running): no login needed.
    gateway = unique("gateway")
    proc = asectl(
        "account", "add", gateway, "--role", "gateway", "--password", "pw-gw", "--data",
        centre.data_dir, home=tmp_path / "nohome",
)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    resp = httpx.get(f"{centre.url}/v1/get", params={"key": "/ase/secrets/wire"}, auth=(gateway, "pw-gw"))
    assert resp.status_code == 200
    assert _write(centre, (gateway, "pw-gw")).status_code == 403

    # Only an admin adds accounts.
    as_writer = tmp_path / "writer-home"
    set_up(as_writer, centre.url, writer, "pw-writer")
    proc = asectl("account", "add", unique("y"), "--role", "reader", home=as_writer)
    assert proc.returncode == 1
    assert "has the role writer" in one_line_error(proc) and "may not add accounts" in one_line_error(proc)
