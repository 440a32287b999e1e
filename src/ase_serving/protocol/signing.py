"""The HMAC-SHA256 request signature of docs/protocol.md ("Authentication"), one implementation for the
gateway that checks it and the client that makes it.

The signed text is one line per name in the authorization's ``headers`` field, in its order:
``request-line`` is ``METHOD PATH HTTP/1.1``, every other name ``name: value`` with the value of
that header (or, in the query form a browser's WebSocket uses, of that query parameter)::

    host: 127.0.0.1:2392
    date: Wed, 02 Dec 2026 01:45:33 GMT
    POST /v1/private/echo HTTP/1.1
    digest: SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
    x-nonce: 6f1c0e3a9d2b4c5e8f7a1b2c3d4e5f60

The seed's scheme signs ``host date request-line``; the gateway also requires ``digest`` (the
body's SHA-256) for a request with a body, and ``x-nonce`` (any unique value) lets one client send
identical requests within the same second, as each signature is accepted once. ``PATH`` carries
the query string in the header form; in the query form the query carries the signature itself and
``PATH`` is the path alone.

    text = string_to_sign("127.0.0.1:2392", date, "POST", "/v1/private/echo", digest=body_digest(body))
    origin = authorization(api_key, signature(api_secret, text), HEADERS_WITH_BODY)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence

ALGORITHM = "hmac-sha256"
#: The seed's signed headers: what a request without a body must sign at least.
SIGNED_HEADERS = "host date request-line"
#: What the client signs for a request without a body, and with one.
HEADERS_NO_BODY = "host date request-line x-nonce"
HEADERS_WITH_BODY = "host date request-line digest x-nonce"
#: The prefix of the only digest algorithm taken.
DIGEST_PREFIX = "SHA-256="


def body_digest(body: bytes) -> str:
    """The ``Digest`` header of a body: ``SHA-256=base64(sha256(body))``."""
    return DIGEST_PREFIX + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def nonce() -> str:
    """A fresh ``X-Nonce`` value."""
    return secrets.token_hex(16)


def request_line(method: str, path: str) -> str:
    return f"{method.upper()} {path} HTTP/1.1"


def signed_text(names: Sequence[str], values: Mapping[str, str], line: str) -> str:
    """The text signed for the header ``names`` (lower case), ``values`` by name, the request line."""
    return "\n".join(line if name == "request-line" else f"{name}: {values[name]}" for name in names)


def string_to_sign(
    host: str, date: str, method: str, path: str, digest: str | None = None, x_nonce: str | None = None
) -> str:
    """The signed text of :data:`SIGNED_HEADERS`, with ``digest`` and ``x-nonce`` lines after it
    when given (the order of :data:`HEADERS_WITH_BODY`). ``host`` as the Host header carries it,
    ``date`` RFC 1123 GMT."""
    text = f"host: {host}\ndate: {date}\n{request_line(method, path)}"
    if digest is not None:
        text += f"\ndigest: {digest}"
    if x_nonce is not None:
        text += f"\nx-nonce: {x_nonce}"
    return text


def signature(secret: str, text: str) -> str:
    """``base64(hmac_sha256(secret, text))``."""
    return base64.b64encode(hmac.digest(secret.encode(), text.encode(), "sha256")).decode("ascii")


def authorization(api_key: str, sig: str, headers: str = SIGNED_HEADERS) -> str:
    """The ``authorization_origin``: the Authorization header's value (base64 of it in the query form)."""
    return f'api_key="{api_key}", algorithm="{ALGORITHM}", headers="{headers}", signature="{sig}"'
