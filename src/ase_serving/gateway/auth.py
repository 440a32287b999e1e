"""The auth stage (the role Kong plays in the seed): who calls, may they, and are they over a limit.

Three modes (``--auth``):

``gateway`` (default)
    The gateway checks the caller itself against the consumers in the config centre
    (:mod:`ase_serving.store.consumers`), by one of two schemes (PROTOCOL.md, "Authentication"):

    - API key: header ``X-Api-Key`` or query parameter ``apikey``;
    - HMAC-SHA256 (:mod:`ase_serving.protocol.signing`): ``signature = base64(hmac_sha256(
      api_secret, "host: H\\ndate: D\\nMETHOD PATH HTTP/1.1[\\ndigest: SHA-256=..][\\nx-nonce: N]"))``
      in ``Authorization: api_key="..", algorithm="hmac-sha256", headers="host date request-line
      digest x-nonce", signature=".."`` with ``Date``, ``Host``, ``Digest`` and ``X-Nonce``
      headers, or as the query parameters ``authorization=base64(that)&date=..&host=..&x-nonce=..``
      (what a browser's WebSocket can send). ``PATH`` carries the query string in the header
      form. A request with a body must sign its digest; a date more than ``max_skew`` (300) s
      from the gateway's clock is refused; each signature is taken once in its window
      (:class:`Replays`); with ``public_hosts`` the signed host must be one of them.
``proxy``
    A front proxy (Kong, ...) has authenticated the caller and names its app id in a header
    (``X-Consumer-Custom-ID``); the header is believed only from the networks ``trusted_proxies``
    lists. A consumer record of that app id, if any, still gives its services and limits.
``off``
    Everyone is anonymous; ``header.app_id`` is not checked.

Comparisons of keys and signatures are constant-time (:func:`hmac.compare_digest`). Error messages
name what is wrong and what to send, never a key, a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import collections
import email.utils
import functools
import hmac
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from ase_serving.errors import AppIdMismatch, AseError, AuthFailed, Forbidden, NoLoader, OverLimit
from ase_serving.protocol.signing import (
    ALGORITHM,
    DIGEST_PREFIX,
    body_digest,
    request_line,
    signature,
    signed_text,
)
from ase_serving.store.consumers import ConsumerRecord, key_digest
from ase_serving.store.kv import KVEvent

log = logging.getLogger("ase_serving.gateway")

MODES = ("gateway", "proxy", "off")
_PAIR = re.compile(r'([A-Za-z_]+)\s*=\s*"([^"]*)"')
_AUTHORIZATION = re.compile(r'\s*[A-Za-z_]+\s*=\s*"[^"]*"(?:\s*,\s*[A-Za-z_]+\s*=\s*"[^"]*")*\s*')
_REQUIRED = frozenset(("host", "date", "request-line"))
_ALWAYS = frozenset((b"host", b"date"))
_HEADERS_FIELD = re.compile(r'headers\s*=\s*"([^"]*)"', re.I)
_TOKEN = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,64}")
_HELP = "send X-Api-Key (or ?apikey=), or an HMAC-SHA256 signature (PROTOCOL.md, Authentication)"


@dataclass(frozen=True)
class Consumer:
    """An authenticated caller: an app with its app id, and what its record allows."""

    app_id: str
    name: str = ""
    services: tuple[str, ...] = ()
    rps: float = 0
    sessions: int = 0

    @classmethod
    def of(cls, rec: ConsumerRecord) -> Consumer:
        return cls(rec.app_id, rec.name, rec.services, rec.rps, rec.sessions)


class Auth(Protocol):
    def authenticate(self, scope: Mapping[str, Any], service: str) -> Consumer | None:
        """The caller of an ASGI request (HTTP or WebSocket) of ``service``; raises 10401/10403."""
        ...


class NoAuth:
    """Authentication off: every caller is anonymous."""

    def authenticate(self, scope: Mapping[str, Any], service: str) -> Consumer | None:
        return None


class ConsumerBook:
    """The consumers of the project, indexed by app id and by API key digest, kept current from
    the config centre's watch events (:class:`~ase_serving.store.view.PrefixView`)."""

    def __init__(self, records: Iterable[ConsumerRecord] = (), store: str | None = "memory") -> None:
        self._records: dict[str, ConsumerRecord] = {}  # app id -> record
        #: Records in the store that could not be used, by key: why.
        self.bad: dict[str, str] = {}
        self._by_key: dict[str, str] = {}  # key digest -> app id
        #: Keys as sent -> their digest (SHA-256 of a key is a microsecond per request otherwise).
        #: Digests only: which record a digest names is looked up afresh every time.
        self._digests: dict[bytes, str] = {}
        self._consumers: dict[str, tuple[ConsumerRecord, Consumer]] = {}
        #: Where the records come from; None = nowhere (every key is refused, with that reason).
        self.store = store
        #: Why the records are not loaded yet (the config centre's error), or None once they are.
        self.unloaded: Callable[[], str | None] = lambda: None
        #: Why the consumers known are only those of the disk cache (None: read from the store).
        self.stale: Callable[[], str | None] = lambda: None
        for rec in records:
            self._put(rec)

    def __len__(self) -> int:
        return len(self._records)

    def _put(self, rec: ConsumerRecord) -> None:
        self._drop(rec.app_id)
        self._records[rec.app_id] = rec
        self._by_key[rec.key_sha256] = rec.app_id

    def _drop(self, app_id: str) -> None:
        old = self._records.pop(app_id, None)
        if old is not None:
            self._by_key.pop(old.key_sha256, None)

    def apply(self, events: list[KVEvent]) -> None:
        for ev in events:
            app_id = ev.key.rsplit("/", 1)[-1]  # the key is /ase/consumers/<project>/<app_id>
            self._drop(app_id)
            self.bad.pop(ev.key, None)
            if ev.kind == "delete":
                continue
            try:
                rec = ConsumerRecord.from_json(ev.value)
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("consumer record %s is not valid (%s): ignored", ev.key, exc)
                self.bad[ev.key] = f"not a valid consumer record ({exc})"
                continue
            if rec.app_id != app_id:
                log.warning("consumer record %s holds app id %r: ignored", ev.key, rec.app_id)
                self.bad[ev.key] = f"holds app id {rec.app_id!r}, not {app_id!r}"
                continue
            if not rec.usable():
                why = (
                    "served without its key digest and secret: the gateway's config centre account "
                    "may not read secrets (give it the role gateway)"
                )
                log.warning("consumer record %s %s: ignored", ev.key, why)
                self.bad[ev.key] = why
                continue
            self._put(rec)

    def by_key_bytes(self, api_key: bytes) -> ConsumerRecord | None:
        """:meth:`by_key` for a key as sent (a header's bytes), with its digest remembered."""
        digest = self._digests.get(api_key)
        if digest is None:
            if len(self._digests) >= 4096:
                self._digests.clear()
            digest = self._digests[api_key] = key_digest(api_key.decode("latin-1"))
        return self._match(digest)

    def by_key(self, api_key: str) -> ConsumerRecord | None:
        return self._match(key_digest(api_key))

    def _match(self, digest: str) -> ConsumerRecord | None:
        app_id = self._by_key.get(digest)
        rec = self._records.get(app_id) if app_id is not None else None
        if rec is None or not hmac.compare_digest(rec.key_sha256, digest):
            return None
        return rec

    def by_app_id(self, app_id: str) -> ConsumerRecord | None:
        return self._records.get(app_id)

    def consumer(self, rec: ConsumerRecord) -> Consumer:
        """The :class:`Consumer` of a record, made once per record (not per request)."""
        made = self._consumers.get(rec.app_id)
        if made is None or made[0] is not rec:
            made = self._consumers[rec.app_id] = (rec, Consumer.of(rec))
            if len(self._consumers) > 2 * len(self._records) + 64:  # forget removed apps
                self._consumers = {k: v for k, v in self._consumers.items() if k in self._records}
        return made[1]


def _headers(scope: Mapping[str, Any]) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in scope["headers"]}


def _signed_headers(scope: Mapping[str, Any], authorization: str) -> dict[str, str]:
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
    return _ALWAYS | frozenset(n.encode("latin-1") for n in _signed_names(text))


def _query(scope: Mapping[str, Any]) -> dict[str, str]:
    raw = scope.get("query_string") or b""
    if not raw:
        return {}
    return {k: v[0] for k, v in parse_qs(raw.decode("latin-1"), keep_blank_values=True).items()}


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
            raise AuthFailed(f"the authorization has no {name}: {_HELP}")
    if fields["algorithm"].lower() != ALGORITHM:
        raise AuthFailed(
            f"the authorization's algorithm {fields['algorithm']!r} is not supported: use hmac-sha256"
        )
    _signed_names(fields["headers"])
    return fields


@functools.lru_cache(maxsize=256)
def _signed_names(text: str) -> tuple[str, ...]:
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
def _date_seconds(text: str) -> float | None:
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


def _has_body(scope: Mapping[str, Any]) -> bool:
    if scope["type"] != "http":
        return False
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


class KeyAuth:
    """``--auth gateway``: API keys and HMAC signatures against :class:`ConsumerBook`.

    A signature must cover ``host date request-line``, and ``digest`` when the request has a body
    (checked against the body by :func:`check_digest`); it is taken once (:class:`Replays`,
    unless ``replays`` is False); with ``public_hosts``, the host signed must be one of them
    (``name`` or ``name:port``; a name without a port stands for any port).
    """

    def __init__(
        self,
        book: ConsumerBook,
        max_skew: float = 300.0,
        clock: Callable[[], float] = time.time,
        public_hosts: Iterable[str] = (),
        replays: bool = True,
    ):
        self.book = book
        self.max_skew = max_skew
        self.clock = clock
        self.public_hosts = frozenset(h.lower() for h in public_hosts)
        self.replays = Replays(max_skew) if replays else None

    def authenticate(self, scope: Mapping[str, Any], service: str) -> Consumer:
        rec = self._identify(scope)
        if not rec.may_call(service):
            raise Forbidden(
                f"app {rec.app_id} may not call {service}: its consumer allows "
                f"{', '.join(rec.services)} (`asectl consumer set {rec.app_id} --service ...`)"
            )
        return self.book.consumer(rec)

    def _identify(self, scope: Mapping[str, Any]) -> ConsumerRecord:
        if self.book.store is None:
            raise AuthFailed(
                "this gateway has no consumer store (a read-only config centre): run it with "
                "--auth proxy behind a front proxy, or --auth off"
            )
        why = self.book.unloaded()
        if why is not None:
            # Not the caller's fault: a gateway that cannot read its consumers must not say "bad key".
            raise NoLoader(
                f"the gateway has not loaded its consumers from the config centre yet ({why}): try again"
            )
        api_key = authorization = None
        for name, value in scope["headers"]:  # no dict of every header: two names matter here
            if name == b"x-api-key":
                if api_key is not None:  # which one would count? A proxy may have added one.
                    raise AuthFailed("the request has more than one X-Api-Key header: send one")
                api_key = bytes(value)
            elif name == b"authorization":
                if authorization is not None:
                    raise AuthFailed("the request has more than one Authorization header: send one")
                authorization = value
        query = _query(scope)  # {} without a query string (the common case)
        if authorization is not None:
            text = authorization.decode("latin-1")
            return self._verify(scope, text, _signed_headers(scope, text), "header")
        if "authorization" in query:
            try:
                text = base64.b64decode(query["authorization"], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise AuthFailed(
                    "the authorization query parameter is not base64 of the authorization"
                ) from None
            host = query.get("host", "")
            sent_host = _headers(scope).get(b"host", b"").decode("latin-1")
            if host.lower() != sent_host.lower():
                raise AuthFailed(
                    f"the signed host {host!r} is not this request's Host {sent_host!r}: sign the host the "
                    "request is sent to"
                )
            return self._verify(scope, text, query, "query")
        if api_key is None and "apikey" in query:
            api_key = query["apikey"].encode("latin-1")
        if api_key is None:
            raise AuthFailed(f"authentication required: {_HELP}")
        rec = self.book.by_key_bytes(api_key)
        if rec is None:
            raise self._unknown("API key", "no consumer has this API key")
        return rec

    def _unknown(self, what: str, text: str) -> AseError:
        """A key no known consumer has: 10401, unless the consumers known are only a cache's
        (the store unreadable): then the key may be one added since, and the caller may retry."""
        why = self.book.stale()
        if why is not None:
            return NoLoader(
                f"the gateway has not loaded its consumers from the config centre ({why}); none of "
                f"those it cached has this {what}: try again"
            )
        return AuthFailed(f"{text} (it may have been rotated or removed)")

    def _verify(
        self, scope: Mapping[str, Any], text: str, values: Mapping[str, str], form: str
    ) -> ConsumerRecord:
        """A signature in ``form`` (header or query) whose signed values are ``values`` (the
        request's headers or its query parameters, by lower-case name)."""
        fields = parse_authorization(text)
        names = _signed_names(fields["headers"])
        where = "header" if form == "header" else "query parameter"
        date_text = values.get("date")
        if not date_text:
            named = "a Date header" if form == "header" else "a date query parameter"
            raise AuthFailed(f"the signed request has no date: send {named} (RFC 1123, GMT)")
        sent = _date_seconds(date_text)
        if sent is None:
            raise AuthFailed(
                f"the date {date_text!r} is not an RFC 1123 date such as 'Wed, 02 Dec 2026 01:45:33 GMT'"
            )
        now = self.clock()
        skew = sent - now
        if abs(skew) > self.max_skew:
            raise AuthFailed(
                f"the date {date_text!r} is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the "
                f"gateway's clock (at most {self.max_skew:.0f} s): check the client's clock"
            )
        host = values.get("host", "")
        if self.public_hosts and not self._public(host):
            raise AuthFailed(
                f"the signed host {host!r} is not a name of this gateway: sign the host the request is "
                f"sent to ({', '.join(sorted(self.public_hosts))})"
            )
        digest = values.get("digest") if "digest" in names else None
        if "digest" in names:
            if not digest or not digest[:8].upper() == DIGEST_PREFIX:
                raise AuthFailed(
                    f"the signature covers digest but the request has no {DIGEST_PREFIX}... digest "
                    f"{where}: send the body's SHA-256 in base64"
                )
        elif _has_body(scope):
            raise AuthFailed(
                "the request has a body that the signature does not cover: send a Digest header "
                f"'{DIGEST_PREFIX}<base64 of the body's SHA-256>' and add digest to the signed headers"
            )
        missing = [n for n in names if n != "request-line" and n not in values]
        if missing:
            raise AuthFailed(
                f"the signature covers {', '.join(missing)} but the request sends no such {where}"
            )
        rec = self.book.by_key_bytes(fields["api_key"].encode("latin-1"))
        if rec is None:
            raise self._unknown("signature's api_key", "no consumer has the api_key of this signature")
        method = "GET" if scope["type"] == "websocket" else str(scope["method"])
        raw = scope.get("raw_path")
        path = raw.decode("latin-1").split("?", 1)[0] if raw else str(scope["path"])
        qs = scope.get("query_string") or b""
        if form == "header" and qs:  # the query form's query is the signature: not signed itself
            path += "?" + qs.decode("latin-1")
        signed = signed_text(names, values, request_line(method, path))
        if not hmac.compare_digest(signature(rec.secret, signed).encode(), fields["signature"].encode()):
            raise AuthFailed(
                f"the signature does not match this request: sign {signed!r} with the api_secret "
                "(HMAC-SHA256, base64)"
            )
        if self.replays is not None:
            refused = self.replays.take(fields["signature"], sent, now)
            if refused is not None:
                raise AuthFailed(f"{refused} (an X-Nonce header lets identical requests differ)")
        if digest is not None and isinstance(scope, dict):
            scope[SIGNED_DIGEST] = DIGEST_PREFIX + digest[8:]
        return rec

    def _public(self, host: str) -> bool:
        host = host.lower()
        if host in self.public_hosts:
            return True
        name, colon, port = host.rpartition(":")
        return bool(colon) and port.isdigit() and name in self.public_hosts


class ProxyAuth:
    """``--auth proxy``: believe the front proxy's consumer header, from trusted addresses only."""

    def __init__(self, book: ConsumerBook, trusted: Iterable[str], header: str) -> None:
        self.book = book
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in trusted]
        self.header = header.lower().encode()
        self.header_name = header

    def authenticate(self, scope: Mapping[str, Any], service: str) -> Consumer:
        client = scope.get("client")
        try:
            addr = ipaddress.ip_address(client[0]) if client else None
        except ValueError:
            addr = None
        if addr is None or not any(addr in net for net in self.trusted):
            raise AuthFailed(
                "this gateway takes requests only through its front proxy, and this one came from "
                f"{client[0] if client else 'an unknown address'}: call the proxy's address"
            )
        value = _headers(scope).get(self.header)
        if not value:
            raise AuthFailed(f"the front proxy sent no {self.header_name} header: is its auth plugin on?")
        app_id = value.decode("latin-1")
        rec = self.book.by_app_id(app_id)
        if rec is None:
            return Consumer(app_id)
        if not rec.may_call(service):
            raise Forbidden(
                f"app {app_id} may not call {service}: its consumer allows {', '.join(rec.services)}"
            )
        return self.book.consumer(rec)


def check_app_id(consumer: Consumer | None, body: Mapping[str, Any]) -> None:
    """10313 when an authenticated caller sends another app's ``header.app_id``."""
    if consumer is None:
        return
    header = body.get("header")
    app_id = header.get("app_id") if isinstance(header, dict) else None
    if app_id != consumer.app_id:
        raise AppIdMismatch(
            f"header.app_id {app_id!r} is not the app id of the credentials used ({consumer.app_id!r})"
        )


class Limits:
    """Each consumer's requests per second (a token bucket) and sessions open at once, in this
    process. ``share`` is this process's part of a limit (1 / the number of gateway workers)."""

    def __init__(self, share: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self.clock = clock
        self._buckets: dict[tuple[str, float], list[float]] = {}  # -> [tokens, last time]
        self._open: dict[str, int] = {}

    def request(self, consumer: Consumer | None) -> None:
        """Count one request (a once request or a session start); :class:`OverLimit` when over."""
        if consumer is None or consumer.rps <= 0:
            return
        rate = consumer.rps * self.share
        now = self.clock()
        bucket = self._buckets.get((consumer.app_id, consumer.rps))
        if bucket is None:
            bucket = self._buckets[(consumer.app_id, consumer.rps)] = [max(1.0, rate), now]
        tokens = min(max(1.0, rate), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return
        bucket[0] = tokens
        raise OverLimit(
            f"app {consumer.app_id} is over its limit of {consumer.rps:g} requests per second: slow down",
            retry_after=max(1, math.ceil((1.0 - tokens) / rate)),
        )

    def open_session(self, consumer: Consumer | None) -> Callable[[], None]:
        """Count one open session; returns its release. :class:`OverLimit` when at the limit."""
        if consumer is None or consumer.sessions <= 0:
            return _nothing
        app = consumer.app_id
        allowed = max(1, int(consumer.sessions * self.share))
        if self._open.get(app, 0) >= allowed:
            raise OverLimit(
                f"app {app} has {consumer.sessions} sessions open, its limit: end one first", retry_after=1
            )
        self._open[app] = self._open.get(app, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[app] -= 1

        return release


def _nothing() -> None:
    return None
