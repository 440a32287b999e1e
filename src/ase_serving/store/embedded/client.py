"""The embedded backend: :class:`EmbeddedKV` speaks the config centre's HTTP API (:mod:`.api`).

``open_backend("http://127.0.0.1:2390", "admin", password)`` gives the config store and the
registry on one shared HTTP client (:mod:`.http`). Environment proxies are ignored: the embedded
centre is reached directly. Errors map to the store's tree: unreachable -> StoreUnavailable, 401
(wrong login), 403 (the account's role may not) and 429 (too many failed logins) -> StoreAuthFailed,
410 -> Compacted, an unknown lease -> LeaseLost.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from ase_serving.store import Backend
from ase_serving.store.base import (
    Compacted,
    LeaseLost,
    NotFound,
    StoreAuthFailed,
    StoreError,
    StoreUnavailable,
)
from ase_serving.store.embedded.http import HttpClient, HttpError
from ase_serving.store.kv_backed import KVConfigStore, KVRegistry
from ase_serving.store.kv_engine import KVEntry, KVEvent, Put

#: Seconds one watch long poll waits on the server.
POLL = 25.0
#: Seconds for every other request (and on top of POLL for a watch).
TIMEOUT = 10.0

_ERRORS: dict[str, type[StoreError]] = {
    "unauthorized": StoreAuthFailed,
    "forbidden": StoreAuthFailed,
    "too_many_requests": StoreAuthFailed,
    "compacted": Compacted,
    "lease_lost": LeaseLost,
    "not_found": NotFound,
}


def _entry(doc: dict[str, Any]) -> KVEntry:
    return KVEntry(doc["key"], base64.b64decode(doc["value"]), int(doc["mod_revision"]), int(doc["lease"]))


class EmbeddedKV:
    """:class:`~ase_serving.store.kv_engine.KV` over HTTP to an embedded config centre."""

    def __init__(
        self, address: str, account: str | None = None, password: str | None = None, poll: float = POLL
    ) -> None:
        self.address = address.rstrip("/")
        self.description = f"embedded {self.address}"
        self.poll = poll
        self._auth = (account, password or "") if account is not None else None
        self._client: HttpClient | None = None
        self._closed = False

    def _http(self) -> HttpClient:
        if self._closed:
            raise StoreError(f"{self.description}: the connection is closed")
        if self._client is None:
            try:
                self._client = HttpClient(self.address, self._auth)
            except ValueError as exc:
                raise StoreError(f"config centre address {self.address!r} is not understood: {exc}") from None
        return self._client

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float = TIMEOUT,
    ) -> dict[str, Any]:
        url = self.address + path
        content = orjson.dumps(body) if body is not None else None
        try:
            status, raw = await self._http().request(method, path, content, params, timeout)
        except HttpError as exc:
            raise StoreUnavailable(
                f"config centre {url} unreachable ({exc.kind}: {exc or 'no answer'}); "
                "is the config centre running? `asectl init` starts one"
            ) from None
        try:
            doc = orjson.loads(raw)
        except ValueError:
            doc = None
        if status in (200, 201):
            if not isinstance(doc, dict):
                raise StoreError(f"config centre {url} answered something that is not a JSON object")
            return doc
        message = doc.get("error") if isinstance(doc, dict) else None
        code = doc.get("code") if isinstance(doc, dict) else None
        text = f"config centre {self.address}: {message or f'HTTP {status}'}"
        if status >= 500:
            raise StoreUnavailable(text)
        raise _ERRORS.get(str(code), StoreError)(text)

    async def get(self, key: str) -> KVEntry | None:
        doc = await self._call("GET", "/v1/get", params={"key": key})
        return _entry(doc["entry"]) if doc["entry"] else None

    async def range(self, prefix: str, keys_only: bool = False) -> tuple[list[KVEntry], int]:
        params: dict[str, Any] = {"prefix": prefix}
        if keys_only:
            params["keys_only"] = "1"
        doc = await self._call("GET", "/v1/range", params=params)
        return [_entry(e) for e in doc["entries"]], int(doc["revision"])

    async def txn(
        self, puts: Sequence[Put], deletes: Sequence[str] = (), if_mod: dict[str, int] | None = None
    ) -> int | None:
        body = {
            "puts": [
                {"key": p.key, "value": base64.b64encode(p.value).decode(), "lease": p.lease} for p in puts
            ],
            "deletes": list(deletes),
            "if_mod": if_mod or {},
        }
        doc = await self._call("POST", "/v1/txn", body)
        return int(doc["revision"]) if doc["succeeded"] else None

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[KVEvent]]:
        start = start_revision
        while True:
            params = {"prefix": prefix, "start": start, "timeout": self.poll}
            doc = await self._call("GET", "/v1/watch", params=params, timeout=self.poll + TIMEOUT)
            start = int(doc["next"])
            if doc["events"]:
                yield [
                    KVEvent(e["kind"], e["key"], base64.b64decode(e["value"]), int(e["mod_revision"]))
                    for e in doc["events"]
                ]

    async def grant(self, ttl: int) -> int:
        return int((await self._call("POST", "/v1/lease/grant", {"ttl": ttl}))["id"])

    async def keepalive(self, lease: int) -> None:
        await self._call("POST", "/v1/lease/keepalive", {"id": lease})

    async def revoke(self, lease: int) -> None:
        await self._call("POST", "/v1/lease/revoke", {"id": lease})

    async def status(self) -> dict[str, Any]:
        return await self._call("GET", "/v1/status")

    async def add_account(self, account: str, password: str, role: str) -> None:
        """Create an account with a role (admin, writer, reader, gateway); the client must be
        logged in as an admin."""
        await self._call("POST", "/v1/accounts", {"account": account, "password": password, "role": role})

    async def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.close()


def open_backend(address: str, account: str | None = None, password: str | None = None) -> Backend:
    """The embedded backend at ``address`` (``http://host:port``); nothing is contacted yet."""
    kv = EmbeddedKV(address, account, password)
    return Backend("embedded", kv.address, KVConfigStore(kv), KVRegistry(kv))
