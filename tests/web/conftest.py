"""Fixtures of the API design page's tests: ``asectl api web`` as a user runs it, a local
cluster made by ``asectl init``, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.store.etcd_server import free_port
from tests.support import asectl
from tests.web.support import PageProcess, StartPage, start_page


@pytest.fixture
def pages() -> Iterator[StartPage]:
    """``pages(folder, home, *flags)`` -> a running ``asectl api web``, stopped with Ctrl-C after."""
    started: list[PageProcess] = []

    def start(folder: Path, home: Path, *args: str) -> PageProcess:
        page = start_page(folder, home, *args)
        started.append(page)
        return page

    yield start
    for page in started:
        page.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser for the module (each test opens its own page)."""
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/system-deps")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def local_cluster(tmp_path: Path) -> Iterator[Path]:
    """A fresh ``$ASE_HOME`` with a cluster `asectl init` started on free ports (config centre
    and gateway, the first consumer's credentials); `asectl down` after, and whatever is left
    of it killed."""
    home = tmp_path / "cluster-home"
    proc = asectl(
        "init", "--config-port", str(free_port()), "--gateway-port", str(free_port()), home=home, timeout=90
    )
    try:
        assert proc.returncode == 0, proc.stderr
        yield home
    finally:
        asectl("down", home=home, timeout=60)
        for pid_file in (home / "run").glob("*.pid"):
            with contextlib.suppress(ValueError, OSError, ProcessLookupError, KeyError):
                pid = int(json.loads(pid_file.read_text())["pid"])
                if pid != os.getpid():
                    os.killpg(pid, signal.SIGKILL)
