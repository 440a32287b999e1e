"""The embedded config centre's HTTP+JSON API (Starlette), a thin shell over :class:`~.db.KVDB`.

All under ``/v1/``; values travel base64-encoded; errors are ``{"error": text, "code": code}``::

    GET  /v1/get?key=K                       {"revision", "entry": {key, value, mod_revision, lease} | null}
    GET  /v1/range?prefix=P&keys_only=1      {"revision", "entries": [...]}
    GET  /v1/watch?prefix=P&start=N&timeout=S
                                 {"revision", "next", "events": [{kind, key, value, mod_revision}]}
    POST /v1/txn {"puts": [{key, value, lease}], "deletes": [K], "if_mod": {K: rev}}
                                             {"succeeded", "revision"}
    POST /v1/lease/grant {"ttl"} | keepalive {"id"} | revoke {"id"}
    POST /v1/accounts {"account", "password", "role"}  (admin only; role: writer when left out)
    GET  /v1/status        {"revision", "version", "uptime", "compacted", "watchers", "logins"}
    GET  /health                             ok

A watch is a long poll: it answers as soon as there is an event at or after ``start`` (or with
none at the timeout); ``next`` is where the following poll starts. Every write needs an account
(HTTP Basic) whose role writes; reads of :data:`~.roles.OPEN_PREFIXES` are open, any other read
needs an account whose role may read it (:mod:`.roles`: 403 naming the role otherwise). A role
without secrets is served consumer records without them. Credentials that are sent are always
checked, so ``/v1/status`` doubles as a login check; a client with too many failed logins is
answered 429 with ``Retry-After`` (:mod:`.throttle`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ase_serving import __version__
from ase_serving.store.base import Compacted, InvalidName, LeaseLost
from ase_serving.store.embedded import roles
from ase_serving.store.embedded.accounts import PASSWORD_FILE, Account, Accounts, Throttled
from ase_serving.store.embedded.db import KVDB, InvalidStoreRequest
from ase_serving.store.embedded.throttle import LoginThrottle
from ase_serving.store.kv_engine import Put

log = logging.getLogger("ase_serving.store.embedded")

MAX_POLL = 60.0
#: The longest lease a registrar may ask for (a day): a lease is a liveness signal, not storage.
MAX_TTL = 86_400
#: How often lease deadlines are checked.
EXPIRY_TICK = 0.25


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers


class Centre:
    """The server's state: the store, its accounts, and the condition long polls wait on."""

    def __init__(self, db: KVDB, data_dir: Path, throttle: LoginThrottle | None = None) -> None:
        self.db = db
        self.data_dir = data_dir
        self.accounts = Accounts(db, throttle)
        #: Done at the next change (a new one is made by the first watcher after it).
        self._changed: asyncio.Future[None] | None = None
        self.started = time.monotonic()
        #: Set on shutdown: long polls answer at once so the server can stop.
        self.closing = False
        #: Long polls in flight (reported by /v1/status).
        self.watchers = 0

    async def notify(self) -> None:
        """Wake every long poll (a change, or closing)."""
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    def changed(self) -> asyncio.Future[None]:
        """A future done at the next :meth:`notify`."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    async def expire_forever(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_TICK)
            try:
                if self.db.expire():
                    await self.notify()
            except Exception:  # a failed sweep must not end expiry for good; the next tick retries
                log.exception("lease expiry failed")


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status, media_type="application/json")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidStoreRequest(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidStoreRequest(f"{what} is not valid base64") from None


#: Integers of the API are SQLite's (signed 64 bits): revisions, lease ids, TTLs.
_INT_MAX = 2**63 - 1


def _int(value: Any, what: str, low: int = -_INT_MAX, high: int = _INT_MAX) -> int:
    if isinstance(value, (bool, float)):
        raise InvalidStoreRequest(f"{what} must be an integer, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidStoreRequest(f"{what} must be an integer, not {value!r}") from None
    if not low <= number <= high:
        raise InvalidStoreRequest(f"{what} must be {low}..{high}, not {number}")
    return number


def _seconds(value: str, what: str, high: float) -> float:
    """A number of seconds 0..``high`` (finite: NaN or infinity would break the server's timers)."""
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidStoreRequest(f"{what} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidStoreRequest(f"{what} must be a number of seconds 0..{high:g}, not {value!r}")
    return min(seconds, high)


async def _gone(request: Request) -> None:
    """Return when the client of ``request`` (whose body was read, or has none) disconnects."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _body(request: Request) -> dict[str, Any]:
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidStoreRequest(f"request body is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidStoreRequest("request body must be a JSON object")
    return doc


def _entry(e: Any, secrets: bool) -> dict[str, Any]:
    value = e.value if secrets else roles.redact(e.key, e.value)
    return {"key": e.key, "value": _b64(value), "mod_revision": e.mod_revision, "lease": e.lease}


def _refused(found: Account, what: str) -> ApiError:
    can = roles.CAN.get(found.role, "may do nothing")
    return ApiError(
        403, "forbidden", f"account {found.name!r} has the role {found.role}, which {can}: it may not {what}"
    )


def create_app(centre: Centre) -> Starlette:
    """The ASGI app serving ``centre``."""
    db = centre.db
    password_file = centre.data_dir / PASSWORD_FILE
    login_hint = f"run `asectl setup` with a config centre account (the admin password is in {password_file})"

    async def account(request: Request) -> Account | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, data = header.partition(" ")
        try:
            name, sep, password = base64.b64decode(data, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            sep = ""
        if scheme.lower() != "basic" or not sep:
            raise ApiError(
                401, "unauthorized", f"malformed Authorization header (HTTP Basic expected); {login_hint}"
            )
        try:
            found = await centre.accounts.check(name, password, request.client.host if request.client else "")
        except Throttled as exc:
            retry = str(max(1, math.ceil(exc.retry_after)))
            raise ApiError(429, "too_many_requests", str(exc), {"Retry-After": retry}) from None
        if found is None:
            raise ApiError(401, "unauthorized", f"wrong account or password for {name!r}; {login_hint}")
        return found

    async def writer(request: Request, what: str = "write") -> Account:
        found = await account(request)
        if found is None:
            raise ApiError(
                401, "unauthorized", f"writing to the config centre needs an account; {login_hint}"
            )
        if not roles.can_write(found.role):
            raise _refused(found, what)
        return found

    async def reader(request: Request, key: str) -> bool:
        """Check the request may read ``key`` (or the keys under it); may it see secrets?"""
        found = await account(request)
        if found is None:
            if not roles.can_read(None, key):
                raise ApiError(401, "unauthorized", f"reading {key!r} needs an account; {login_hint}")
            return False
        if not roles.can_read(found.role, key):
            raise _refused(found, f"read {key!r}")
        return roles.shows_secrets(found.role)

    async def get(request: Request) -> Response:
        key = request.query_params.get("key", "")
        secrets = await reader(request, key)
        found = db.get(key)
        return _json({"revision": db.revision, "entry": _entry(found, secrets) if found else None})

    async def range_(request: Request) -> Response:
        prefix = request.query_params.get("prefix", "")
        secrets = await reader(request, prefix)
        keys_only = request.query_params.get("keys_only", "") in ("1", "true")
        entries = db.range(prefix, keys_only)
        return _json({"revision": db.revision, "entries": [_entry(e, secrets) for e in entries]})

    async def watch(request: Request) -> Response:
        q = request.query_params
        prefix = q.get("prefix", "")
        start = _int(q.get("start", "1"), "start", 0)
        timeout = _seconds(q.get("timeout", "25"), "timeout", MAX_POLL)
        secrets = await reader(request, prefix)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        centre.watchers += 1
        gone = asyncio.ensure_future(_gone(request))  # a client that leaves frees its watcher
        try:
            while True:
                events, nxt = db.events(prefix, start)
                left = deadline - loop.time()
                if events or centre.closing or left <= 0 or gone.done():
                    break
                await asyncio.wait(
                    (centre.changed(), gone), timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            centre.watchers -= 1
            gone.cancel()
        return _json(
            {
                "revision": db.revision,
                "next": nxt,
                "events": [
                    {
                        "kind": e.kind,
                        "key": e.key,
                        "value": _b64(e.value if secrets else roles.redact(e.key, e.value)),
                        "mod_revision": e.mod_revision,
                    }
                    for e in events
                ],
            }
        )

    async def txn(request: Request) -> Response:
        await writer(request)
        doc = await _body(request)
        puts_in, deletes, if_mod = doc.get("puts", []), doc.get("deletes", []), doc.get("if_mod", {})
        if not isinstance(puts_in, list) or not all(isinstance(p, dict) for p in puts_in):
            raise InvalidStoreRequest("puts must be a list of {key, value, lease} objects")
        if not isinstance(deletes, list) or not all(isinstance(k, str) for k in deletes):
            raise InvalidStoreRequest("deletes must be a list of keys")
        if not isinstance(if_mod, dict):
            raise InvalidStoreRequest("if_mod must be an object {key: mod_revision}")
        puts = []
        for i, p in enumerate(puts_in):
            if not isinstance(p.get("key"), str) or not p["key"]:
                raise InvalidStoreRequest(f"puts[{i}].key must be a non-empty string")
            puts.append(
                Put(p["key"], _unb64(p.get("value"), f"puts[{i}].value"), _int(p.get("lease", 0), "lease"))
            )
        compares = {str(k): _int(v, f"if_mod[{k!r}]") for k, v in if_mod.items()}
        rev = db.txn(puts, deletes, compares)
        if rev is None:
            return _json({"succeeded": False, "revision": db.revision})
        await centre.notify()
        return _json({"succeeded": True, "revision": rev})

    async def grant(request: Request) -> Response:
        await writer(request, "hold leases")
        ttl = _int((await _body(request)).get("ttl"), "ttl", 1, MAX_TTL)
        return _json({"id": db.grant(ttl), "ttl": ttl})

    async def keepalive(request: Request) -> Response:
        await writer(request, "hold leases")
        lease = _int((await _body(request)).get("id"), "id")
        return _json({"id": lease, "ttl": db.keepalive(lease)})

    async def revoke(request: Request) -> Response:
        await writer(request, "hold leases")
        rev = db.revoke(_int((await _body(request)).get("id"), "id"))
        if rev is not None:
            await centre.notify()
        return _json({"revision": db.revision})

    async def add_account(request: Request) -> Response:
        found = await writer(request, "add accounts")
        if found.role != roles.ADMIN:
            raise _refused(found, "add accounts (only an admin may)")
        doc = await _body(request)
        # No role: writer, what an account added without one could do before roles.
        name, password, role = doc.get("account"), doc.get("password"), doc.get("role", roles.WRITER)
        if not isinstance(name, str) or not isinstance(password, str) or not isinstance(role, str):
            raise InvalidStoreRequest(
                f'expected {{"account": "...", "password": "...", "role": one of {", ".join(roles.ROLES)}}}'
                f" (role {roles.WRITER} when left out)"
            )
        centre.accounts.add(name, password, role)
        return _json({"account": name, "role": role}, 201)

    async def status(request: Request) -> Response:
        await account(request)
        return _json(
            {
                "revision": db.revision,
                "compacted": db.compacted,
                "watchers": centre.watchers,
                "version": __version__,
                "uptime": round(time.monotonic() - centre.started, 3),
                "logins": dict(centre.accounts.stats),
            }
        )

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    # Errors become responses here and nowhere else.
    def handler(status: int, code: str) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handle(request: Request, exc: Exception) -> Response:
            headers = {"WWW-Authenticate": 'Basic realm="ase"'} if status == 401 else {}
            headers.update(getattr(exc, "headers", None) or {})
            response = _json({"error": str(exc), "code": code}, status)
            response.headers.update(headers)
            return response

        return handle

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return await handler(exc.status, exc.code)(request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json(
            {"error": f"{exc.detail}: {request.method} {request.url.path}", "code": code}, exc.status_code
        )

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/status", status),
            Route("/v1/get", get),
            Route("/v1/range", range_),
            Route("/v1/watch", watch),
            Route("/v1/txn", txn, methods=["POST"]),
            Route("/v1/lease/grant", grant, methods=["POST"]),
            Route("/v1/lease/keepalive", keepalive, methods=["POST"]),
            Route("/v1/lease/revoke", revoke, methods=["POST"]),
            Route("/v1/accounts", add_account, methods=["POST"]),
        ],
        exception_handlers={
            ApiError: api_error,
            HTTPException: http_error,
            InvalidStoreRequest: handler(400, "bad_request"),
            InvalidName: handler(400, "bad_request"),
            LeaseLost: handler(404, "lease_lost"),
            Compacted: handler(410, "compacted"),
        },
    )
