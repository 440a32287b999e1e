"""The admission of a once request or a session, the same for HTTP and WebSocket.

:func:`admit` runs before any body or frame is read: who calls (auth), whether the service is
served that way, whether the caller is over its limits. :func:`loader_request` turns the checked
body of a once request, or a session's checked first frame, into the loader's request: the app
id of the credentials, the header's status, the payload's items, the parameters with the
schema's outputs. The transports (``app.py``, ``session.py``) only read and answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ase_serving.errors import BadRequest, MethodNotAllowed
from ase_serving.gateway import webgate
from ase_serving.gateway.atom import to_request
from ase_serving.gateway.auth import check_app_id
from ase_serving.gateway.consumer_book import Consumer
from ase_serving.gateway.routes import Service
from ase_serving.protocol.items import Request, Status

if TYPE_CHECKING:
    from ase_serving.gateway.asgi import Scope
    from ase_serving.gateway.runtime import Gateway

ONCE, SESSION = "once", "session"


def allowed(svc: Service) -> str:
    """The method a 405 on ``svc``'s route names (``Allow``): the one /openapi.json documents,
    POST for a service taking once requests, else GET (the WebSocket's opening request)."""
    return "POST" if svc.serves(ONCE) else "GET"


def admit(gw: Gateway, svc: Service, scope: Scope, mode: str) -> Consumer | None:
    """The caller of a request in ``mode`` (once, session), admitted; raises 10401, 10403, 405
    (the service is not served that way) or 10110 (over the caller's limit)."""
    consumer = gw.auth.authenticate(scope, svc.service_id)
    if not svc.serves(mode):
        if mode == ONCE:
            raise MethodNotAllowed(
                f"{svc.service_id} is served as sessions only: open a WebSocket on {scope['path']}",
                allow=allowed(svc),
            )
        raise MethodNotAllowed(
            f"{svc.service_id} is served as once requests only: POST the body to {scope['path']}",
            allow=allowed(svc),
        )
    gw.limits.request(consumer)
    return consumer


def loader_request(
    svc: Service, consumer: Consumer | None, body: dict[str, Any], sid: str, mode: str
) -> Request:
    """A checked body (once) or first frame (session) -> the loader's request."""
    check_app_id(consumer, body)
    if mode == ONCE:
        status = webgate.frame_status(body, Status.ONCE)
    else:
        status = webgate.frame_status(body, Status.BEGIN)
        if status not in (Status.BEGIN, Status.END):
            raise BadRequest(
                f"header.status is {status}: a session's first frame has 0 (or 2 for a one-frame session)"
            )
    return to_request(svc, body, webgate.payload_items(body, status), sid, status)
