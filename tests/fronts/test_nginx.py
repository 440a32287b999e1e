"""The nginx example (examples/fronts/nginx) run in front of a real gateway: TLS, the redirect,
once requests, WebSocket sessions, the body limit, and the headers it passes on or drops.

Real processes on loopback: an embedded config centre, loaders of the echo and stream_echo
examples, a gateway, and Debian's nginx running the example's own files (ports and paths filled in
by tests/fronts/support.py). A second nginx fronts a header mirror, to see exactly what reaches the
upstream.
"""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ase_serving.gateway.settings import GatewaySettings
from examples.support import example_dir
from tests.fronts.support import EXAMPLE, NGINX, Nginx, self_signed, start_nginx, stream_echo_over_wss
from tests.gateway.support import GatewayProcess, Serving, api_yaml, once_body, unb64

pytestmark = pytest.mark.skipif(
    NGINX is None,
    reason="nginx is not installed (scripts/system-deps installs Debian's nginx): the nginx front is not run",
)

#: A service with a small body limit (no loader: the gateway refuses the body before it needs one).
SMALL = api_yaml("small", extra="max_body: 1000")
#: A service that answers only for one Host name (no loader: found = 11503, not found = 10404).
HOSTED = api_yaml("hosted", extra="hosts: [api.example.test]")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


SERVING = Serving(
    schemas=(SMALL, HOSTED),
    loaders=((example_dir("echo"),), (example_dir("stream_echo"),)),
    services=("echo", "stream_echo"),
    routes=("small", "hosted"),
)


@pytest.fixture(scope="module")
def front(
    gw: GatewayProcess, tls: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    upstream = gw.url.removeprefix("http://")
    with start_nginx(tmp_path_factory.mktemp("front"), upstream, *tls) as nginx:
        yield nginx


@pytest.fixture()
def client(front: Nginx) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=front.https_url, verify=front.tls_context(), timeout=30.0) as c:
        yield c


class _Mirror(http.server.BaseHTTPRequestHandler):
    """Answers every request with what it received: method, path, headers (name, value) in order."""

    protocol_version = "HTTP/1.1"  # nginx keeps its upstream connections alive

    def _mirror(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        doc = {
            "method": self.command,
            "path": self.path,
            "headers": list(self.headers.items()),
            "body": len(body),
        }
        out = orjson.dumps(doc)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _mirror

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def mirror_front(tls: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="mirror", daemon=True)
    thread.start()
    try:
        with start_nginx(
            tmp_path_factory.mktemp("mirror-front"), f"127.0.0.1:{server.server_port}", *tls
        ) as nginx:
            yield nginx
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def post(client: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, content=content, headers={"content-type": "application/json", **headers})


# -- TLS and the redirect ------------------------------------------------------------------------
def test_tls_is_1_2_or_1_3_with_the_certificate_and_offers_http2(front: Nginx) -> None:
    ctx = front.tls_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", front.https_port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls_sock,
    ):
        assert tls_sock.version() in ("TLSv1.2", "TLSv1.3")
        assert tls_sock.selected_alpn_protocol() == "h2"


def test_plain_http_is_redirected_to_https_keeping_the_method(front: Nginx) -> None:
    with httpx.Client(timeout=10.0) as plain:
        resp = plain.post(f"{front.http_url}/v1/private/echo?x=1", content=b"{}")
    assert resp.status_code == 308
    assert resp.headers["location"] == "https://127.0.0.1/v1/private/echo?x=1"


# -- the gateway through nginx ---------------------------------------------------------------------
def test_a_once_echo_over_https(client: httpx.Client) -> None:
    resp = post(client, "/v1/private/echo", once_body("hello through nginx"))
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["header"]["code"] == 0
    assert unb64(doc["payload"]["echo"]["text"]) == b"hello through nginx"
    assert resp.headers["strict-transport-security"] == "max-age=63072000"


def test_a_session_over_wss(front: Nginx) -> None:
    got, close = stream_echo_over_wss(
        f"{front.wss_url}/v1/private/stream_echo", front.tls_context(), "test", ("one ", "two ", "three")
    )
    assert [r["header"]["code"] for r in got] == [0, 0, 0], got
    assert [r["header"]["status"] for r in got] == [0, 1, 2]
    assert b"".join(unb64(r["payload"]["echo"]["text"]) for r in got) == b"one two three"
    assert close == 1000


def test_a_body_over_16_mib_is_refused_by_nginx_with_10413(client: httpx.Client, gw: GatewayProcess) -> None:
    # nginx answers (client_max_body_size = the gateway's default max_body): in the gateway's error
    # layout, without a sid, and the gateway never counts the request.
    before = gw.metric("ase_gateway_requests_total", service="echo", mode="once", code="10413")
    resp = post(client, "/v1/private/echo", b" " * (GatewaySettings().max_body + 1))
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/json"
    header = resp.json()["header"]
    assert header["code"] == 10413 and "client_max_body_size" in header["message"]
    assert "sid" not in header
    assert gw.metric("ase_gateway_requests_total", service="echo", mode="once", code="10413") == before


def test_the_gateways_own_10413_passes_through_unchanged(client: httpx.Client) -> None:
    resp = post(client, "/v1/private/small", once_body("x" * 2000))
    assert resp.status_code == 413
    header = resp.json()["header"]
    assert header["code"] == 10413 and "at most 1000" in header["message"]
    assert header["sid"].startswith("ase")


def test_the_host_reaches_the_gateway_as_sent(client: httpx.Client) -> None:
    # "hosted" answers only for api.example.test: found (no loader: 11503) with that Host,
    # not found (10404) with the address the client connected to.
    named = post(client, "/v1/private/hosted", once_body(), host="api.example.test")
    assert named.json()["header"]["code"] == 11503, named.text
    plain = post(client, "/v1/private/hosted", once_body())
    assert plain.json()["header"]["code"] == 10404, plain.text


# -- exactly what reaches the upstream -------------------------------------------------------------
def _received(resp: httpx.Response) -> dict[str, list[str]]:
    assert resp.status_code == 200, resp.text
    out: dict[str, list[str]] = {}
    for name, value in resp.json()["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def test_host_and_forwarded_headers_are_set_and_client_consumer_headers_dropped(mirror_front: Nginx) -> None:
    with httpx.Client(verify=mirror_front.tls_context(), timeout=10.0) as c:
        resp = c.post(
            f"{mirror_front.https_url}/v1/private/echo",
            content=b"{}",
            headers=[
                ("Host", "api.example.test:8443"),
                ("X-Consumer-Custom-ID", "someone-else"),
                ("x-consumer-custom-id", "again"),
                ("X-CONSUMER-USERNAME", "admin"),
                ("X-Consumer-ID", "1"),
                ("X-Credential-Identifier", "k"),
                ("X-Anonymous-Consumer", "false"),
                ("X-Forwarded-For", "203.0.113.9"),
            ],
        )
    got = _received(resp)
    assert got["host"] == ["api.example.test:8443"]
    for name in (
        "x-consumer-custom-id",
        "x-consumer-username",
        "x-consumer-id",
        "x-credential-identifier",
        "x-anonymous-consumer",
    ):
        assert name not in got, got
    assert got["x-forwarded-for"] == ["127.0.0.1"]
    assert got["x-forwarded-proto"] == ["https"]
    # No Connection header for a plain request: nginx keeps its connection to the upstream alive.
    assert "connection" not in got and "upgrade" not in got
    assert resp.json()["body"] == 2


def test_the_example_fits_the_gateways_defaults() -> None:
    conf = (EXAMPLE / "ase-gateway.conf").read_text()
    d = GatewaySettings()

    def value(name: str) -> str:
        found = re.findall(rf"^\s*{name}\s+([^;]+);", conf, re.M)
        assert len(found) == 1, f"{name}: {found}"
        return str(found[0]).strip()

    assert int(value("client_max_body_size").removesuffix("m")) * 1024 * 1024 == d.max_body
    # Longer than any exchange the gateway itself ends: it sends the error, not nginx.
    read = int(value("proxy_read_timeout").removesuffix("s"))
    assert read > d.session_timeout and read > d.once_timeout + d.queue_timeout
    assert value("proxy_set_header Host") == "$http_host"
    assert value("proxy_set_header X-Consumer-Custom-ID") == '""'


DEBIAN_CONF = Path("/etc/nginx/nginx.conf")


@pytest.mark.skipif(not DEBIAN_CONF.exists(), reason="no /etc/nginx/nginx.conf (Debian's nginx-common) here")
def test_the_example_is_a_drop_in_for_debians_conf_d(tls: tuple[Path, Path], tmp_path: Path) -> None:
    # As README.md says: ase-gateway.conf in conf.d/ of Debian's own nginx.conf (its paths moved
    # under tmp_path, the default site left out) passes `nginx -t`.
    etc = tmp_path / "etc"
    (etc / "conf.d").mkdir(parents=True)
    text = DEBIAN_CONF.read_text()
    for old, new in (
        ("/etc/nginx/conf.d/", f"{etc}/conf.d/"),
        ("include /etc/nginx/sites-enabled/*;", ""),
        ("/var/log/nginx/", f"{tmp_path}/"),
        ("/run/nginx.pid", f"{tmp_path}/nginx.pid"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    # Dynamic modules (nginx-light's echo module, say): their `load_module modules/...` lines are
    # relative to nginx's compiled-in prefix, which `-p` below would move: made absolute.
    modules = "include /etc/nginx/modules-enabled/*.conf;"
    if modules in text:
        text = text.replace(modules, _enabled_modules())
    (etc / "nginx.conf").write_text(text)
    cert, key = tls
    conf = (EXAMPLE / "ase-gateway.conf").read_text()
    conf = conf.replace("/etc/nginx/tls/ase-gateway.crt", str(cert)).replace(
        "/etc/nginx/tls/ase-gateway.key", str(key)
    )
    (etc / "conf.d" / "ase-gateway.conf").write_text(conf)
    assert NGINX is not None
    cmd = [NGINX, "-t", "-p", str(tmp_path), "-c", str(etc / "nginx.conf"), "-e", str(tmp_path / "error.log")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def _enabled_modules() -> str:
    """The ``load_module`` lines of /etc/nginx/modules-enabled, with absolute paths."""
    assert NGINX is not None
    version = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=30).stderr
    found = re.search(r"--prefix=(\S+)", version)
    prefix = Path(found.group(1) if found else "/usr/share/nginx")
    lines = []
    for conf in sorted(Path("/etc/nginx/modules-enabled").glob("*.conf")):
        for line in conf.read_text().splitlines():
            load = re.fullmatch(r"\s*load_module\s+(\S+);\s*", line)
            if load:
                lines.append(f"load_module {prefix / load.group(1)};")
    return "\n".join(lines)
