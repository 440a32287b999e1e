"""The HMAC-SHA256 request signature of PROTOCOL.md ("Authentication"), one implementation for the
gateway that checks it and the client that makes it::

    text = string_to_sign("127.0.0.1:2392", "Wed, 02 Dec 2026 01:45:33 GMT", "POST", "/v1/private/echo")
    origin = authorization(api_key, signature(api_secret, text))
"""

from __future__ import annotations

import base64
import hashlib
import hmac

ALGORITHM = "hmac-sha256"
SIGNED_HEADERS = "host date request-line"


def string_to_sign(host: str, date: str, method: str, path: str) -> str:
    """``host`` as the Host header carries it, ``date`` RFC 1123 GMT, ``path`` without its query."""
    return f"host: {host}\ndate: {date}\n{method.upper()} {path} HTTP/1.1"


def signature(secret: str, text: str) -> str:
    """``base64(hmac_sha256(secret, text))``."""
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode("ascii")


def authorization(api_key: str, sig: str) -> str:
    """The ``authorization_origin``: the Authorization header's value (base64 of it in the query form)."""
    return f'api_key="{api_key}", algorithm="{ALGORITHM}", headers="{SIGNED_HEADERS}", signature="{sig}"'
