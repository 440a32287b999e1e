"""The gateway's own pages: /health, /metrics, /openapi.json, /openapi/{id}.json, and /docs in a
real browser (Debian's chromium driven by Playwright), all current with the live schemas."""

from __future__ import annotations

import shutil

import orjson
import pytest

from examples.support import example_dir
from tests.gateway.support import Cluster, GatewayProcess, Serving
from tests.support import validate_openapi as validate
from tests.support import wait_for

SESSIONS_ONLY = """
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {serviceName: listener, version: "2.0.0", name: listener}
spec:
  description: Listens to audio.
  interface: session
  request:
    parameters:
      properties:
        lang: {type: string, enum: [en, fr], description: the language spoken}
    payload:
      properties:
        audio: {type: audio, encoding: raw, sample_rate: 16000}
  response:
    payload:
      properties:
        words: {type: text}
"""


# examples/echo's loader pushes its own ai_api.yml.
SERVING = Serving(loaders=((example_dir("echo"),),), services=("echo",))


def test_openapi_documents_follow_the_live_schemas(cluster: Cluster, gw: GatewayProcess) -> None:
    doc = gw.client.get("/openapi.json").json()
    validate(doc)
    assert "/v1/private/echo" in doc["paths"]
    assert doc["servers"] == [{"url": gw.url}]
    key = cluster.put_schema(SESSIONS_ONLY)
    wait_for(lambda: "/v1/private/listener" in gw.client.get("/openapi.json").json()["paths"], 5, "new path")
    one = gw.client.get("/openapi/listener.json").json()
    validate(one)
    assert list(one["paths"]) == ["/v1/private/listener"]
    assert "WebSocket" in str(one["paths"]["/v1/private/listener"])
    cluster.delete(key)
    wait_for(lambda: gw.client.get("/openapi/listener.json").status_code == 404, 5, "the path gone")
    assert gw.client.get("/openapi/listener.json").json()["header"]["code"] == 10404


def test_health_says_what_is_served(gw: GatewayProcess) -> None:
    doc = gw.health()
    assert doc["status"] == "ok" and doc["config"]["connected"] is True
    assert {"serviceId": "echo", "version": "1.0.0", "routes": ["/v1/private/echo"]} in doc["services"]


def test_metrics_are_prometheus_text(gw: GatewayProcess) -> None:
    resp = gw.client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    for name in ("ase_gateway_requests_total", "ase_gateway_request_seconds", "ase_gateway_sessions_open"):
        assert f"# TYPE {name.removesuffix('_total')}" in resp.text


def test_docs_assets_come_from_the_gateway(gw: GatewayProcess) -> None:
    page = gw.client.get("/docs").text
    assert (
        "/docs/static/swagger-ui-bundle.js" in page and "//" not in page.split("<body>")[1].split("url:")[0]
    )
    resp = gw.client.get("/docs/static/swagger-ui-bundle.js")
    assert resp.status_code == 200 and len(resp.content) > 100_000


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/system-deps")
    return path


@pytest.mark.timeout(120)
def test_docs_page_renders_the_service_in_a_real_browser(gw: GatewayProcess) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            outside: list[str] = []
            page.on(
                "request", lambda req: outside.append(req.url) if not req.url.startswith(gw.url) else None
            )
            page.goto(f"{gw.url}/docs?service=echo")
            operation = page.locator(".opblock-summary-path", has_text="/v1/private/echo").first
            operation.wait_for(timeout=30_000)
            assert page.locator(".info .title", has_text="ASE serving: echo").count() == 1
            # Expanding the operation shows the example body made from the schema.
            operation.click()
            page.locator(".opblock-body", has_text="app_id").first.wait_for(timeout=10_000)
            assert outside == [], f"the page loaded from elsewhere: {outside}"
        finally:
            browser.close()


@pytest.mark.timeout(120)
def test_docs_page_authorizes_with_a_pasted_key_and_tries_a_call(
    cluster: Cluster, gw: GatewayProcess
) -> None:
    from playwright.sync_api import sync_playwright

    creds = cluster.consumer(name="docs page")
    body = {
        "header": {"app_id": creds["app_id"]},
        "payload": {"text": {"encoding": "utf8", "status": 3, "text": "aGVsbG8gZG9jcw=="}},
    }
    with cluster.gateway(auth=True) as secured, sync_playwright() as pw:
        secured.wait_route("/v1/private/echo")
        wait_for(
            lambda: (
                secured.post("/v1/private/echo", body, headers={"X-Api-Key": creds["api_key"]}).status_code
                == 200
            ),
            15,
            "the consumer and the loader known",
        )
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{secured.url}/docs?service=echo")
            page.locator(".btn.authorize").first.click()
            scheme = page.locator(".auth-container", has_text="X-Api-Key").first
            scheme.locator("input").fill(creds["api_key"])
            scheme.locator("button", has_text="Authorize").click()
            page.locator("button.btn-done").first.click()
            page.locator(".opblock-summary-path", has_text="/v1/private/echo").first.click()
            editor = page.locator("textarea.body-param__text").first
            editor.wait_for(timeout=10_000)
            editor.fill(orjson.dumps(body).decode())
            page.locator("button.execute").first.click()
            live = page.locator(".live-responses-table .response .response-col_status").first
            live.wait_for(timeout=15_000)
            assert live.inner_text().strip().startswith("200"), live.inner_text()
            answer = page.locator(".live-responses-table .response-col_description pre").first.inner_text()
            assert '"code": 0' in answer and "aGVsbG8gZG9jcw==" in answer
        finally:
            browser.close()
