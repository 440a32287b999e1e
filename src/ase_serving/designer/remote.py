"""What the page does with the cluster of ``$ASE_HOME``: push, list and open schemas, try a call.

Each function returns the JSON the page shows, or raises :class:`RemoteError` with one line
that says what is wrong and what to run; the store and client code are the ones ``asectl api
create --push``, ``asectl config list`` and ``asectl call`` use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from ase_serving import errors
from ase_serving.client import AseClientError, AsyncClient
from ase_serving.client.core import decode_body
from ase_serving.cluster.access import load_settings, opened
from ase_serving.cluster.items import iso_time, item_doc
from ase_serving.cluster.schemas import push_schema, push_target
from ase_serving.cluster_settings import SettingsError
from ase_serving.designer.checks import check_design, check_text
from ase_serving.designer.design import design_from_schema, design_yaml
from ase_serving.schema import Compiled, is_service_schema, parse_json
from ase_serving.store import ConfigKey, ConfigScope, StoreError

__all__ = ["Caller", "RemoteError", "call_service", "open_schema", "push", "schemas"]

#: Who "try it" calls as: the gateway's URL, then app id, API key, API secret (``asectl call``'s).
Caller = Callable[[], tuple[str, str, str | None, str | None]]


class RemoteError(Exception):
    """The one line the page shows when the cluster could not do what was asked."""


async def push(compiled: Compiled) -> dict[str, Any]:
    """Push as ``asectl api create --push`` does; the item's key and revision."""
    try:
        target = push_target(compiled.spec)
        item = await push_schema(target, compiled)
    except StoreError as exc:
        raise RemoteError(f"cannot push: {exc}") from None
    return {**item_doc(item), "notes": target.notes}


def _scope() -> tuple[Any, ConfigScope]:
    try:
        settings = load_settings()
        return settings, ConfigScope(settings.project, settings.group)
    except (StoreError, SettingsError) as exc:
        raise RemoteError(str(exc)) from None


async def schemas() -> dict[str, Any]:
    """The service schemas in the config centre's project and group (as ``asectl config list``)."""
    settings, scope = _scope()
    try:
        async with opened(settings) as backend:
            items, _ = await backend.config.list(scope)
    except StoreError as exc:
        raise RemoteError(str(exc)) from None
    listed = []
    for item in items:
        doc, problem = parse_json(item.content)
        if problem is None and is_service_schema(doc):
            k = item.key
            listed.append(
                {
                    "service": k.service,
                    "version": k.version,
                    "name": k.name,
                    "revision": item.revision,
                    "updated": iso_time(item.updated),
                }
            )
    return {"project": scope.project, "group": scope.group, "items": listed}


async def open_schema(service: str, version: str, name: str) -> dict[str, Any]:
    """A schema of the config centre as a design, with what checking that design says."""
    settings, scope = _scope()
    try:
        key = ConfigKey(scope.project, scope.group, service, version, name)
        async with opened(settings) as backend:
            item = await backend.config.get(key)
    except StoreError as exc:
        raise RemoteError(str(exc)) from None
    doc, problem = parse_json(item.content)
    if problem is not None or not is_service_schema(doc):
        raise RemoteError(f"{service}/{version}/{name} is not a service schema")
    design = design_from_schema(doc)
    meta = design["metadata"]
    if name != f"{meta.get('name') or service}.json":
        meta["configFileName"] = name
    where = f"{service}/{version}/{name}@{item.revision}"
    return {"design": design, "opened": check_text(design_yaml(design), design, where)}


def _plain(exc: AseClientError, service: str, url: str) -> str:
    if exc.code == errors.NO_LOADER:
        return (
            f"no loader serves {service} yet: start one with `asectl loader run DIR` "
            f"(the gateway at {url} answered {exc.code})"
        )
    if exc.code == errors.NO_ROUTE:
        return (
            f"the gateway at {url} does not serve {service}: push the schema first, "
            f"then try again (it answered {exc.code})"
        )
    return str(exc)


async def call_service(caller: Caller, design: dict[str, Any], body: Any) -> dict[str, Any]:
    """POST ``body`` (the example once request, as edited) to the design's service through the
    gateway, signed with the credentials ``asectl call`` would use; the answer as it came."""
    checked = check_design(design)
    if checked["problems"]:
        raise RemoteError(f"fix the {len(checked['problems'])} problem(s) first")
    service = str(checked["serviceId"])
    if "once" not in checked["examples"]:
        raise RemoteError(
            f"{service} takes sessions only, and try it sends a once request: "
            f"use `asectl call {service} --session --data NAME=TEXT`"
        )
    if not isinstance(body, dict):
        raise RemoteError("the request must be a JSON object (header, parameter, payload)")
    url, app_id, api_key, api_secret = caller()
    header = body.setdefault("header", {})
    if isinstance(header, dict) and header.get("app_id") in (None, "", "your_app_id"):
        header["app_id"] = app_id
    content = orjson.dumps(body)
    try:
        async with AsyncClient(url, app_id, api_key, api_secret, timeout=30.0) as client:
            target = client.url(await client.route(service))
            headers = client.credentials.http_headers("POST", target, content)
            headers["Content-Type"] = "application/json"
            async with httpx.AsyncClient(timeout=30.0) as http:
                resp = await http.post(target, content=content, headers=headers)
    except AseClientError as exc:
        raise RemoteError(_plain(exc, service, url)) from None
    except httpx.HTTPError as exc:
        raise RemoteError(f"cannot reach the gateway at {url}: {exc}") from None
    answer: dict[str, Any] = {"status": resp.status_code, "url": target, "app_id": app_id}
    try:
        answer["response"] = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        answer["response"] = resp.text
    try:
        decode_body(resp.content, target, resp.status_code)
    except AseClientError as exc:
        answer["error"] = _plain(exc, service, url)
    return answer
