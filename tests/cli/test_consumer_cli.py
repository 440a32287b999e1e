"""``asectl consumer`` against a real embedded config centre: add, list, set, rotate, remove, and
what the store keeps (a key digest, never the key; reads of consumers need an account)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.cluster_support import project_home
from tests.store.embedded_server import EmbeddedServer
from tests.support import asectl, one_line_error


@pytest.fixture
def home(tmp_path: Path, centre: EmbeddedServer) -> Path:
    """A home set up for the centre, in a project of this test's own."""
    return project_home(tmp_path, centre.url, centre.password)


def ok(home: Path, *args: str) -> str:
    proc = asectl(*args, home=home)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def listed(home: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = json.loads(ok(home, "consumer", "list", "--json"))
    return docs


def stored(centre: EmbeddedServer, home: Path) -> list[bytes]:
    """The raw consumer records, read with the admin account."""
    project = json.loads((home / "cluster.json").read_text())["regions"]["default"]["project"]
    resp = httpx.get(
        f"{centre.url}/v1/range",
        params={"prefix": f"/ase/consumers/{project}/"},
        auth=("admin", centre.password),
    )
    assert resp.status_code == 200, resp.text
    return [base64.b64decode(e["value"]) for e in resp.json()["entries"]]


def test_add_list_set_rotate_remove(home: Path, centre: EmbeddedServer) -> None:
    assert ok(home, "consumer", "list") == "no consumers: add one with `asectl consumer add`\n"
    creds = json.loads(
        ok(
            home,
            "consumer",
            "add",
            "--app-id",
            "demo-1",
            "--name",
            "demo",
            "--service",
            "echo",
            "--rps",
            "5",
            "--json",
        )
    )
    assert set(creds) == {"app_id", "api_key", "api_secret"} and creds["app_id"] == "demo-1"
    assert re.fullmatch(r"[0-9a-f]{32}", creds["api_key"]) and len(creds["api_secret"]) >= 40
    (doc,) = listed(home)
    assert {k: doc[k] for k in ("app_id", "name", "key_id", "services", "rps", "sessions")} == {
        "app_id": "demo-1",
        "name": "demo",
        "key_id": creds["api_key"][:8],
        "services": ["echo"],
        "rps": 5,
        "sessions": 0,
    }
    table = ok(home, "consumer", "list")
    assert "demo-1" in table and "echo" in table and creds["api_key"] not in table

    # The store holds the key's digest, not the key.
    (raw,) = stored(centre, home)
    assert creds["api_key"].encode() not in raw
    assert hashlib.sha256(creds["api_key"].encode()).hexdigest().encode() in raw

    ok(home, "consumer", "set", "demo-1", "--all-services", "--sessions", "3")
    (doc,) = listed(home)
    assert doc["services"] == [] and doc["sessions"] == 3 and doc["rps"] == 5

    new = json.loads(ok(home, "consumer", "rotate", "demo-1", "--json"))
    assert new["app_id"] == "demo-1" and new["api_key"] != creds["api_key"]
    assert new["api_secret"] != creds["api_secret"]
    (doc,) = listed(home)
    assert doc["key_id"] == new["api_key"][:8] and doc["sessions"] == 3

    text = ok(home, "consumer", "add")
    assert "api_key" in text and "api_secret" in text and "shown once" in text
    assert len(listed(home)) == 2
    assert json.loads(ok(home, "consumer", "remove", "demo-1", "--json")) == {
        "app_id": "demo-1",
        "removed": True,
    }
    assert [d["app_id"] for d in listed(home)] != ["demo-1"] and len(listed(home)) == 1


def test_clear_errors(home: Path) -> None:
    ok(home, "consumer", "add", "--app-id", "taken")
    proc = asectl("consumer", "add", "--app-id", "taken", home=home)
    assert proc.returncode == 1 and "exists" in one_line_error(proc) and "rotate taken" in proc.stderr
    proc = asectl("consumer", "rotate", "nobody", home=home)
    assert proc.returncode == 1 and "no consumer with app id 'nobody'" in one_line_error(proc)
    proc = asectl("consumer", "add", "--app-id", "no spaces", home=home)
    assert proc.returncode == 1 and "is not valid" in one_line_error(proc)
    assert ok(home, "consumer", "remove", "taken") == "consumer taken removed\n"
    proc = asectl("consumer", "remove", "taken", home=home)
    assert proc.returncode == 1 and "no consumer with app id 'taken'" in one_line_error(proc)
    proc = asectl("consumer", "set", "taken", home=home)
    assert proc.returncode == 2 and "nothing to change" in one_line_error(proc)


def test_reads_of_consumers_need_an_account(centre: EmbeddedServer, home: Path) -> None:
    ok(home, "consumer", "add")
    resp = httpx.get(f"{centre.url}/v1/range", params={"prefix": "/ase/consumers/"})
    assert resp.status_code == 401
    assert stored(centre, home)  # ... and the admin can read them
