"""The gateway's authentication through the nginx front (examples/fronts/nginx).

With ``--auth gateway`` behind nginx: an HMAC signature (docs/protocol.md, computed here from the
protocol, not with the gateway's code) over the Host the client sends to nginx passes, because
nginx passes that Host on unchanged; the query form works for a WebSocket session. With
``--auth proxy`` behind nginx: a consumer header sent by a client is dropped by nginx, so the
gateway does not believe it, though it believes the same header from the same address sent
straight to it.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from examples.support import example_dir
from tests.fronts.support import NGINX, Nginx, self_signed, start_nginx, stream_echo_over_wss
from tests.gateway.support import Cluster, GatewayProcess, once_body, unb64

pytestmark = pytest.mark.skipif(
    NGINX is None,
    reason="nginx is not installed (scripts/system-deps installs Debian's nginx): the nginx front is not run",
)

ECHO = "/v1/private/echo"
STREAM = "/v1/private/stream_echo"


def authorization(
    api_key: str, secret: str, host: str, date: str, request_line: str, body: bytes | None = None
) -> tuple[str, dict[str, str]]:
    """docs/protocol.md, Authentication: the authorization_origin of a request, and the Digest header
    of its body (signed after the request line)."""
    to_sign, names, extra = f"host: {host}\ndate: {date}\n{request_line}", "host date request-line", {}
    if body is not None:
        extra["digest"] = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
        to_sign, names = f"{to_sign}\ndigest: {extra['digest']}", f"{names} digest"
    sig = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).digest()).decode()
    return f'api_key="{api_key}", algorithm="hmac-sha256", headers="{names}", signature="{sig}"', extra


def now() -> str:
    return email.utils.formatdate(usegmt=True)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def app(cluster: Cluster) -> dict[str, str]:
    cluster.loader(example_dir("echo"))
    cluster.loader(example_dir("stream_echo"))
    return cluster.consumer()


def _serving(cluster: Cluster, *args: str, auth: bool) -> GatewayProcess:
    gw = cluster.gateway(*args, auth=auth)
    try:
        for service in ("echo", "stream_echo"):
            gw.wait_route(f"/v1/private/{service}")
            gw.wait_loaders(service, 1)
    except BaseException:
        gw.stop()
        raise
    return gw


@pytest.fixture(scope="module")
def signed_front(
    cluster: Cluster, app: dict[str, str], tls: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    with (
        _serving(cluster, auth=True) as gw,
        start_nginx(tmp_path_factory.mktemp("front"), gw.url.removeprefix("http://"), *tls) as front,
    ):
        yield front


@pytest.fixture(scope="module")
def proxy_gw(cluster: Cluster, app: dict[str, str]) -> Iterator[GatewayProcess]:
    # nginx reaches it from 127.0.0.1, and so does this test's direct request.
    with _serving(cluster, "--auth", "proxy", "--trusted-proxy", "127.0.0.1/32", auth=True) as gw:
        yield gw


@pytest.fixture(scope="module")
def proxy_front(
    proxy_gw: GatewayProcess, tls: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    with start_nginx(
        tmp_path_factory.mktemp("proxy-front"), proxy_gw.url.removeprefix("http://"), *tls
    ) as front:
        yield front


def post(front: Nginx, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=front.https_url, verify=front.tls_context(), timeout=30.0) as c:
        return c.post(
            path, content=orjson.dumps(body), headers={"content-type": "application/json", **headers}
        )


def test_an_hmac_signed_once_request_passes_through_nginx(signed_front: Nginx, app: dict[str, str]) -> None:
    host = f"127.0.0.1:{signed_front.https_port}"  # the Host the client sends to nginx
    date = now()
    body = once_body("signed", app_id=app["app_id"])
    auth, extra = authorization(
        app["api_key"], app["api_secret"], host, date, f"POST {ECHO} HTTP/1.1", orjson.dumps(body)
    )
    resp = post(signed_front, ECHO, body, {"host": host, "date": date, "authorization": auth, **extra})
    assert resp.status_code == 200, resp.text
    assert unb64(resp.json()["payload"]["echo"]["text"]) == b"signed"


def test_a_signature_over_another_host_is_refused(signed_front: Nginx, app: dict[str, str]) -> None:
    # What the gateway would see if nginx passed $host (no port) instead of $http_host.
    date = now()
    body = once_body(app_id=app["app_id"])
    auth, extra = authorization(
        app["api_key"], app["api_secret"], "127.0.0.1", date, f"POST {ECHO} HTTP/1.1", orjson.dumps(body)
    )
    resp = post(signed_front, ECHO, body, {"date": date, "authorization": auth, **extra})
    assert resp.status_code == 401 and resp.json()["header"]["code"] == 10401, resp.text
    assert "does not match" in resp.json()["header"]["message"]


def test_an_api_key_passes_and_no_credentials_do_not(signed_front: Nginx, app: dict[str, str]) -> None:
    ok = post(signed_front, ECHO, once_body("keyed", app_id=app["app_id"]), {"x-api-key": app["api_key"]})
    assert ok.status_code == 200, ok.text
    none = post(signed_front, ECHO, once_body(app_id=app["app_id"]), {})
    assert none.status_code == 401 and none.json()["header"]["code"] == 10401, none.text


def test_an_hmac_signed_session_over_wss_in_the_query_form(signed_front: Nginx, app: dict[str, str]) -> None:
    host = f"127.0.0.1:{signed_front.https_port}"
    date = now()
    origin, _ = authorization(app["api_key"], app["api_secret"], host, date, f"GET {STREAM} HTTP/1.1")
    query = urlencode(
        {"authorization": base64.b64encode(origin.encode()).decode(), "date": date, "host": host}
    )

    got, close = stream_echo_over_wss(
        f"{signed_front.wss_url}{STREAM}?{query}", signed_front.tls_context(), app["app_id"], ("a", "b", "c")
    )
    assert [r["header"]["status"] for r in got] == [0, 1, 2], got
    assert b"".join(unb64(r["payload"]["echo"]["text"]) for r in got) == b"abc"
    assert close == 1000


def test_in_proxy_mode_a_client_sent_consumer_header_is_not_trusted_through_nginx(
    proxy_front: Nginx, proxy_gw: GatewayProcess, app: dict[str, str]
) -> None:
    claim = {"X-Consumer-Custom-ID": app["app_id"]}
    # Sent straight to the gateway from a trusted address, the header is believed ...
    direct = proxy_gw.post(ECHO, once_body("direct", app_id=app["app_id"]), headers=claim)
    assert direct.status_code == 200, direct.text
    # ... but nginx drops it, so through nginx the same request is not authenticated.
    resp = post(proxy_front, ECHO, once_body("forged", app_id=app["app_id"]), claim)
    assert resp.status_code == 401, resp.text
    header = resp.json()["header"]
    assert header["code"] == 10401 and "X-Consumer-Custom-ID" in header["message"], header
