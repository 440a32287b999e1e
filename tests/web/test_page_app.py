"""The design page's app in-process (httpx over ASGI): the token and origin guard, the check
endpoint (the words of `asectl api create`), save, and what push and try it say with no cluster."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ase_serving.cli.api import _caller
from ase_serving.cli.main import make_app
from ase_serving.designer.design import empty_design
from ase_serving.designer.server import STATIC, TOKEN_HEADER, Project, create_app
from tests.schema.support import SEED_YAML

TOKEN = "a-test-token"
BASE = "http://127.0.0.1:8765"
OK = {TOKEN_HEADER: TOKEN}
WRITES = ["/api/save", "/api/push", "/api/try"]
ENDPOINTS = [("GET", "/api/start"), ("GET", "/api/schemas")] + [
    ("POST", p) for p in ("/api/check", "/api/parse", "/api/open-schema", *WRITES)
]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder, and an $ASE_HOME with nothing set up."""
    monkeypatch.setenv("ASE_HOME", str(tmp_path / "home"))
    for name in ("ASE_GATEWAY_URL", "ASE_APP_ID", "ASE_CONFIG_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "tts"
    folder.mkdir()
    return folder


def call(
    folder: Path, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    app = create_app(Project(folder, folder / "ai_api.yml"), TOKEN, _caller)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            return await client.request(method, path, json=body, headers=headers or {})

    return asyncio.run(go())


def _design(**changes: Any) -> dict[str, Any]:
    design = empty_design("tts")
    design.update(changes)
    return design


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_api_request_needs_the_token(folder: Path, method: str, path: str) -> None:
    body = {"design": _design()} if method == "POST" else None
    for headers in ({}, {TOKEN_HEADER: "guessed"}):
        resp = call(folder, method, path, body, headers)
        assert resp.status_code == 403
        assert resp.json()["error"].startswith("no valid token: open the URL that `asectl api web` printed")
    assert list(folder.iterdir()) == []  # nothing was written


@pytest.mark.parametrize(
    ("headers", "refusal"),
    [
        ({"Origin": "http://evil.example"}, "origin 'http://evil.example' refused"),
        ({"Origin": "http://localhost:8765"}, "origin 'http://localhost:8765' refused"),
        ({"Host": "evil.example:8765"}, "host 'evil.example:8765' refused"),
        ({"Sec-Fetch-Site": "cross-site"}, "a request from another site is refused"),
    ],
)
def test_requests_from_another_origin_are_refused_even_with_the_token(
    folder: Path, headers: dict[str, str], refusal: str
) -> None:
    for path in WRITES:
        resp = call(folder, "POST", path, {"design": _design()}, {**OK, **headers})
        assert resp.status_code == 403 and resp.json()["error"].startswith(refusal)
    assert list(folder.iterdir()) == []
    # The page itself, from its own origin, passes.
    same = {**OK, "Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert call(folder, "POST", "/api/check", {"design": _design()}, same).status_code == 200


def test_the_page_and_its_assets_come_from_the_package_and_name_no_other_site(folder: Path) -> None:
    page = call(folder, "GET", "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for name in ("app.js", "tables.js", "style.css"):
        resp = call(folder, "GET", f"/static/{name}")
        assert resp.status_code == 200 and resp.content == (STATIC / name).read_bytes()
    for path in STATIC.iterdir():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", path.read_text()), path


def test_check_says_what_api_create_says_in_its_words(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    speed = {"name": "speed", "required": True, "schema": {"type": "integer", "minimum": 300, "maximum": 200}}
    checked = call(folder, "POST", "/api/check", {"design": _design(params=[speed])}, OK).json()
    assert checked["schema"] is None
    [problem] = checked["problems"]
    assert (problem["at"], problem["key"]) == (["params.0"], "minimum")
    # The same YAML through the command line: the same line, word for word.
    (folder / "ai_api.yml").write_text(checked["yaml"])
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(
        make_app(["api", "create"]), ["api", "create", "-f", "ai_api.yml", "--no-push"]
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1:] == [f"  {problem['text']}"]
    assert problem["text"] == (
        "ai_api.yml:12: spec.request.parameters.properties.speed: minimum 300 > maximum 200: "
        "no value can satisfy both"
    )


@pytest.mark.parametrize(
    ("schema", "key", "words"),
    [
        (
            {"type": "integer", "minimum": 1, "maximum": 9, "default": 0},
            "default",
            "0 is less than the minimum of 1",
        ),
        ({"type": "string", "pattern": "^a+$", "default": "b"}, "default", '"b" does not match "^a+$"'),
        ({"type": "string", "pattern": "(["}, "pattern", "is not a regular expression"),
    ],
)
def test_check_places_each_problem_on_its_field(
    folder: Path, schema: dict[str, Any], key: str, words: str
) -> None:
    param = {"name": "p", "required": False, "schema": schema}
    checked = call(folder, "POST", "/api/check", {"design": _design(params=[param])}, OK).json()
    [problem] = checked["problems"]
    assert (problem["at"], problem["key"]) == (["params.0"], key)
    assert words in problem["message"] and problem["text"].endswith(problem["message"])


def test_the_seed_opens_with_its_warnings(folder: Path) -> None:
    (folder / "ai_api.yml").write_text(SEED_YAML.read_text())
    start = call(folder, "GET", "/api/start", headers=OK).json()
    assert start["source"] == "file" and start["opened"]["problems"] == []
    assert len(start["opened"]["warnings"]) == 7
    assert [p["name"] for p in start["design"]["params"]] == ["vcn", "speed", "isauto", "someother"]


def test_a_new_design_is_named_after_ase_toml_else_the_folder(folder: Path) -> None:
    start = call(folder, "GET", "/api/start", headers=OK).json()
    assert start["source"] == "new" and start["design"]["metadata"]["serviceName"] == "tts"
    (folder / "ase.toml").write_text('[service]\nname = "speaker"\nversion = "2.1.0"\n')
    meta = call(folder, "GET", "/api/start", headers=OK).json()["design"]["metadata"]
    assert (meta["serviceName"], meta["version"]) == ("speaker", "2.1.0")


def test_save_writes_the_yaml_with_a_backup_and_the_schema_api_create_makes(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder / "ai_api.yml").write_text("# my first try\n")
    text = {
        "name": "text",
        "type": "text",
        "required": True,
        "encoding": ["utf8"],
        "compress": [],
        "format": [],
    }
    saved = call(folder, "POST", "/api/save", {"design": _design(inputs=[{**text, "attrs": {}}])}, OK)
    assert saved.status_code == 200, saved.text
    assert saved.json() == {
        "yaml": str(folder / "ai_api.yml"),
        "backup": str(folder / "ai_api.yml.bak"),
        "schema": str(folder / "schemas" / "tts.json"),
    }
    assert (folder / "ai_api.yml.bak").read_text() == "# my first try\n"
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(
        make_app(["api", "create"]), ["api", "create", "-f", "ai_api.yml", "-o", "again", "--no-push"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads((folder / "again" / "tts.json").read_text()) == json.loads(
        (folder / "schemas" / "tts.json").read_text()
    )


def test_save_with_problems_writes_nothing(folder: Path) -> None:
    bad = {"name": "n", "required": False, "schema": {"type": "integer", "minimum": 2, "maximum": 1}}
    resp = call(folder, "POST", "/api/save", {"design": _design(params=[bad])}, OK)
    assert resp.status_code == 422
    assert resp.json()["error"] == "1 problem(s) in the API definition; nothing was written"
    assert list(folder.iterdir()) == []


def test_push_and_try_without_a_cluster_say_how_to_start_one(folder: Path) -> None:
    push = call(folder, "POST", "/api/push", {"design": _design()}, OK)
    assert push.status_code == 502
    assert push.json() == {"error": "cannot push: no cluster set up: run `asectl init` or `asectl setup`"}
    listed = call(folder, "GET", "/api/schemas", headers=OK)
    assert listed.json() == {"error": "no cluster set up: run `asectl init` or `asectl setup`"}
    tried = call(folder, "POST", "/api/try", {"design": _design(), "body": {"header": {}}}, OK)
    assert tried.status_code == 502
    assert tried.json()["error"].startswith(
        "no gateway: pass --gateway http://HOST:PORT, set ASE_GATEWAY_URL"
    )


def test_bad_bodies_get_one_line(folder: Path) -> None:
    app_call = call(folder, "POST", "/api/check", None, {**OK, "Content-Type": "application/json"})
    assert app_call.status_code == 400 and app_call.json() == {"error": "the request body must be JSON"}
    listed = call(folder, "POST", "/api/check", [1, 2], OK)
    assert listed.status_code == 400 and listed.json() == {"error": "the request body must be a JSON object"}
    session_only = _design(service={"interface": ["session"]})
    tried = call(folder, "POST", "/api/try", {"design": session_only, "body": {}}, OK)
    assert tried.json()["error"].startswith("tts takes sessions only, and try it sends a once request")
