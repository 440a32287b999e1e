"""What the auth tests share: requests signed as docs/protocol.md ("Authentication") says, written
here from the document (not from the gateway's or the SDK's code), and a gateway with
``--auth gateway`` in this process (:class:`AuthGateway`) whose clock a test sets.

``now`` is the signer's clock: the in-process tests sign by the gateway's injected clock, so the
dates near the 300 s limit are exact; the process test signs by ``time.time()``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from ase_serving.gateway.app import GatewayApp
from ase_serving.gateway.atom import Atom
from ase_serving.gateway.auth import KeyAuth
from ase_serving.gateway.consumer_book import ConsumerBook
from ase_serving.gateway.runtime import Gateway
from ase_serving.gateway.settings import GatewaySettings
from ase_serving.gateway.transport import TransportContext, make_transport
from ase_serving.loader.host import EngineHost
from ase_serving.loader.project import load_project
from ase_serving.loader.project_schemas import project_schemas
from ase_serving.schema import from_yaml
from ase_serving.store import ConfigKey
from ase_serving.store.base import ConfigEvent, ConfigItem
from ase_serving.store.consumers import ConsumerRecord, new_credentials, prefix, record_for
from ase_serving.store.kv_engine import KVEvent
from ase_serving.wrapper.plugin import load_plugin
from examples.support import example_dir
from tests.gateway.support import ECHO_YAML, b64, once_body, unb64
from tests.support import WRAPPERS

ECHO = "/v1/private/echo"
STREAM = "/v1/private/stream_echo"


# -- signing, from docs/protocol.md --------------------------------------------------------------


def rfc1123(ts: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(ts))


def authorization(
    key: str, secret: str, host: str, date: str, method: str, path: str, extra: dict[str, str] | None = None
) -> str:
    """docs/protocol.md: the string to sign (host, date, the request line, then one line per further
    signed header), its HMAC-SHA256 in base64, the authorization_origin."""
    lines = [f"host: {host}", f"date: {date}", f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    sig = base64.b64encode(
        hmac.new(secret.encode(), "\n".join(lines).encode(), hashlib.sha256).digest()
    ).decode()
    names = " ".join(["host date request-line", *(extra or {})])
    return f'api_key="{key}", algorithm="hmac-sha256", headers="{names}", signature="{sig}"'


def hi_body(creds: dict[str, str]) -> bytes:
    """The body the tests POST."""
    return orjson.dumps(once_body("hi there", app_id=creds["app_id"]))


def extras(creds: dict[str, str], method: str, body: bytes | None = None) -> dict[str, str]:
    """The further signed headers: the digest of the body a POST sends, and a fresh nonce."""
    out = {}
    if method == "POST":
        digest = hashlib.sha256(hi_body(creds) if body is None else body).digest()
        out["digest"] = "SHA-256=" + base64.b64encode(digest).decode()
    out["x-nonce"] = secrets.token_hex(8)
    return out


def signed_headers(
    creds: dict[str, str],
    host: str,
    path: str,
    now: float,
    method: str = "POST",
    skew: float = 0.0,
    **change: str,
) -> dict[str, str]:
    date = rfc1123(now + skew)
    key, secret = change.get("key", creds["api_key"]), change.get("secret", creds["api_secret"])
    sign_host, sign_path = change.get("sign_host", host), change.get("sign_path", path)
    extra = extras(creds, method)
    auth = authorization(key, secret, sign_host, date, method, sign_path, extra)
    return {"Authorization": auth, "Date": date, **extra}


def signed_query(
    creds: dict[str, str], host: str, path: str, now: float, method: str = "GET", **change: str
) -> str:
    date = rfc1123(now)
    sign_host = change.get("sign_host", host)
    extra = extras(creds, method)
    auth = authorization(creds["api_key"], creds["api_secret"], sign_host, date, method, path, extra)
    return urlencode(
        {"authorization": base64.b64encode(auth.encode()).decode(), "date": date, "host": sign_host, **extra}
    )


#: Every negative case of a signature: what the gateway says, per form.
CASES = {
    "wrong-secret": {"header": "the signature does not match", "query": "the signature does not match"},
    "wrong-key": {"header": "no consumer has the api_key", "query": "no consumer has the api_key"},
    "missing-date": {"header": "has no date: send a Date header", "query": "has no date: send a date query"},
    "skew": {"header": "behind the gateway's clock", "query": "behind the gateway's clock"},
    "tampered-path": {"header": "the signature does not match", "query": "the signature does not match"},
    "other-host": {"header": "the signature does not match", "query": "is not this request's Host"},
}


def credentials(
    creds: dict[str, str], host: str, method: str, path: str, form: str, now: float, case: str = "ok"
) -> tuple[str, dict[str, str]]:
    """(query string, headers) of a request signed as ``case`` (one of :data:`CASES`) says, in ``form``."""
    key, secret, sign_host, sign_path, skew = creds["api_key"], creds["api_secret"], host, path, 0.0
    if case == "wrong-secret":
        secret = "not-the-secret"
    elif case == "wrong-key":
        key = "0123456789abcdef0123456789abcdef"
    elif case == "tampered-path":
        sign_path = "/v1/private/other"
    elif case == "other-host":
        sign_host = "evil.example:443"
    elif case == "skew":
        skew = -301.0
    date = rfc1123(now + skew)
    extra = extras(creds, method)
    auth = authorization(key, secret, sign_host, date, method, sign_path, extra)
    if form == "header":
        headers = {"Authorization": auth, "Date": date, **extra}
        if case == "missing-date":
            del headers["Date"]
        return "", headers
    query = {
        "authorization": base64.b64encode(auth.encode()).decode(),
        "date": date,
        "host": sign_host,
        **extra,
    }
    if case == "missing-date":
        del query["date"]
    return "?" + urlencode(query), {}


# -- answers --------------------------------------------------------------------------------------


def refused(resp: httpx.Response, code: int = 10401, status: int = 401) -> str:
    """The message of a refusal with ``code`` and HTTP ``status``."""
    assert resp.status_code == status, resp.text
    header = resp.json()["header"]
    assert header["code"] == code
    message: str = header["message"]
    return message


def echoed(resp: httpx.Response) -> str:
    """The text the echo service sent back."""
    assert resp.status_code == 200, resp.text
    return unb64(resp.json()["payload"]["text"]["text"]).decode()


def first_frame(app_id: str, text: str, status: int = 2) -> str:
    """The one frame of a stream echo session (status 2: the first and the last)."""
    payload = {"text": {"encoding": "utf8", "status": status, "text": b64(text)}}
    return orjson.dumps({"header": {"app_id": app_id, "status": status}, "payload": payload}).decode()


def ws_text(frames: list[dict[str, Any]]) -> str:
    """The text of a stream echo session's result frames, the last of which ends it."""
    assert frames and frames[-1]["header"]["status"] == 2, frames
    return "".join(unb64(f["payload"]["echo"]["text"]).decode() for f in frames if f.get("payload"))


# -- a gateway in this process --------------------------------------------------------------------


class Clock:
    """The gateway's clock, set by the test: a fixed instant (a whole second, so that a date in
    RFC 1123 is exact) that moves only when the test moves it."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class AuthGateway:
    """The real app, route table, auth, checks and atom with ``--auth gateway`` and the access log
    on, in front of tests/wrappers/echo (service echo, :data:`ECHO_YAML`) and examples/stream_echo
    over the in-process loader transport, reached through httpx's ASGI transport at
    ``http://gw.test``. Its consumers are given as the config centre's watch gives them
    (:meth:`ConsumerBook.apply` of the records' JSON), its clock is :attr:`clock`.

    Every call runs on one event loop of its own, as in a gateway process."""

    host = "gw.test"

    def __init__(self) -> None:
        self.clock = Clock()
        gw = self.gateway = Gateway(GatewaySettings(auth="gateway", access_log=True, lb_ttl=86400.0))
        gw.book = ConsumerBook(store="in-process")
        gw.auth = KeyAuth(gw.book, gw.settings.max_skew, clock=self.clock)
        hosts: dict[str, EngineHost] = {}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ai_api.yml"
            path.write_text(textwrap.dedent(ECHO_YAML))
            echo = from_yaml(path)
        self._schema("echo", echo.spec.version, echo.item_name, echo.content())
        self._serve(hosts, "echo", echo.spec.version, WRAPPERS / "echo")
        stream = load_project(example_dir("stream_echo"))
        for item_name, content in project_schemas(stream):
            self._schema(stream.service, stream.version, item_name, content)
        self._serve(hosts, stream.service, stream.version, stream.project_dir)
        gw.atom = Atom(
            gw.picker, gw.settings.once_timeout, make_transport("inprocess", TransportContext(hosts=hosts))
        )
        self.app = GatewayApp(gw)
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=f"http://{self.host}"
        )
        self._revision = 0

    def _schema(self, service: str, version: str, name: str, content: bytes) -> None:
        key = ConfigKey("default", "default", service, version, name)
        self.gateway.table.apply([ConfigEvent("put", key, ConfigItem(key, content, 1, 1, 0.0), 1)])

    def _serve(self, hosts: dict[str, EngineHost], service: str, version: str, project: Path) -> None:
        host = EngineHost(load_plugin(project))
        host.init({})
        hosts[f"mem:{service}"] = host
        self.gateway.picker.balancer.report(service, version, f"mem:{service}", 8, 8, None, True)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    # -- consumers, as the config centre's watch delivers them ------------------------------------
    def _put(self, rec: ConsumerRecord) -> None:
        self._revision += 1
        key = prefix("default") + rec.app_id
        self.gateway.book.apply([KVEvent("put", key, rec.to_json(), self._revision)])

    def consumer(self, **fields: Any) -> dict[str, str]:
        """A new consumer (``{"app_id", "api_key", "api_secret"}``), known at once."""
        creds = new_credentials()
        self._put(record_for(creds, **fields))
        return creds.doc()

    def rotate(self, app_id: str) -> dict[str, str]:
        """New key and secret for ``app_id`` over its record (as ``asectl consumer rotate``)."""
        creds = new_credentials(app_id)
        old = self.gateway.book.by_app_id(app_id)
        assert old is not None
        self._put(record_for(creds, old))
        return creds.doc()

    def update(self, app_id: str, **fields: Any) -> None:
        old = self.gateway.book.by_app_id(app_id)
        assert old is not None
        self._put(replace(old, **fields))

    def remove(self, app_id: str) -> None:
        self._revision += 1
        self.gateway.book.apply([KVEvent("delete", prefix("default") + app_id, b"", self._revision)])

    # -- requests ---------------------------------------------------------------------------------
    def post(
        self, path: str, body: bytes, headers: dict[str, str] | list[tuple[str, str]] | None = None
    ) -> httpx.Response:
        sent: list[tuple[str, str]] = [("content-type", "application/json")]
        sent += list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        return self.loop.run_until_complete(self.client.post(path, content=body, headers=sent))

    def get(self, path: str) -> httpx.Response:
        return self.loop.run_until_complete(self.client.get(path))

    def session(
        self, path: str, app_id: str, headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> tuple[int, list[dict[str, Any]]]:
        """One stream echo session of one frame (``path`` with its query): (the HTTP status of a
        refused handshake, its body) or (101, every frame the gateway sent), as a server with
        the WebSocket denial extension (uvicorn's) lets the app answer."""
        route, _, query = path.partition("?")
        hdrs = [(b"host", self.host.encode())]
        hdrs += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        sent = self.loop.run_until_complete(
            asgi_exchange(self.app, route, query.encode(), hdrs, [first_frame(app_id, "over ws")], timeout)
        )
        if sent and sent[0]["type"] == "websocket.http.response.start":
            body = b"".join(m.get("body", b"") for m in sent[1:])
            return sent[0]["status"], [orjson.loads(body)]
        assert sent and sent[0]["type"] == "websocket.accept", sent
        frames = [orjson.loads(m["text"]) for m in sent if m["type"] == "websocket.send"]
        return 101, frames


async def asgi_exchange(
    app: Any,
    path: str,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    frames: list[str],
    timeout: float,
) -> list[dict[str, Any]]:
    """One WebSocket through the ASGI app with ``headers`` and ``query``, offered the denial
    extension: sends ``frames``, then waits for the gateway to close or deny; every message the
    app sent (a hang past ``timeout`` raises ``TimeoutError``)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})
    for frame in frames:
        inbox.put_nowait({"type": "websocket.receive", "text": frame})
    sent: list[dict[str, Any]] = []

    async def send(msg: Any) -> None:
        sent.append(dict(msg))
        if msg["type"] == "websocket.close" or (
            msg["type"] == "websocket.http.response.body" and not msg.get("more_body")
        ):
            inbox.put_nowait({"type": "websocket.disconnect", "code": msg.get("code", 1000)})

    scope = {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "headers": headers,
        "query_string": query,
        "client": ("127.0.0.1", 1),
        "extensions": {"websocket.http.response": {}},
    }
    await asyncio.wait_for(app(scope, inbox.get, send), timeout)
    return sent
