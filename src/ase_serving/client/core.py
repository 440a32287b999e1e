"""What the sync and the async client share: request bodies, answers, errors, routes. No I/O here.

::

    AseClientError (code, message, sid, http_status)
        code > 0: the gateway's error code (docs/protocol.md), message: its message
        code -1 (NO_ANSWER): no protocol answer (the gateway is unreachable, closed the
                 connection, or something else answered); http_status None unless one came
        code 10114: no answer within the client's timeout

Payload values (``once(..., payload=...)``, ``session.send(...)``):

- ``str`` or ``bytes``: a text item ``{"encoding": "utf8", "status": S, "text": <base64>}``
  (``str`` as its UTF-8 bytes);
- a mapping with exactly one data field (``text``, ``audio``, ``image``, ``video``, ``other``)
  and any attributes, e.g. ``{"audio": pcm, "encoding": "raw", "sample_rate": 16000}``: the data
  field's bytes (or a ``str``'s UTF-8 bytes) are base64-encoded, ``status`` defaults to the frame's.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from ase_serving.client.signing import Credentials

#: ``AseClientError.code`` when no protocol answer came back.
NO_ANSWER = -1
TIMEOUT = 10114
NO_ROUTE = 10404
FRAME_AFTER_END = 10202
ONCE, BEGIN, CONTINUE, END = 3, 0, 1, 2
DATA_FIELDS = ("text", "audio", "image", "video", "other")

Payload = Mapping[str, "str | bytes | Mapping[str, Any]"]


class AseClientError(Exception):
    """The gateway answered with an error, or gave no protocol answer (``code`` -1)."""

    def __init__(self, code: int, message: str, sid: str = "", http_status: int | None = None) -> None:
        super().__init__(code, message, sid, http_status)
        self.code = code
        self.message = message
        self.sid = sid
        self.http_status = http_status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" + (f" (sid {self.sid})" if self.sid else "")


@dataclass(frozen=True)
class Output:
    """One output of a result: its data (base64-decoded) and the attributes beside it."""

    name: str
    #: The data type: the name of the data field (``text``, ``audio``, ...).
    type: str
    data: bytes
    status: int
    #: The other attributes as the gateway sent them (``encoding``, ``format``, ``sample_rate``...).
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def encoding(self) -> str | None:
        value = self.attrs.get("encoding")
        return str(value) if value is not None else None

    @property
    def text(self) -> str:
        """The data as UTF-8 text (:class:`ValueError` when it is not)."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"output {self.name!r} is {len(self.data)} bytes of {self.type} "
                f"(encoding {self.encoding}), not UTF-8 text: use .data"
            ) from None


@dataclass(frozen=True)
class Result:
    """A once answer, or one result frame of a session."""

    #: The answer's header as received (``code``, ``message``, ``sid``; ``status`` in a session).
    header: dict[str, Any]
    outputs: dict[str, Output]
    #: The whole answer as received (data still base64).
    raw: dict[str, Any] = field(repr=False)

    @property
    def code(self) -> int:
        return int(self.header.get("code", 0))

    @property
    def message(self) -> str:
        return str(self.header.get("message", ""))

    @property
    def sid(self) -> str:
        return str(self.header.get("sid", ""))

    @property
    def status(self) -> int:
        """0/1/2 for a session's results, 3 for a once answer."""
        return int(self.header.get("status", ONCE))

    def __getitem__(self, name: str) -> Output:
        try:
            return self.outputs[name]
        except KeyError:
            raise KeyError(
                f"no output {name!r} in this result (outputs: {', '.join(self.outputs)})"
            ) from None


def _b64(value: Any, where: str) -> str:
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{where} must be bytes or str, not {type(value).__name__}")
    return base64.b64encode(value).decode("ascii")


def payload_entry(name: str, value: Any, status: int) -> dict[str, Any]:
    """One ``payload.<name>`` entry of the wire body (see the module docstring)."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return {"encoding": "utf8", "status": status, "text": _b64(value, f"payload[{name!r}]")}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"payload[{name!r}] must be str, bytes or a mapping like {{'audio': b'...', 'encoding': 'raw'}}, "
            f"not {type(value).__name__}"
        )
    found = [f for f in DATA_FIELDS if f in value]
    if len(found) != 1:
        raise ValueError(
            f"payload[{name!r}] must hold exactly one data field ({', '.join(DATA_FIELDS)}); "
            f"found {', '.join(found) or 'none'}"
        )
    entry = {k: v for k, v in value.items() if k != found[0]}
    entry.setdefault("status", status)
    entry[found[0]] = _b64(value[found[0]], f"payload[{name!r}][{found[0]!r}]")
    return entry


def payload_body(payload: Payload | None, status: int) -> dict[str, Any]:
    return {name: payload_entry(name, value, status) for name, value in (payload or {}).items()}


def decode_answer(doc: Any, where: str, http_status: int | None = None) -> Result:
    """A response body or result frame (parsed JSON) -> a :class:`Result`; an error -> raised."""
    header = doc.get("header") if isinstance(doc, dict) else None
    if not isinstance(header, dict) or not isinstance(header.get("code"), int):
        snippet = orjson.dumps(doc).decode()[:200]
        raise AseClientError(
            NO_ANSWER, f"the answer from {where} has no protocol header: {snippet}", "", http_status
        )
    sid = str(header.get("sid", ""))
    if header["code"] != 0:
        raise AseClientError(header["code"], str(header.get("message", "")), sid, http_status)
    if http_status is not None and http_status != 200:
        raise AseClientError(NO_ANSWER, f"{where} answered HTTP {http_status} with code 0", sid, http_status)
    outputs: dict[str, Output] = {}
    payload = doc.get("payload") or {}
    for name, entry in payload.items() if isinstance(payload, dict) else ():
        fields = [f for f in DATA_FIELDS if isinstance(entry, dict) and f in entry]
        if len(fields) != 1:
            raise AseClientError(
                NO_ANSWER, f"payload.{name} of the answer from {where} has no data field", sid
            )
        try:
            data = base64.b64decode(entry[fields[0]], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise AseClientError(
                NO_ANSWER, f"payload.{name}.{fields[0]} of the answer from {where} is not base64", sid
            ) from None
        attrs = {k: v for k, v in entry.items() if k not in (fields[0], "status")}
        outputs[name] = Output(name, fields[0], data, int(entry.get("status", ONCE)), attrs)
    return Result(header, outputs, doc)


def decode_body(content: bytes | str, where: str, http_status: int | None = None) -> Result:
    """Parse and decode an HTTP response body or a WebSocket text frame."""
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        text = content if isinstance(content, str) else content.decode("utf-8", "replace")
        status = f" (HTTP {http_status})" if http_status is not None else ""
        raise AseClientError(
            NO_ANSWER,
            f"the answer from {where}{status} is not JSON: {text[:200]!r}; is this the ASE gateway?",
            "",
            http_status,
        ) from None
    return decode_answer(doc, where, http_status)


def unreachable(url: str, reason: object) -> AseClientError:
    """The error for a gateway that cannot be reached (no secret: ``url`` has no query string)."""
    return AseClientError(
        NO_ANSWER,
        f"cannot reach the gateway at {url} ({reason or type(reason).__name__}): is it running? "
        "Start one with `asectl init`, or give the right base_url",
    )


def too_slow(url: str, timeout: float) -> AseClientError:
    return AseClientError(TIMEOUT, f"no answer from {url} within {timeout:g} s (the client's timeout)")


class ClientCore:
    """The transport-free half of a client: credentials, URLs, bodies, the route cache."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        timeout: float = 60.0,
        ws_query_auth: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(
                f"base_url {base_url!r} must be the gateway's http(s) address, e.g. http://127.0.0.1:2392"
            )
        self.base_url = base_url.rstrip("/")
        self.credentials = Credentials(app_id, api_key, api_secret)
        self.timeout = timeout
        self.ws_query_auth = ws_query_auth
        self._routes: dict[str, str] = {}
        self._open_http(timeout)

    def _open_http(self, timeout: float) -> None:
        """Make the transport's HTTP client: :class:`~.Client` and :class:`~.AsyncClient` do (the
        core alone has none, for building and decoding bodies without I/O)."""

    def __repr__(self) -> str:
        creds = self.credentials
        return f"{type(self).__name__}({self.base_url!r}, app_id={creds.app_id!r}, auth={creds.mode!r})"

    def url(self, route: str) -> str:
        return self.base_url + route

    def ws_url(self, route: str) -> str:
        return "ws" + self.url(route)[len("http") :]

    def cached_route(self, service: str) -> str | None:
        if not service:
            raise ValueError("service must be a serviceId (echo) or a route (/v1/private/echo)")
        return service if service.startswith("/") else self._routes.get(service)

    def openapi_url(self, service: str) -> str:
        return self.url(f"/openapi/{quote(service, safe='')}.json")

    def learn_route(self, service: str, status: int, content: bytes) -> str:
        """The route of ``service`` from its OpenAPI document (cached); 10404 when it is not served."""
        where = self.openapi_url(service)
        if status != 200:
            decode_body(content, where, status)  # raises the gateway's error (10404: no such service)
        try:
            paths = orjson.loads(content).get("paths") or {}
        except (orjson.JSONDecodeError, AttributeError):
            paths = {}
        if not paths:
            raise AseClientError(NO_ANSWER, f"{where} names no route for {service!r}", "", status)
        route = str(next(iter(paths)))
        self._routes[service] = route
        return route

    def once_body(
        self,
        service: str,
        params: Mapping[str, Any] | None,
        payload: Payload | None,
        header: Mapping[str, Any] | None,
    ) -> bytes:
        body: dict[str, Any] = {
            "header": {"app_id": self.credentials.app_id, **(header or {}), "status": ONCE}
        }
        if params or not service.startswith("/"):
            body["parameter"] = {service_key(service): dict(params or {})}
        if payload:
            body["payload"] = payload_body(payload, ONCE)
        return orjson.dumps(body)


def service_key(service: str) -> str:
    """The key of ``parameter``: the serviceId; given a route, its last part (the default route is
    ``/v1/private/{serviceId}``; give the serviceId where a schema names another route)."""
    return service.rstrip("/").rsplit("/", 1)[-1] if service.startswith("/") else service
