"""The HMAC-SHA256 signature as the gateway reads it: the ``Authorization`` field, the headers a
signature covers, the body's digest, and the memory of signatures taken (:class:`Replays`)."""

from __future__ import annotations

import collections
import email.utils
import functools
import hmac
import math
import re
from collections.abc import Mapping
from typing import Any

from ase_serving.errors import AuthFailed
from ase_serving.protocol.signing import ALGORITHM, body_digest

HELP = "send X-Api-Key (or ?apikey=), or an HMAC-SHA256 signature (docs/protocol.md, Authentication)"

_PAIR = re.compile(r'([A-Za-z_]+)\s*=\s*"([^"]*)"')
_AUTHORIZATION = re.compile(r'\s*[A-Za-z_]+\s*=\s*"[^"]*"(?:\s*,\s*[A-Za-z_]+\s*=\s*"[^"]*")*\s*')
_REQUIRED = frozenset(("host", "date", "request-line"))
_ALWAYS = frozenset((b"host", b"date"))
_HEADERS_FIELD = re.compile(r'headers\s*=\s*"([^"]*)"', re.I)
_TOKEN = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,64}")


def signed_headers(scope: Mapping[str, Any], authorization: str) -> dict[str, str]:
    """The headers a signature may cover (those its ``headers`` field names, when it parses), by
    lower-case name: not every header of the request decoded."""
    match = _HEADERS_FIELD.search(authorization)
    try:
        wanted = _wanted(match.group(1)) if match else _ALWAYS
    except AuthFailed:
        wanted = _ALWAYS  # parse_authorization says what is wrong
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in wanted}


@functools.lru_cache(maxsize=256)
def _wanted(text: str) -> frozenset[bytes]:
    return _ALWAYS | frozenset(n.encode("latin-1") for n in signed_names(text))


def parse_authorization(text: str) -> dict[str, str]:
    """``api_key="..", algorithm=".."...`` -> its fields; :class:`AuthFailed` when malformed."""
    if not _AUTHORIZATION.fullmatch(text):
        raise AuthFailed(
            'the authorization is malformed: expected api_key="..", algorithm="hmac-sha256", '
            'headers="host date request-line", signature=".."'
        )
    fields = {name.lower(): value for name, value in _PAIR.findall(text)}
    for name in ("api_key", "algorithm", "headers", "signature"):
        if not fields.get(name):
            raise AuthFailed(f"the authorization has no {name}: {HELP}")
    if fields["algorithm"].lower() != ALGORITHM:
        raise AuthFailed(
            f"the authorization's algorithm {fields['algorithm']!r} is not supported: use hmac-sha256"
        )
    signed_names(fields["headers"])
    return fields


@functools.lru_cache(maxsize=256)
def signed_names(text: str) -> tuple[str, ...]:
    """The names of an authorization's ``headers`` field, checked (cached: a client sends the same)."""
    names = tuple(text.lower().split())
    if not _REQUIRED.issubset(names) or len(set(names)) != len(names) or len(names) > 16:
        raise AuthFailed(
            f'the authorization must sign headers="host date request-line" (then digest for a body, '
            f"x-nonce or other headers), each once, not {text!r}"
        )
    if not all(_TOKEN.fullmatch(n) for n in names):
        raise AuthFailed(f"the authorization's headers {text!r} are not all header names")
    return names


@functools.lru_cache(maxsize=1024)
def date_seconds(text: str) -> float | None:
    """An RFC 1123 date in seconds (None if it is not one); cached: clients in the same second
    send the same date."""
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


class Replays:
    """The signatures accepted within the date window, each of which is taken once.

    A signature is remembered until its date falls out of the window (``max_skew`` either side of
    the clock). At most ``cap`` are remembered: when more come, the oldest is forgotten and no
    signature dated at or before it is taken any more (``floor``), so a forgotten one can never
    come back; under that load the effective window is shorter, never open.
    """

    def __init__(self, max_skew: float, cap: int = 200_000) -> None:
        self.max_skew = max_skew
        self.cap = cap
        self._seen: dict[str, float] = {}  # signature -> its date, seconds
        self._order: collections.deque[tuple[float, str]] = collections.deque()
        self.floor = -math.inf

    def __len__(self) -> int:
        return len(self._seen)

    def take(self, sig: str, when: float, now: float) -> str | None:
        """Take ``sig`` dated ``when``; None when taken, else why it is refused."""
        order, seen = self._order, self._seen
        while order and order[0][0] < now - self.max_skew:  # out of the window: may go
            seen.pop(order.popleft()[1], None)
        if sig in seen:
            return "this signature was used already (a replay): sign every request afresh"
        if when <= self.floor:
            return (
                "the date is older than this gateway's memory of signatures reaches under its "
                "present load: sign with the current time"
            )
        while len(seen) >= self.cap:
            old_when, old = order.popleft()
            seen.pop(old, None)
            self.floor = max(self.floor, old_when)
        seen[sig] = when
        order.append((when, sig))
        return None


#: Where :meth:`KeyAuth.authenticate` leaves the ``Digest`` a signature covers, for
#: :func:`check_digest` once the body is read.
SIGNED_DIGEST = "ase.signed_digest"


def check_digest(scope: Mapping[str, Any], body: bytes) -> None:
    """10401 when the request's signature covers a digest that is not the body's."""
    want = scope.get(SIGNED_DIGEST)
    if want is not None and not hmac.compare_digest(body_digest(body).encode(), want.encode()):
        raise AuthFailed(
            "the body is not the one signed: its SHA-256 is not the Digest header's; send the exact "
            "bytes that were signed"
        )


def has_body(scope: Mapping[str, Any]) -> bool:
    if scope["type"] != "http":
        return False
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False
