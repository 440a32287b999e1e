"""`asectl config` against a real embedded config centre: the round trip, checks, edit, failures."""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cluster_support import project_home, set_up
from tests.store.embedded_server import EmbeddedServer
from tests.store.etcd_server import free_port
from tests.support import ASECTL, asectl, one_line_error

pytestmark = pytest.mark.timeout(90)

SCHEMA = {
    "meta": {"serviceId": "echo", "version": "1.0", "route": "/v1/private/echo"},
    "schemainput": {"type": "object", "properties": {"payload": {"type": "object"}}},
    "schemaoutput": {"type": "object"},
}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# An $EDITOR that replaces the file with $EDIT_WITH's content (and leaves it alone without it).
EDITOR = """\
import os, shutil, sys
if os.environ.get("EDIT_WITH"):
    shutil.copyfile(os.environ["EDIT_WITH"], sys.argv[1])
"""


@pytest.fixture
def home(tmp_path: Path, centre: EmbeddedServer) -> Path:
    """A home set up for the centre, in a project of this test's own (so tests never share items)."""
    return project_home(tmp_path, centre.url, centre.password)


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=1) if not isinstance(doc, str) else doc)
    return path


def ok(home: Path, *args: str | Path, **kw: Any) -> str:
    proc = asectl(*args, **kw, home=home)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def untimed(doc: dict[str, Any]) -> dict[str, Any]:
    assert TIME.match(doc.pop("updated")), doc
    return doc


def test_upload_list_show_history_rollback_delete(tmp_path: Path, home: Path) -> None:
    project = json.loads((home / "cluster.json").read_text())["regions"]["default"]["project"]
    schema = write(tmp_path / "echo.json", SCHEMA)
    assert ok(home, "config", "upload", schema) == "uploaded echo/1.0/echo.json: revision 1\n"
    v2 = {**SCHEMA, "meta": {**SCHEMA["meta"], "route": ["/v1/echo", "/v2/echo"]}}
    write(schema, v2)
    doc = json.loads(ok(home, "config", "upload", schema, "--json"))
    assert untimed(doc) == {
        "project": project,
        "group": "default",
        "service": "echo",
        "version": "1.0",
        "name": "echo.json",
        "revision": 2,
        "size": schema.stat().st_size,
    }
    notes = write(tmp_path / "notes.txt", "hello\n")
    ok(home, "config", "upload", notes, "--service", "echo", "--version", "1.0", "--name", "notes")

    listed = json.loads(ok(home, "config", "list", "--json"))
    assert listed["project"] == project and listed["group"] == "default"
    assert [untimed(i) for i in listed["items"]] == [
        doc,
        {**doc, "name": "notes", "revision": 1, "size": 6},
    ]
    table = ok(home, "config", "list")
    assert re.search(r"echo\s+1\.0\s+notes\s+1\s+\S+\s+6", table), table

    # show: the content as stored on stdout (so it can be redirected), a JSON document with --json.
    assert ok(home, "config", "show", "echo.json") == schema.read_text()
    shown = json.loads(ok(home, "config", "show", "echo.json", "--revision", "1", "--json"))
    assert json.loads(shown.pop("content")) == SCHEMA
    assert untimed(shown) == {**doc, "revision": 1, "size": len(json.dumps(SCHEMA, indent=1))}
    hist = json.loads(ok(home, "config", "show", "echo.json", "--history", "--json"))
    assert [(h["revision"], h["size"]) for h in hist["history"]] == [(1, shown["size"]), (2, doc["size"])]

    # rollback writes revision 1's content as revision 3.
    out = ok(home, "config", "rollback", "echo.json", "--revision", "1")
    assert out == "rolled back echo/1.0/echo.json to revision 1's content: now revision 3\n"
    latest = json.loads(ok(home, "config", "show", "echo.json", "--json"))
    assert latest["revision"] == 3 and json.loads(latest["content"]) == SCHEMA
    proc = asectl("config", "rollback", "echo.json", "--revision", "9", home=home)
    assert proc.returncode == 1
    assert one_line_error(proc) == "error: echo/1.0/echo.json has no revision 9 (it has 1, 2, 3)"

    # delete: without a terminal it needs --yes; the history stays, so a rollback restores it.
    proc = asectl("config", "delete", "notes", home=home)
    assert proc.returncode == 2 and "add --yes" in one_line_error(proc)
    assert ok(home, "config", "delete", "notes", "--yes").startswith("deleted echo/1.0/notes")
    assert [i["name"] for i in json.loads(ok(home, "config", "list", "--json"))["items"]] == ["echo.json"]
    proc = asectl("config", "show", "notes", home=home)
    assert proc.returncode == 1 and "no config item named 'notes'" in one_line_error(proc)
    ok(home, "config", "rollback", "echo/1.0/notes", "--revision", "1")
    assert ok(home, "config", "show", "notes") == "hello\n"


def test_invalid_schema_is_refused_with_every_problem(tmp_path: Path, home: Path) -> None:
    bad = write(
        tmp_path / "bad.json",
        {"meta": {"serviceId": "echo"}, "schemainput": {"type": "object", "required": "payload"}},
    )
    proc = asectl("config", "upload", bad, home=home)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {bad} is refused: 3 problem(s) in the service schema",
        "  $.meta.version: required: a non-empty string",
        '  $.schemainput.required: "payload" is not of type "array"',
        "  $.schemaoutput: required: a JSON Schema (draft 7)",
    ]
    # The key it would be stored under must match the schema's meta.
    good = write(tmp_path / "good.json", SCHEMA)
    proc = asectl("config", "upload", good, "--version", "2.0", home=home)
    assert proc.returncode == 1
    assert "$.meta.version: is '1.0' but the item is stored under --version '2.0'" in proc.stderr
    # A .json file that is not JSON is refused too; any other file needs --service/--version.
    proc = asectl(
        "config", "upload", write(tmp_path / "x.json", "{"), "--service", "s", "--version", "1", home=home
    )
    assert proc.returncode == 1 and "$: not valid JSON" in proc.stderr
    proc = asectl("config", "upload", write(tmp_path / "model.conf", "x"), home=home)
    assert proc.returncode == 2
    assert (
        one_line_error(proc)
        == f"error: --service is required: {tmp_path / 'model.conf'} is not a service schema that names it"
    )
    assert json.loads(ok(home, "config", "list", "--json"))["items"] == []


def test_edit_valid_invalid_unchanged(tmp_path: Path, home: Path) -> None:
    ok(home, "config", "upload", write(tmp_path / "echo.json", SCHEMA))
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    env = {"EDITOR": f"{sys.executable} {editor}", "VISUAL": "", "TMPDIR": str(tmp_path)}

    assert ok(home, "config", "edit", "echo.json", env=env) == "no change to echo/1.0/echo.json\n"

    edited = {**SCHEMA, "schemaoutput": {"type": "object", "required": ["text"]}}
    new = write(tmp_path / "new.json", edited)
    out = ok(home, "config", "edit", "echo.json", env={**env, "EDIT_WITH": str(new)})
    assert out == "edited echo/1.0/echo.json: revision 2\n"
    assert json.loads(ok(home, "config", "show", "echo.json")) == edited

    bad = write(tmp_path / "bad.json", {**SCHEMA, "schemainput": {"type": "objec"}})
    proc = asectl("config", "edit", "echo.json", env={**env, "EDIT_WITH": str(bad)}, home=home)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    first, problem = proc.stderr.splitlines()
    kept = Path(first.rsplit("your text is kept in ", 1)[1])
    assert first.startswith("error: the edit is refused: 1 problem(s) in the service schema; nothing changed")
    assert problem.startswith('  $.schemainput.type: "objec" is not a JSON Schema type')
    assert kept.read_text() == bad.read_text() and kept.parent == tmp_path
    latest = json.loads(ok(home, "config", "show", "echo.json", "--json"))
    assert latest["revision"] == 2 and json.loads(latest["content"]) == edited
    # Successful and unchanged edits leave no temporary file behind.
    assert sorted(p.name for p in tmp_path.glob("ase-edit-*")) == [kept.name]


def test_ambiguous_names_list_the_candidates(tmp_path: Path, home: Path) -> None:
    f = write(tmp_path / "model.conf", "x")
    ok(home, "config", "upload", f, "--service", "a", "--version", "1")
    ok(home, "config", "upload", f, "--service", "b", "--version", "1")
    proc = asectl("config", "show", "model.conf", home=home)
    assert proc.returncode == 1
    assert (
        one_line_error(proc)
        == "error: 'model.conf' names 2 items: give one of a/1/model.conf, b/1/model.conf"
    )
    assert ok(home, "config", "show", "b/1/model.conf") == "x"


def test_store_down_and_not_set_up(tmp_path: Path) -> None:
    down = tmp_path / "down"
    url = f"http://127.0.0.1:{free_port()}"
    set_up(down, url, "admin", "pw")
    for args in (
        ("list",),
        ("show", "x"),
        ("upload", write(tmp_path / "a.json", SCHEMA)),
        ("delete", "x", "--yes"),
    ):
        proc = asectl("config", *args, home=down)
        assert proc.returncode == 1, args
        line = one_line_error(proc)
        assert line.startswith(f"error: cannot reach the config centre at {url}: ") and line.endswith(
            "start it with `asectl init`"
        ), line

    proc = asectl("config", "list", home=tmp_path / "empty")
    assert proc.returncode == 1
    assert one_line_error(proc) == "error: no cluster set up: run `asectl init` or `asectl setup`"


def test_config_serve_runs_the_embedded_centre_in_the_foreground(tmp_path: Path) -> None:
    env = {**os.environ, "ASE_HOME": str(tmp_path)}
    cmd = [*ASECTL, "config", "serve", "--port", "0", "--data", str(tmp_path / "data")]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(30), "no ready line within 30 s"
        line = proc.stdout.readline()
        assert line.startswith("config centre serving on http://127.0.0.1:"), line
        assert line.rstrip().endswith(f"(data {tmp_path / 'data'})")
        assert (tmp_path / "data" / "admin.password").is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_config_serve_on_a_taken_port_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = asectl("config", "serve", "--port", str(port), "--data", str(tmp_path / "data"), home=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    line = one_line_error(proc)
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: ") and "--port" in line, line


def _bounded(low: int, high: int, route: str = "/v1/private/echo", service: str = "echo") -> dict[str, Any]:
    """A service schema whose parameter speed has the bounds given."""
    speed = {"type": "integer", "minimum": low, "maximum": high}
    params = {"type": "object", "properties": {service: {"type": "object", "properties": {"speed": speed}}}}
    return {
        "meta": {"serviceId": service, "version": "1.0", "route": route},
        "schemainput": {"type": "object", "properties": {"parameter": params}},
        "schemaoutput": {"type": "object"},
    }


SPEED = "$.schemainput.properties.parameter.properties.echo.properties.speed"


def test_upload_and_edit_refuse_what_api_create_refuses_in_its_words(tmp_path: Path, home: Path) -> None:
    """min 11 > max 10 passes the draft-7 meta-schema, yet no request can satisfy it."""
    bad = write(tmp_path / "echo.json", _bounded(11, 10))
    proc = asectl("config", "upload", bad, home=home)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: {bad} is refused: 1 problem(s) in the service schema",
        f"  {SPEED}: minimum 11 > maximum 10: no value can satisfy both",
    ]
    # The same definition through `asectl api create`: the same words.
    yml = tmp_path / "ai_api.yml"
    yml.write_text(
        "apiVersion: ase-serving/v1\nkind: ApiSchema\nmetadata: {serviceName: echo}\nspec:\n"
        "  request:\n    parameters:\n      properties:\n"
        "        speed: {type: integer, minimum: 11, maximum: 10}\n"
    )
    created = asectl("api", "create", "-f", yml, "-o", tmp_path / "out", home=home)
    assert created.returncode == 1
    assert created.stderr.splitlines()[1].endswith(
        "speed: minimum 11 > maximum 10: no value can satisfy both"
    )
    assert json.loads(ok(home, "config", "list", "--json"))["items"] == []

    ok(home, "config", "upload", write(bad, _bounded(1, 10)))
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    impossible = write(
        tmp_path / "impossible.json",
        _bounded(5, 10) | {"schemaoutput": {"type": "string", "minLength": 5, "maxLength": 2}},
    )
    env = {
        "EDITOR": f"{sys.executable} {editor}",
        "VISUAL": "",
        "TMPDIR": str(tmp_path),
        "EDIT_WITH": str(impossible),
    }
    proc = asectl("config", "edit", "echo.json", env=env, home=home)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[1:] == [
        "  $.schemaoutput: minLength 5 > maxLength 2: no value can satisfy both"
    ]
    assert json.loads(ok(home, "config", "show", "echo.json")) == _bounded(1, 10)


def test_a_second_schema_for_a_route_is_refused_unless_forced(tmp_path: Path, home: Path) -> None:
    ok(home, "config", "upload", write(tmp_path / "echo.json", SCHEMA))
    project = json.loads((home / "cluster.json").read_text())["regions"]["default"]["project"]
    other = write(tmp_path / "echo2.json", _bounded(1, 10, service="echo2"))
    proc = asectl("config", "upload", other, home=home)
    assert proc.returncode == 1
    assert one_line_error(proc) == (
        f"error: {other}: route /v1/private/echo is already asked for by echo/1.0/echo.json in project "
        f"{project}, group default; a gateway serves one schema per route (the highest version) and "
        "leaves the other unserved: update that item (`asectl config edit echo.json`), delete it "
        "(`asectl config delete echo/1.0/echo.json`), or add --force to store both"
    )
    assert [i["name"] for i in json.loads(ok(home, "config", "list", "--json"))["items"]] == ["echo.json"]
    # A new revision of the same item is no conflict.
    ok(
        home,
        "config",
        "upload",
        write(tmp_path / "echo.json", {**SCHEMA, "schemaoutput": {"type": "object"}}),
    )
    # --force stores it, and says what the gateway will do.
    forced = asectl("config", "upload", other, "--force", home=home)
    assert forced.returncode == 0, forced.stderr
    assert forced.stderr == (
        f"warning: {other}: route /v1/private/echo is also asked for by echo/1.0/echo.json: the gateway "
        "serves the highest version there and lists the other as not served\n"
    )
    # An edit that moves a schema onto a taken route is refused the same way.
    third = write(tmp_path / "echo3.json", _bounded(1, 10, route="/v1/private/echo3", service="echo3"))
    ok(home, "config", "upload", third)
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    moved = write(tmp_path / "moved.json", _bounded(1, 10, route="/v1/private/echo", service="echo3"))
    env = {
        "EDITOR": f"{sys.executable} {editor}",
        "VISUAL": "",
        "TMPDIR": str(tmp_path),
        "EDIT_WITH": str(moved),
    }
    proc = asectl("config", "edit", "echo3.json", env=env, home=home)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert (
        line.startswith("error: the edit (kept in ")
        and "route /v1/private/echo is already asked for by echo" in line
    )


def test_show_finds_the_json_item_or_suggests_the_closest(tmp_path: Path, home: Path) -> None:
    ok(home, "config", "upload", write(tmp_path / "mything.json", SCHEMA))
    assert json.loads(ok(home, "config", "show", "mything")) == SCHEMA
    proc = asectl("config", "show", "mythin.json", home=home)
    assert proc.returncode == 1
    project = json.loads((home / "cluster.json").read_text())["regions"]["default"]["project"]
    assert one_line_error(proc) == (
        f"error: no config item named 'mythin.json' in project {project}, group default; did you mean "
        "'mything.json'? (see `asectl config list`; a deleted item is named service/version/name)"
    )
    # A service's id finds its items' names too.
    proc = asectl("config", "show", "echo", home=home)
    assert proc.returncode == 1 and "did you mean 'mything.json'?" in proc.stderr
