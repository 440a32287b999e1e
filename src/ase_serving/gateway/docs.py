"""``/docs``: Swagger UI over the gateway's live OpenAPI document, served from a package (no CDN).

The page and its scripts come from ``swagger-ui-bundle-v2`` (Swagger UI 5, which reads OpenAPI 3.1);
``/docs?service=ID`` shows one service (``/openapi/ID.json``), ``/docs`` all of them; an ID that
is not served is answered 404 with the services that are (:func:`not_served_page`).
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import orjson


def swagger_dir() -> Path:
    """The folder holding ``swagger-ui-bundle.js`` and ``swagger-ui.css``."""
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    return Path(str(swagger_ui_path))


def docs_page(service: str = "") -> str:
    url = f"/openapi/{service}.json" if service else "/openapi.json"
    title = f"ASE serving: {service}" if service else "ASE serving"
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{html.escape(title)} API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: {orjson.dumps(url).decode()},
      dom_id: "#swagger-ui",
      deepLinking: true,
      tryItOutEnabled: true,
      // "Authorize" with an API key, then "Execute": the key is kept in this browser's storage.
      persistAuthorization: true
    }});
  </script>
</body>
</html>
"""


def not_served_message(service: str, served: list[str]) -> str:
    """One line: the service asked for is not served here, and which are."""
    listed = ", ".join(served) if served else "none yet (push a service schema and start its loader)"
    return f"no live service {service!r} on this gateway; services served: {listed}"


def not_served_page(service: str, served: list[str]) -> str:
    """The 404 page of ``/docs?service=ID`` for an ID that is not served: the line, then links."""
    links = "\n".join(
        f'    <li><a href="/docs?service={quote(s, safe="")}">{html.escape(s)}</a></li>' for s in served
    )
    listing = f"  <ul>\n{links}\n  </ul>\n" if served else ""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ASE serving: no service {html.escape(service)}</title>
</head>
<body>
  <p>{html.escape(not_served_message(service, served))}</p>
{listing}  <p><a href="/docs">all services</a></p>
</body>
</html>
"""
