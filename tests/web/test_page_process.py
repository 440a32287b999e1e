"""`asectl api web` as a user runs it: one line with the URL and its token, the page over real
HTTP, Ctrl-C ends it with status 0, and the clear one-line errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.schema.support import SEED_YAML
from tests.store.etcd_server import free_port
from tests.support import asectl, one_line_error
from tests.web.support import StartPage

pytestmark = pytest.mark.timeout(60)


def test_one_line_then_the_page_then_ctrl_c_stops_it(tmp_path: Path, pages: StartPage) -> None:
    folder = tmp_path / "speaker"
    folder.mkdir()
    page = pages(folder, tmp_path / "home")
    assert page.line.startswith("api design page serving on http://127.0.0.1:")
    assert page.line.endswith(f"(project {folder}; Ctrl-C stops it)")
    assert len(page.token) >= 32
    with httpx.Client(base_url=page.base, timeout=10) as http:
        assert "<title>API design" in http.get("/").text
        refused = http.post("/api/save", json={"design": {}})
        assert refused.status_code == 403 and not (folder / "ai_api.yml").exists()
        start = http.get("/api/start", headers={"X-ASE-Token": page.token}).json()
        saved = http.post("/api/save", json={"design": start["design"]}, headers={"X-ASE-Token": page.token})
        assert saved.status_code == 200, saved.text
    assert (folder / "ai_api.yml").is_file() and (folder / "schemas" / "speaker.json").is_file()
    assert page.interrupt() == 0
    assert "Traceback" not in page.stderr()
    assert page.proc.stdout is not None and page.proc.stdout.read() == ""  # nothing after the one line


def test_a_port_in_use_and_a_missing_folder_are_one_line_errors(tmp_path: Path, pages: StartPage) -> None:
    first = pages(tmp_path, tmp_path / "home")
    port = first.base.rsplit(":", 1)[1]
    taken = asectl("api", "web", tmp_path, "--no-open", "--port", port, home=tmp_path / "home", timeout=30)
    assert taken.returncode == 1
    assert one_line_error(taken) == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port"
    )
    missing = asectl("api", "web", tmp_path / "nope", "--no-open", home=tmp_path / "home")
    assert missing.returncode == 2
    assert one_line_error(missing) == (
        f"error: {tmp_path / 'nope'}: no such folder (give the project folder, or use -f FILE)"
    )


def test_f_opens_and_saves_another_file_on_the_port_asked_for(tmp_path: Path, pages: StartPage) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    other = tmp_path / "designs" / "seed.yml"
    other.parent.mkdir()
    other.write_text(SEED_YAML.read_text())
    port = free_port()
    page = pages(folder, tmp_path / "home", "-f", str(other), "--port", str(port))
    assert page.base == f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=page.base, headers={"X-ASE-Token": page.token}, timeout=10) as http:
        start = http.get("/api/start").json()
        assert start["file"] == str(other) and start["source"] == "file"
        assert len(start["opened"]["warnings"]) == 7
        saved = http.post("/api/save", json={"design": start["design"]})
        assert saved.status_code == 200, saved.text
    assert (tmp_path / "designs" / "seed.yml.bak").read_text() == SEED_YAML.read_text()
    assert "paramters" not in other.read_text()  # written in the right words
    assert (folder / "schemas" / "my-api-schema.json").is_file() and not (folder / "ai_api.yml").exists()
    assert page.interrupt() == 0


def test_f_naming_a_folder_is_a_one_line_error(tmp_path: Path) -> None:
    proc = asectl("api", "web", tmp_path, "-f", tmp_path, "--no-open", home=tmp_path / "home")
    assert proc.returncode == 2
    assert one_line_error(proc) == f"error: {tmp_path}: not a file (give the ApiSchema YAML to open)"
