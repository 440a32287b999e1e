"""The gateway's ASGI application: service routes (HTTP POST = once, WebSocket = session) and the
fixed pages (``/health``, ``/metrics``, ``/openapi.json``, ``/openapi/{serviceId}.json``, ``/docs``).

Service routes are served by raw ASGI code (the hot path: no framework objects per request);
everything else goes to a small Starlette app. Errors become responses in one place
(:func:`error_response`): the body ``{"header": {"code", "message", "sid"}}`` with the HTTP
status of the code (docs/protocol.md), plus ``Retry-After`` for 10110.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

import orjson
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ase_serving.errors import AseError, MethodNotAllowed, NoRoute, NotJson, TooLarge
from ase_serving.gateway import webgate
from ase_serving.gateway.admission import ONCE, admit, allowed, loader_request
from ase_serving.gateway.answers import deny, error_response
from ase_serving.gateway.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    Throttle,
    server_error,
)
from ase_serving.gateway.docs import docs_page, not_served_page, swagger_dir
from ase_serving.gateway.routes import Service
from ase_serving.gateway.runtime import Gateway
from ase_serving.gateway.session import run_session
from ase_serving.gateway.signatures import check_digest
from ase_serving.protocol.public import result_to_public
from ase_serving.schema.openapi import openapi_document

log = logging.getLogger("ase_serving.gateway")
_JSON = (b"content-type", b"application/json")


def _page_error(exc: AseError) -> Response:
    """A fixed page's error (a Starlette response), rendered as every other answer."""
    status, body, headers = error_response(exc)
    return Response(body, status, {k.decode(): v.decode() for k, v in headers}, media_type="application/json")


async def _respond(send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def check_content_type(scope: Scope) -> None:
    """A body sent as anything but JSON is 10160 with HTTP 415 (no Content-Type: taken as JSON)."""
    value = _header(scope, b"content-type")
    if value is None:
        return
    media = value.split(b";", 1)[0].strip().lower()
    if media != b"application/json" and not (media.startswith(b"application/") and media.endswith(b"+json")):
        raise NotJson(
            f"the body is sent as {media.decode('latin-1')!r}: send it as JSON "
            "(Content-Type: application/json)"
        )


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused with 10413 as soon as it is known to exceed ``limit`` bytes."""
    length = _header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise TooLarge(f"the body has {int(length)} bytes; this service takes at most {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body has more than {limit} bytes, the most this service takes")
        chunks.append(chunk)
        if not msg.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class GatewayApp:
    """The ASGI app of one gateway process (``gateway`` holds its state)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.pages = self._pages()
        #: The per-request failure lines, one per (service, code) a second at most.
        self.throttle = Throttle()
        self._openapi: dict[tuple[int, str | None, str], bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket"):
            svc = self.gw.table.lookup(scope["path"], _host(scope))
            if svc is not None:
                if kind == "websocket":
                    await run_session(self.gw, svc, scope, receive, send)
                elif scope["method"] == "POST":
                    await self.once(svc, scope, receive, send)
                else:
                    wrong = MethodNotAllowed(
                        f"{scope['method']} is not served on {scope['path']}: POST a JSON body for a "
                        "once request, or open a WebSocket for a session",
                        allow=allowed(svc),
                    )
                    await _respond(send, *error_response(wrong))
                return
            if kind == "websocket":
                await receive()  # websocket.connect
                await deny(
                    scope, send, NoRoute(f"no service at {scope['path']}: see /openapi.json for the routes")
                )
                return
        await self.pages(scope, receive, send)

    # -- once -----------------------------------------------------------------------------------
    async def once(self, svc: Service, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gw
        start = time.perf_counter()
        sid = gw.sids.next(svc.schema.sub)
        code, failure = 0, ""
        try:
            consumer = admit(gw, svc, scope, ONCE)
            check_content_type(scope)
            raw = await read_body(scope, receive, svc.max_body)
            check_digest(scope, raw)
            body = webgate.parse_body(raw)
            webgate.check(svc, body)
            result, waited = await gw.atom.once(svc, loader_request(svc, consumer, body, sid, ONCE))
            if waited:
                gw.metrics.queued(svc.service_id, waited)
            result.sid = sid
            code, failure = result.code, result.message
            out = orjson.dumps(result_to_public(result))
            await _respond(send, svc.http_status(code), out)
        except ClientGone:
            code = -1
        except AseError as exc:
            code, failure = exc.code, exc.message
            await _respond(send, *error_response(exc, sid, gw.settings.retry_after))
        except Exception as exc:  # a bug: answered in the protocol, logged once with its traceback
            bug = server_error(exc, sid, f"once {svc.service_id}")
            code, failure = bug.code, bug.message
            with contextlib.suppress(Exception):  # the response may have started
                await _respond(send, *error_response(bug, sid, gw.settings.retry_after))
        elapsed = time.perf_counter() - start
        gw.metrics.request(svc.service_id, "once", code, elapsed)
        if code > 0 and svc.http_status(code) >= 500:
            held = self.throttle.allow((svc.service_id, code))
            if held is not None:
                log.warning(
                    "sid=%s once %s failed with %d: %s%s",
                    sid,
                    svc.service_id,
                    code,
                    failure,
                    self.throttle.note(held),
                )
        elif gw.settings.access_log:
            log.info(
                "sid=%s once %s %s code=%d %.1f ms", sid, svc.service_id, scope["path"], code, elapsed * 1e3
            )

    # -- the fixed pages --------------------------------------------------------------------------
    def _pages(self) -> Starlette:
        gw = self.gw

        async def health(_req: HttpRequest) -> Response:
            doc = await gw.health()
            # Degraded still serves (from its last known state): 200, so that a load balancer keeps
            # sending traffic; the status and the problems say what is wrong.
            return JSONResponse(doc, status_code=503 if doc["status"] == "starting" else 200)

        async def metrics(_req: HttpRequest) -> Response:
            body, content_type = gw.metrics.render()
            return Response(body, media_type=content_type)

        async def openapi_all(req: HttpRequest) -> Response:
            return self._openapi_response(req, None)

        async def openapi_one(req: HttpRequest) -> Response:
            return self._openapi_response(req, req.path_params["service"])

        async def docs(req: HttpRequest) -> Response:
            service = str(req.query_params.get("service") or "")
            if service:
                served = sorted({s.service_id for s in gw.table.live()})
                if service not in served:
                    # A page for a service that is not served would load, then fail in the browser.
                    return HTMLResponse(not_served_page(service, served), status_code=404)
            return HTMLResponse(docs_page(service))

        async def not_found(req: HttpRequest, _exc: Exception) -> Response:
            exc = NoRoute(
                f"no service at {req.url.path}: see /openapi.json for the routes this gateway serves"
            )
            return _page_error(exc)

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            await gw.start()
            try:
                yield
            finally:
                await gw.close()

        return Starlette(
            routes=[
                Route("/health", health),
                Route("/metrics", metrics),
                Route("/openapi.json", openapi_all),
                Route("/openapi/{service}.json", openapi_one),
                Route("/docs", docs),
                Mount("/docs/static", StaticFiles(directory=swagger_dir()), name="swagger"),
            ],
            exception_handlers={404: not_found, 405: not_found},
            lifespan=lifespan,
        )

    def _openapi_response(self, req: HttpRequest, service: str | None) -> Response:
        server = f"{req.url.scheme}://{req.url.netloc}"
        key = (self.gw.table.generation, service, server)
        body = self._openapi.get(key)
        if body is None:
            live = self.gw.table.served_schemas()
            if service is not None:
                live = [s for s in live if s.service_id == service]
                if not live:
                    exc = NoRoute(f"no live service {service!r}: /openapi.json lists the services served")
                    return _page_error(exc)
            title = f"ASE serving: {service}" if service else "ASE serving"
            body = orjson.dumps(openapi_document(live, title=title, servers=[server]))
            if len(self._openapi) > 64:
                self._openapi.clear()
            self._openapi[key] = body
        return Response(body, media_type="application/json")


def _host(scope: Scope) -> str | None:
    value = _header(scope, b"host")
    return value.decode("latin-1") if value is not None else None
