"""Credentials and request signing as docs/protocol.md's "Authentication" gives them.

:func:`sign` is the whole HMAC-SHA256 scheme in one call, for users of any HTTP library::

    body = json.dumps(request).encode()
    headers = sign("POST", "127.0.0.1:2392", "/v1/private/echo", api_key, api_secret, body=body)
    requests.post("http://127.0.0.1:2392/v1/private/echo", data=body, headers=headers)

:func:`sign_query` gives the same signature as the query parameters a browser's WebSocket needs.
"""

from __future__ import annotations

import base64
import email.utils
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from ase_serving.protocol.signing import (
    SIGNED_HEADERS,
    authorization,
    body_digest,
    signature,
    string_to_sign,
)
from ase_serving.protocol.signing import nonce as fresh_nonce

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def sign(
    method: str,
    host: str,
    path: str,
    api_key: str,
    api_secret: str,
    date: str | None = None,
    body: bytes | None = None,
    nonce: bool | str = True,
) -> dict[str, str]:
    """The headers that authenticate one request: ``Host``, ``Date``, ``Authorization``, and
    ``Digest`` (with a ``body``) and ``X-Nonce`` (unless ``nonce`` is False).

    ``host`` is the Host header the request carries (``127.0.0.1:2392``: no default port),
    ``path`` the route with its query string if any, ``date`` an RFC 1123 GMT date (default: now;
    the gateway refuses a skew over 300 s), ``body`` the exact bytes sent (signed as its SHA-256
    digest), ``nonce`` a fresh random value (True), a given one, or none (False: the seed's
    ``host date request-line``, with which identical requests in the same second are replays).
    """
    date = date or email.utils.formatdate(usegmt=True)
    headers = {"Host": host, "Date": date}
    digest = x_nonce = None
    if body is not None:
        digest = headers["Digest"] = body_digest(body)
    if nonce is not False:
        x_nonce = headers["X-Nonce"] = fresh_nonce() if nonce is True else nonce
    names = _names(digest is not None, x_nonce is not None)
    text = string_to_sign(host, date, method, path, digest, x_nonce)
    headers["Authorization"] = authorization(api_key, signature(api_secret, text), names)
    return headers


def _names(digest: bool, x_nonce: bool) -> str:
    """The ``headers`` field: the seed's three names, then ``digest`` and ``x-nonce`` when signed."""
    return " ".join([SIGNED_HEADERS, *(["digest"] if digest else []), *(["x-nonce"] if x_nonce else [])])


def sign_query(
    method: str,
    host: str,
    path: str,
    api_key: str,
    api_secret: str,
    date: str | None = None,
    nonce: bool | str = True,
) -> dict[str, str]:
    """The same signature as query parameters (a request without a body, as a WebSocket's
    opening): ``{"authorization": base64(...), "date", "host", "x-nonce"}``; ``path`` without
    a query (URL-encode them, e.g. with :func:`urllib.parse.urlencode`)."""
    headers = sign(method, host, path, api_key, api_secret, date, nonce=nonce)
    origin = headers["Authorization"].encode()
    query = {
        "authorization": base64.b64encode(origin).decode("ascii"),
        "date": headers["Date"],
        "host": headers["Host"],
    }
    if "X-Nonce" in headers:
        query["x-nonce"] = headers["X-Nonce"]
    return query


def host_of(url: str) -> str:
    """The Host header an HTTP or WebSocket client sends for ``url`` (default ports left out)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2].lower()
    if parts.port is not None and parts.port == _DEFAULT_PORTS.get(parts.scheme):
        netloc = netloc[: netloc.rfind(":")]
    return netloc


@dataclass(frozen=True)
class Credentials:
    """Who calls: the app id, and an API key (API-key mode) or key and secret (HMAC mode).

    Neither key nor secret appears in ``repr()``.
    """

    app_id: str
    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.app_id or not isinstance(self.app_id, str):
            raise ValueError("app_id must be the non-empty app id of the calling app (header.app_id)")
        if self.api_secret and not self.api_key:
            raise ValueError("api_secret is given without api_key: HMAC signing needs both")

    @property
    def mode(self) -> str:
        """``hmac``, ``api-key`` or ``none``."""
        if self.api_key and self.api_secret:
            return "hmac"
        return "api-key" if self.api_key else "none"

    def http_headers(self, method: str, url: str, body: bytes | None = None) -> dict[str, str]:
        """Headers that authenticate an HTTP request to ``url`` (header form) with ``body``."""
        if self.api_key and self.api_secret:
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            return sign(method, host_of(url), path, self.api_key, self.api_secret, body=body)
        return {"X-Api-Key": self.api_key} if self.api_key else {}

    def websocket(self, url: str, query: bool = True) -> tuple[str, dict[str, str]]:
        """(URL, headers) that authenticate a WebSocket to ``url``: query parameters (the form a
        browser can send) when ``query``, else headers."""
        if not self.api_key:
            return url, {}
        if not query:
            headers = self.http_headers("GET", url)
            # The WebSocket client writes the Host header itself, from the same URL.
            headers.pop("Host", None)
            return url, headers
        if self.api_secret:
            params = sign_query("GET", host_of(url), urlsplit(url).path or "/", self.api_key, self.api_secret)
        else:
            params = {"apikey": self.api_key}
        return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}", {}
