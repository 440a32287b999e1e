"""The auth stage (the role Kong plays in the seed): who calls, and may they call this service.

The consumers come from :mod:`.consumer_book`, the signature's parts from :mod:`.signatures`, and
each consumer's limits are kept by :mod:`.limits`.

Three modes (``--auth``):

``gateway`` (default)
    The gateway checks the caller itself against the consumers in the config centre
    (:mod:`ase_serving.store.consumers`), by one of two schemes (docs/protocol.md, "Authentication"):

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
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qs

from ase_serving.errors import AppIdMismatch, AseError, AuthFailed, Forbidden, NoLoader
from ase_serving.gateway.consumer_book import Consumer, ConsumerBook
from ase_serving.gateway.signatures import (
    HELP,
    SIGNED_DIGEST,
    Replays,
    date_seconds,
    has_body,
    parse_authorization,
    signed_headers,
    signed_names,
)
from ase_serving.protocol.signing import (
    DIGEST_PREFIX,
    request_line,
    signature,
    signed_text,
)
from ase_serving.store.consumers import ConsumerRecord

log = logging.getLogger("ase_serving.gateway")

MODES = ("gateway", "proxy", "off")


class Auth(Protocol):
    def authenticate(self, scope: Mapping[str, Any], service: str) -> Consumer | None:
        """The caller of an ASGI request (HTTP or WebSocket) of ``service``; raises 10401/10403."""
        ...


class NoAuth:
    """Authentication off: every caller is anonymous."""

    def authenticate(self, scope: Mapping[str, Any], service: str) -> Consumer | None:
        return None


def _headers(scope: Mapping[str, Any]) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in scope["headers"]}


def _query(scope: Mapping[str, Any]) -> dict[str, str]:
    raw = scope.get("query_string") or b""
    if not raw:
        return {}
    return {k: v[0] for k, v in parse_qs(raw.decode("latin-1"), keep_blank_values=True).items()}


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
            return self._verify(scope, text, signed_headers(scope, text), "header")
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
            raise AuthFailed(f"authentication required: {HELP}")
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
        names = signed_names(fields["headers"])
        where = "header" if form == "header" else "query parameter"
        date_text = values.get("date")
        if not date_text:
            named = "a Date header" if form == "header" else "a date query parameter"
            raise AuthFailed(f"the signed request has no date: send {named} (RFC 1123, GMT)")
        sent = date_seconds(date_text)
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
        elif has_body(scope):
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
