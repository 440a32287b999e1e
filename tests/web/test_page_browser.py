"""The API design page in a real browser (Debian's chromium driven by Playwright) against a real
`asectl api web`: design by clicking and typing, the seed's file, push and try it on a cluster
made by `asectl init`, the token and origin refusals, and keyboard-only use.

``ASE_SCREENSHOT=1`` also writes docs/img/api-web.png (the README's picture of the page)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from examples.support import example_dir
from tests.conftest import StartLoader
from tests.schema.support import SEED_YAML
from tests.support import asectl
from tests.web.support import PageProcess, StartPage

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


class Opened:
    """A browser tab on the page, with every request it made outside the page's own origin."""

    def __init__(self, browser: Any, page_process: PageProcess) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 1000})
        self.page: Page = self.context.new_page()
        self.base = page_process.base
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", self._request)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _request(self, request: Any) -> None:
        if not request.url.startswith(self.base + "/"):
            self.outside.append(request.url)

    def open(self, url: str) -> float:
        """Load ``url`` until the first check is shown; the seconds it took."""
        started = time.perf_counter()
        self.page.goto(url)
        self.page.wait_for_selector("body[data-state=ready]", timeout=15_000)
        return time.perf_counter() - started

    def row(self, at: str) -> Any:
        return self.page.locator(f'tr[data-at="{at}"]')

    def cell(self, at: str, cell: str) -> Any:
        return self.row(at).locator(f'td[data-cell="{cell}"]').locator("input, select").first

    def said(self, at: str) -> Any:
        return self.page.locator(f'[data-msg="{at}|row"]')

    def text(self, element_id: str) -> str:
        return str(self.page.locator(f"#{element_id}").text_content())

    def wait_preview(self, needle: str, pane: str = "preview-yaml") -> None:
        self.page.wait_for_function(
            "([id, needle]) => document.getElementById(id).textContent.includes(needle)", arg=[pane, needle]
        )

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], f"the page asked another origin: {self.outside}"
        self.context.close()


@pytest.fixture
def tab(chromium: Any) -> Iterator[Any]:
    opened: list[Opened] = []

    def make(page_process: PageProcess) -> Opened:
        o = Opened(chromium, page_process)
        opened.append(o)
        return o

    yield make
    for o in opened:
        o.close()


WATCH_CLICK = """() => {
    window.aseTimes = {};
    const add = document.getElementById("add-param");
    add.addEventListener("click", () => { window.aseTimes.click = performance.now(); }, {capture: true});
    new MutationObserver(() => {
        if (window.aseTimes.click && !window.aseTimes.shown) window.aseTimes.shown = performance.now();
    }).observe(document.getElementById("preview-yaml"), {childList: true, subtree: true});
}"""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def test_design_a_service_by_clicking_and_typing(tmp_path: Path, pages: StartPage, tab: Any) -> None:
    folder, home = tmp_path / "tts", tmp_path / "home"
    folder.mkdir()
    proc = pages(folder, home)
    t = tab(proc)
    page = t.page
    load = t.open(proc.url)
    in_page = page.evaluate("performance.getEntriesByName('ase-page-ready')[0].startTime") / 1000
    assert page.locator("#f-metadata-serviceName").input_value() == "tts"  # named after the folder

    # Timed in the page too: from the click event to the preview's change (no browser driving).
    page.evaluate(WATCH_CLICK)
    started = time.perf_counter()
    page.click("#add-param")
    t.wait_preview("param1:")
    click_to_preview = time.perf_counter() - started
    click_in_page = page.evaluate("window.aseTimes.shown - window.aseTimes.click") / 1000
    t.cell("params.0", "name").fill("speed")
    t.cell("params.0", "type").select_option("integer")
    t.row("params.0").locator("[data-key=minimum]").fill("300")
    started = time.perf_counter()
    t.row("params.0").locator("[data-key=maximum]").fill("200")
    # The error, next to the row and on the field, in the words of `asectl api create`.
    expect(t.said("params.0")).to_have_text("minimum 300 > maximum 200: no value can satisfy both")
    typed_to_error = time.perf_counter() - started
    minimum = t.row("params.0").locator("[data-key=minimum]")
    expect(minimum).to_have_attribute("aria-invalid", "true")
    described = str(minimum.get_attribute("aria-describedby"))
    assert "no value can satisfy both" in page.evaluate(
        "(id) => document.getElementById(id).textContent", described
    )
    listed = page.locator("#checks li.error").inner_text()
    check_dir = tmp_path / "same-words"
    check_dir.mkdir()
    (check_dir / "ai_api.yml").write_text(t.text("preview-yaml"))
    create = asectl("api", "create", "-f", "ai_api.yml", "--no-push", cwd=check_dir, home=home)
    assert create.returncode == 1 and f"  {listed}" in create.stderr.splitlines(), (listed, create.stderr)

    t.row("params.0").locator("[data-key=maximum]").fill("400")
    expect(t.said("params.0")).to_have_text("")
    expect(page.locator("#checks-count")).to_have_text("ok")
    page.click("#add-param")
    t.cell("params.1", "name").fill("voice")
    t.row("params.1").locator("[data-key=enum]").fill("xiaoyan, aisjiuxu")
    t.cell("params.1", "required").check()
    page.click("#add-input")
    t.cell("inputs.0", "name").fill("text")
    t.cell("inputs.0", "encoding").fill("utf8")
    t.cell("inputs.0", "required").check()
    page.click("#add-output")
    t.cell("outputs.0", "name").fill("audio")
    t.cell("outputs.0", "type").select_option("audio")
    t.cell("outputs.0", "encoding").fill("raw")
    t.cell("outputs.0", "sample_rate").fill("16000")
    t.wait_preview('"sample_rate"', "preview-schema")
    expect(page.locator("#checks-count")).to_have_text("ok")
    previewed = json.loads(t.text("preview-schema"))
    own = previewed["schemainput"]["properties"]["parameter"]["properties"]["tts"]
    assert own["properties"]["speed"]["maximum"] == 400 and own["required"] == ["voice"]

    # A reload keeps the draft (this browser's storage) until it is saved.
    t.open(proc.url)
    expect(page.locator("#status")).to_contain_text("Restored your unsaved draft")
    assert t.cell("params.1", "name").input_value() == "voice"
    t.wait_preview('"sample_rate"', "preview-schema")
    assert json.loads(t.text("preview-schema")) == previewed

    page.click("#save")
    expect(page.locator("#status")).to_contain_text(f"Saved {folder / 'ai_api.yml'}")
    out = tmp_path / "out"
    create = asectl("api", "create", "-f", folder / "ai_api.yml", "-o", out, "--no-push", home=home)
    assert create.returncode == 0, create.stderr
    assert json.loads((out / "tts.json").read_text()) == previewed
    assert json.loads((folder / "schemas" / "tts.json").read_text()) == previewed
    first = (folder / "ai_api.yml").read_text()
    # A default its own range refuses: said next to it, as `asectl api create` says it; then fixed.
    t.cell("params.0", "default").fill("50")
    expect(t.said("params.0")).to_have_text(
        "default 50 does not meet its own constraints: 50 is less than the minimum of 300"
    )
    expect(t.cell("params.0", "default")).to_have_attribute("aria-invalid", "true")
    t.cell("params.0", "default").fill("350")
    t.wait_preview("default: 350")
    page.click("#save")
    expect(page.locator("#status")).to_contain_text("ai_api.yml.bak")
    assert (folder / "ai_api.yml.bak").read_text() == first
    # Start from another YAML file (the seed's, picked in the file chooser).
    page.set_input_files("#start-file", SEED_YAML)
    expect(page.locator("#status")).to_have_text("Opened seed_ai_api.yml")
    assert t.cell("params.0", "name").input_value() == "vcn"
    expect(page.locator("#opened")).to_contain_text("seed_ai_api.yml:14: spec.request.parameters: 'param")
    print(
        f"\napi web timings (chromium): page load {_ms(load)} (in page {_ms(in_page)}); "
        f"click to preview {_ms(click_to_preview)} (in page {_ms(click_in_page)}); "
        f"typing to the error shown {_ms(typed_to_error)} (a 120 ms pause for typing included)"
    )


def test_the_seeds_file_opens_with_its_fields_and_warnings(
    tmp_path: Path, pages: StartPage, tab: Any
) -> None:
    folder, home = tmp_path / "seed", tmp_path / "home"
    folder.mkdir()
    shutil.copy(SEED_YAML, folder / "ai_api.yml")
    proc = pages(folder, home)
    t = tab(proc)
    t.open(proc.url)
    page = t.page
    names = page.locator('tbody#params td[data-cell="name"] input').evaluate_all(
        "els => els.map(e => e.value)"
    )
    assert names == ["vcn", "speed", "isauto", "someother", "value1", "value2"]
    assert t.row("params.1").locator("[data-key=minimum]").input_value() == "50"
    assert t.row("params.1").locator("[data-key=maximum]").input_value() == "200000"
    assert t.cell("params.0", "required").is_checked() and t.cell("params.3", "required").is_checked()
    data = page.locator('tbody#inputs td[data-cell="name"] input').evaluate_all(
        "els => els.map(e => e.value)"
    )
    assert data == ["audio1", "text1", "image1", "vedio1"]
    assert t.cell("inputs.3", "type").input_value() == "video"
    assert page.locator("#f-metadata-configFileName").input_value() == "xxxx.json"
    # Every warning `asectl api create` gives for the file, shown as it says it.
    create = asectl("api", "create", "-f", "ai_api.yml", "--no-push", cwd=folder, home=home)
    warnings = [
        line.removeprefix("warning: ") for line in create.stderr.splitlines() if line.startswith("warning: ")
    ]
    assert len(warnings) == 7
    opened = t.text("opened")
    for warning in warnings:
        assert warning in opened
    expect(t.said("inputs.3")).to_contain_text("'vedio' is a misspelling of 'video' (when opened)")
    if os.environ.get("ASE_SCREENSHOT"):
        t.row("params.1").locator("[data-key=maximum]").fill("20")
        expect(t.said("params.1")).to_contain_text("minimum 50 > maximum 20")
        page.set_viewport_size({"width": 1440, "height": 1400})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ROOT / "docs" / "img" / "api-web.png"))


@pytest.mark.timeout(240)
def test_push_then_try_it_through_the_gateway(
    tmp_path: Path, pages: StartPage, tab: Any, local_cluster: Path, loaders: StartLoader
) -> None:
    folder = tmp_path / "echo"
    shutil.copytree(example_dir("echo"), folder)
    proc = pages(folder, local_cluster)
    t = tab(proc)
    t.open(proc.url)
    page = t.page

    def try_it(expected: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            page.click("#try-send")
            result = page.locator("#try-result")
            expect(result).not_to_have_text("Sending…")
            if expected in result.inner_text():
                return
            assert time.monotonic() < deadline, f"{expected!r} never came: {result.inner_text()}"

    try_it("does not serve echo: push the schema first")
    page.click("#push")
    expect(page.locator("#status")).to_contain_text(
        "Pushed echo/1.0.0/echo.json to project default, group default: revision 1"
    )
    try_it("no loader serves echo yet: start one with `asectl loader run DIR`")
    loaders(folder, env={"ASE_HOME": str(local_cluster)})
    try_it("echo: example data")
    assert "HTTP 200 from" in page.locator("#try-result").inner_text()
    # Start from a schema of the config centre.
    page.click("#start-new")
    expect(page.locator("tbody#inputs")).to_contain_text("No request data yet")
    page.click("#start-list")
    expect(page.locator("#start-schema")).to_contain_text("echo/1.0.0/echo.json (revision 1)")
    page.click("#start-open")
    expect(page.locator("#status")).to_contain_text("Opened echo/1.0.0/echo.json from the config centre")
    assert t.cell("inputs.0", "name").input_value() == "text"
    assert t.cell("outputs.0", "name").input_value() == "echo"


def test_writes_need_the_token_and_other_origins_are_refused(
    tmp_path: Path, pages: StartPage, tab: Any
) -> None:
    folder = tmp_path / "tts"
    folder.mkdir()
    proc = pages(folder, tmp_path / "home")
    t = tab(proc)
    page = t.page
    page.goto(proc.base + "/")
    expect(page.locator("#status")).to_contain_text("This page needs its token")
    assert page.request.post(proc.base + "/api/save", data={"design": {}}).status == 403
    # Another origin (the same server named localhost), even with the token: the browser's
    # preflight is refused, and a plain form-like POST reaches nothing.
    port = proc.base.rsplit(":", 1)[1]
    page.goto(f"http://localhost:{port}/?token={proc.token}")
    page.wait_for_selector("body[data-state=ready]")
    outcome = page.evaluate(
        """async ([target, token]) => {
            const said = [];
            try {
                const headers = {"X-ASE-Token": token, "Content-Type": "application/json"};
                await fetch(target, {method: "POST", headers, body: JSON.stringify({design: {}})});
                said.push("preflighted request went through");
            } catch (err) { said.push("refused"); }
            const plain = await fetch(target, {method: "POST", mode: "no-cors", body: "{}"});
            said.push(plain.type);
            return said;
        }""",
        [f"http://127.0.0.1:{port}/api/save", proc.token],
    )
    assert outcome == ["refused", "opaque"]
    assert not (folder / "ai_api.yml").exists() and not (folder / "schemas").exists()
    t.outside.clear()  # those two requests went to 127.0.0.1 on purpose


def test_every_control_is_reachable_with_tab_and_labelled(tmp_path: Path, pages: StartPage, tab: Any) -> None:
    folder = tmp_path / "seed"
    folder.mkdir()
    shutil.copy(SEED_YAML, folder / "ai_api.yml")
    proc = pages(folder, tmp_path / "home")
    t = tab(proc)
    t.open(proc.url)
    page = t.page
    controls = page.evaluate(
        """() => {
            const name = (el) => {
                if (el.getAttribute("aria-label")) return el.getAttribute("aria-label");
                const by = el.getAttribute("aria-labelledby");
                const text = (id) => document.getElementById(id)?.textContent || "";
                if (by) return by.split(" ").map(text).join(" ");
                if (el.labels && el.labels.length) return [...el.labels].map((l) => l.textContent).join(" ");
                return el.tagName === "BUTTON" ? el.textContent : "";
            };
            const all = [...document.querySelectorAll("a[href], button, input, select, textarea, [tabindex]")]
                .filter((el) => el.tabIndex >= 0 && !el.disabled && el.getClientRects().length > 0);
            return all.map((el, i) => {
                el.dataset.kb = String(i);
                return {i, what: el.outerHTML.slice(0, 80), name: name(el).trim()};
            });
        }"""
    )
    assert len(controls) > 80
    assert [c["what"] for c in controls if not c["name"]] == []
    reached: list[int] = []
    for _ in range(len(controls) + 5):
        page.keyboard.press("Tab")
        index = page.evaluate("document.activeElement && document.activeElement.dataset.kb")
        if index is not None:
            if reached and int(index) == reached[0]:
                break
            reached.append(int(index))
    assert sorted(set(reached)) == [c["i"] for c in controls]
    assert reached == sorted(reached)  # in the order of the page
    # And the keyboard alone designs: Tab to "Add parameter", Enter, type the name.
    page.locator("#add-param").focus()
    page.keyboard.press("Enter")
    expect(t.row("params.4")).to_be_visible()
    t.wait_preview("param5:")
