"""The API design page's web app (``asectl api web``): the page, its assets, one JSON API.

The page can write files and push with the saved account, so every ``/api/`` request must carry
the random token of the URL ``asectl api web`` prints (header ``X-ASE-Token``), and :class:`Guard`
refuses requests from another origin (``Origin``, ``Sec-Fetch-Site``) and for another host name
(``Host``: a DNS name pointed at 127.0.0.1 by someone else). Assets come from the package only.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ase_serving.designer import remote
from ase_serving.designer.checks import check_design, check_text, compile_design
from ase_serving.designer.design import design_from_yaml, empty_design
from ase_serving.loader.project import ProjectError, read_toml
from ase_serving.schema.spec import DATA_TYPES, NUMBER_FORMATS, PARAM_TYPES, STRING_FORMATS

__all__ = ["TOKEN_HEADER", "Guard", "Project", "create_app"]

TOKEN_HEADER = "X-ASE-Token"
STATIC = Path(__file__).resolve().parent / "static"
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass
class Project:
    """The folder the page works on and the ApiSchema file it opens and saves."""

    folder: Path
    file: Path

    @property
    def schemas(self) -> Path:
        return self.folder / "schemas"

    def service_name(self) -> tuple[str, str, list[str]]:
        """Name and version of a new design: ``ase.toml``'s ``[service]``, else the folder's name."""
        toml = self.folder / "ase.toml"
        notes: list[str] = []
        if toml.is_file():
            try:
                svc = read_toml(toml).get("service") or {}
                if isinstance(svc, dict) and isinstance(svc.get("name"), str):
                    return svc["name"], str(svc.get("version") or "1.0.0"), notes
            except ProjectError as exc:
                notes.append(f"{exc}; the service is named after the folder")
        return self.folder.resolve().name, "1.0.0", notes


class Guard:
    """Refuse what did not come from the page itself: another host name or origin, or an
    ``/api/`` request without the token. Each refusal is a 403 with one line saying why."""

    def __init__(self, app: ASGIApp, token: str, host: str) -> None:
        self.app, self.token, self.host = app, token, host

    def refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]").lower()
        if not self._known_host(name):
            return f"host {host!r} refused: open the URL that `asectl api web` printed"
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return f"origin {origin!r} refused: this page answers only itself"
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return "a request from another site is refused"
        if scope["path"].startswith("/api/"):
            given = headers.get(TOKEN_HEADER.lower(), "")
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                return "no valid token: open the URL that `asectl api web` printed (it carries the token)"
        return None

    def _known_host(self, name: str) -> bool:
        if name in _LOCAL_NAMES or name == self.host.lower():
            return True
        try:
            ipaddress.ip_address(name)  # an address is no DNS name that could be rebound
        except ValueError:
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            why = self.refusal(scope)
            if why is not None:
                await JSONResponse({"error": why}, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _start(project: Project) -> dict[str, Any]:
    """The design the page opens with: the project's file as written (with its problems and
    warnings, in the reader's words), else a new one."""
    name, version, notes = project.service_name()
    info: dict[str, Any] = {
        "folder": str(project.folder),
        "file": str(project.file),
        "blank": empty_design(name, version),
        # The choices the page offers are the toolchain's own lists.
        "choices": {
            "paramTypes": PARAM_TYPES,
            "dataTypes": DATA_TYPES,
            "numberFormats": list(NUMBER_FORMATS),
            "stringFormats": STRING_FORMATS,
        },
    }
    if project.file.is_file():
        try:
            text = project.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            info.update(design=info["blank"], notes=[f"cannot read {project.file}: {exc}"], source="new")
            return info
        design = design_from_yaml(text)
        info.update(design=design, opened=check_text(text, design, project.file.name), source="file")
        return info
    info.update(design=info["blank"], notes=notes, source="new")
    return info


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _save(project: Project, design: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    compiled, checked = compile_design(design)
    if compiled is None:
        n = len(checked["problems"])
        return 422, {"error": f"{n} problem(s) in the API definition; nothing was written", **checked}
    backup = None
    try:
        if project.file.is_file():
            backup = project.file.with_name(project.file.name + ".bak")
            shutil.copy2(project.file, backup)
        _write(project.file, checked["yaml"].encode())
        schema = project.schemas / compiled.spec.file_name
        _write(schema, compiled.content())
    except OSError as exc:
        return 500, {"error": f"cannot write {exc.filename or project.folder}: {exc.strerror or exc}"}
    return 200, {"yaml": str(project.file), "backup": str(backup) if backup else None, "schema": str(schema)}


Handler = Callable[[dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


def _json_api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A POST endpoint: a JSON object in, ``(status, JSON object)`` out; the cluster's and the
    gateway's failures become 502 with their one line."""

    async def endpoint(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the request body must be JSON"}, 400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "the request body must be a JSON object"}, 400)
        try:
            status, doc = await handler(body)
        except remote.RemoteError as exc:
            return JSONResponse({"error": str(exc)}, 502)
        return JSONResponse(doc, status)

    return endpoint


def _design(body: dict[str, Any]) -> dict[str, Any]:
    design = body.get("design")
    return design if isinstance(design, dict) else {}


def create_app(project: Project, token: str, caller: remote.Caller, host: str = "127.0.0.1") -> ASGIApp:
    """The page's app for ``project``: ``caller`` says whom "try it" calls as (``asectl call``'s
    gateway and credentials; the command line passes them so this package needs no CLI code)."""

    async def index(_: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def start(_: Request) -> Response:
        return JSONResponse(_start(project))

    async def schemas(_: Request) -> Response:
        try:
            return JSONResponse(await remote.schemas())
        except remote.RemoteError as exc:
            return JSONResponse({"error": str(exc)}, 502)

    async def check(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, check_design(_design(body))

    async def parse(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text, name = body.get("text"), str(body.get("name") or "ai_api.yml")
        if not isinstance(text, str):
            return 400, {"error": "give the file's text"}
        design = design_from_yaml(text)
        return 200, {"design": design, "opened": check_text(text, design, name)}

    async def open_schema(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = [str(body.get(k) or "") for k in ("service", "version", "name")]
        return 200, await remote.open_schema(*parts)

    async def save(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return _save(project, _design(body))

    async def push(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        compiled, checked = compile_design(_design(body))
        if compiled is None:
            return 422, {"error": f"cannot push: {len(checked['problems'])} problem(s) in the API definition"}
        return 200, await remote.push(compiled)

    async def try_it(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, await remote.call_service(caller, _design(body), body.get("body"))

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/start", start),
            Route("/api/schemas", schemas),
            Route("/api/check", _json_api(check), methods=["POST"]),
            Route("/api/parse", _json_api(parse), methods=["POST"]),
            Route("/api/open-schema", _json_api(open_schema), methods=["POST"]),
            Route("/api/save", _json_api(save), methods=["POST"]),
            Route("/api/push", _json_api(push), methods=["POST"]),
            Route("/api/try", _json_api(try_it), methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    return Guard(app, token, host)
