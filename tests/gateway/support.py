"""A real cluster on loopback for gateway tests: embedded config centre, loaders, gateway processes.

    cluster = Cluster(centre, tmp_path)                 # centre: tests.store.embedded_server
    key = cluster.put_schema(ECHO_YAML)                  # compile ApiSchema YAML, push it
    loader = cluster.loader(WRAPPERS / "echo", "--service", "echo")
    with cluster.gateway() as gw:
        gw.wait_route("/v1/private/echo")
        resp = gw.post("/v1/private/echo", body)

Loaders register with the centre through ``ASE_CONFIG_*`` (their ``$ASE_HOME`` is the test's), so
nothing here touches ``~/.ase``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from ase_serving.schema import from_yaml
from ase_serving.store import ConfigKey
from ase_serving.store.base import ConfigItem
from ase_serving.store.consumers import ConsumerStore
from tests.store.embedded_server import EmbeddedServer
from tests.support import ASECTL, LoaderProcess, read_ready_line, spawn, start_loader, stop_group, wait_for

READY = "gateway serving on "
T = TypeVar("T")


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def api_yaml(service: str, interface: str = "once", extra: str = "", output: str = "text") -> str:
    """ApiSchema YAML of a service that takes payload.text and any parameters; ``extra``: more
    ``spec`` lines (``"queue_timeout: 0.5"``), ``output``: the name of its text output."""
    lines = "".join(f"  {line}\n" for line in extra.splitlines() if line.strip())
    return f"""
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {{serviceName: {service}, version: "1.0.0", name: {service}}}
spec:
  interface: {interface}
{lines}  request:
    parameters:
      properties: {{}}
      additionalProperties: true
    payload:
      properties:
        text: {{type: text}}
  response:
    payload:
      properties:
        {output}: {{type: text}}
"""


def once_body(
    text: str = "hello", app_id: str = "test", service: str | None = None, **params: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "header": {"app_id": app_id},
        "payload": {"text": {"encoding": "utf8", "text": b64(text)}},
    }
    if service is not None:
        body["parameter"] = {service: params}
    return body


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample's value in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and got == want:
            return float(value)
    return 0.0


class GatewayProcess:
    """A running ``python -m ase_serving.gateway``."""

    def __init__(self, proc: subprocess.Popen[str], log: Path, url: str) -> None:
        self.proc = proc
        self.log_path = log
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=30.0)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        content = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
        sent = {"content-type": "application/json", **(headers or {})}
        return self.client.post(path, content=content, headers=sent, **kwargs)

    def health(self) -> dict[str, Any]:
        resp = self.client.get("/health")
        doc: dict[str, Any] = resp.json()
        return doc

    def routes(self) -> set[str]:
        return {r for s in self.health()["services"] for r in s["routes"]}

    def wait_route(self, route: str, timeout: float = 10.0) -> None:
        wait_for(lambda: route in self.routes(), timeout, f"route {route} live on the gateway")

    def loaders(self, service: str) -> list[str]:
        """Addresses of the loaders of ``service`` the gateway's LB knows (live ones)."""
        return [n["address"] for n in self.health()["loaders"] if n["serviceId"] == service and n["live"]]

    def wait_loaders(self, service: str, n: int, timeout: float = 20.0) -> None:
        wait_for(lambda: len(self.loaders(service)) == n, timeout, f"{n} loader(s) of {service} known")

    def wait_no_route(self, route: str, timeout: float = 10.0) -> None:
        wait_for(lambda: route not in self.routes(), timeout, f"route {route} gone from the gateway")

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        return metric_value(self.client.get("/metrics").text, name, **labels)

    def stop(self) -> int | None:
        self.client.close()
        return stop_group(self.proc)

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client.close()
        stop_group(self.proc, timeout=5.0)


@dataclass(frozen=True)
class Serving:
    """What a test module's gateway serves (the ``gw`` fixture of tests/gateway/conftest.py starts
    it with :meth:`Cluster.start`): the ApiSchema YAML of ``schemas`` pushed, a loader per entry
    of ``loaders`` (``(project, *args)``), then a gateway with ``args`` (and ``auth``) once the
    routes of ``services`` and ``routes`` are live and a loader of each of ``services`` is known
    (:meth:`Cluster.serving`)."""

    services: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    loaders: tuple[tuple[str | Path, ...], ...] = ()
    args: tuple[str, ...] = ()
    auth: bool = False


class Cluster:
    """An embedded config centre plus what a test starts against it (stopped by :meth:`close`)."""

    def __init__(self, centre: EmbeddedServer, home: Path) -> None:
        self.centre = centre
        self.home = home
        self.loaders: list[LoaderProcess] = []

    def env(self) -> dict[str, str]:
        return {
            "ASE_HOME": str(self.home),
            "ASE_CONFIG_ADDRESS": self.centre.url,
            "ASE_CONFIG_ACCOUNT": self.centre.account,
            "ASE_CONFIG_PASSWORD": self.centre.password,
        }

    def put(self, key: ConfigKey, content: bytes) -> ConfigItem:
        async def go() -> ConfigItem:
            backend = self.centre.backend()
            try:
                return await backend.config.put(key, content)
            finally:
                await backend.close()

        return asyncio.run(go())

    def delete(self, key: ConfigKey) -> None:
        async def go() -> None:
            backend = self.centre.backend()
            try:
                await backend.config.delete(key)
            finally:
                await backend.close()

        asyncio.run(go())

    def put_schema(self, yaml_text: str) -> ConfigKey:
        """Compile ApiSchema YAML and push the service schema under default/default."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ai_api.yml"
            path.write_text(textwrap.dedent(yaml_text))
            compiled = from_yaml(path)
        spec = compiled.spec
        key = ConfigKey("default", "default", spec.service_id, spec.version, compiled.item_name)
        self.put(key, compiled.content())
        return key

    def loader(self, project: str | Path, *args: str) -> LoaderProcess:
        loader = start_loader(project, *args, env=self.env())
        self.loaders.append(loader)
        return loader

    def consumers(self, work: Callable[[ConsumerStore], Awaitable[T]]) -> T:
        """``work(store)`` on the consumers of project default (add, rotate, update, remove)."""

        async def go() -> T:
            backend = self.centre.backend()
            try:
                return await work(ConsumerStore(backend.config.kv, "default"))  # type: ignore[attr-defined]
            finally:
                await backend.close()

        return asyncio.run(go())

    def consumer(self, **kw: Any) -> dict[str, str]:
        """A new consumer of project default: ``{"app_id", "api_key", "api_secret"}``."""
        return self.consumers(lambda store: store.add(**kw)).doc()

    def gateway(
        self,
        *args: str,
        timeout: float = 30.0,
        auth: bool = False,
        env: dict[str, str] | None = None,
        asectl: bool = False,
    ) -> GatewayProcess:
        """A gateway on this cluster (``python -m ase_serving.gateway``; ``asectl gateway serve``
        with ``asectl``); without ``auth`` it runs with ``--auth off`` (the tests of routing,
        sessions and limits; the auth tests turn it on)."""
        if not auth and "--auth" not in args:
            args = (*args, "--auth", "off")
        head = [*ASECTL, "gateway", "serve"] if asectl else [sys.executable, "-m", "ase_serving.gateway"]
        cmd = [*head, "--port", "0", "--config", self.centre.url, *args]
        proc, log = spawn(cmd, "ase-gateway-", {**self.env(), **(env or {})})
        try:
            line = read_ready_line(proc, lambda text: text.startswith(READY), timeout)
        except RuntimeError as exc:
            stop_group(proc, timeout=5.0)
            raise RuntimeError(f"gateway not ready ({exc}): {log.read_text()}") from None
        gw = GatewayProcess(proc, log, line[len(READY) :].split(" ", 1)[0])
        wait_for(lambda: _healthy(gw), timeout, "the gateway's /health")
        return gw

    @contextlib.contextmanager
    def serving(
        self,
        *services: str,
        routes: Sequence[str] = (),
        args: Sequence[str] = (),
        auth: bool = False,
        env: dict[str, str] | None = None,
    ) -> Iterator[GatewayProcess]:
        """A gateway on this cluster (as :meth:`gateway`) once it serves ``services``: the route
        ``/v1/private/<service>`` of each live and a loader of each known to its LB (so a first
        call finds one), and the routes of ``routes`` (services without a loader) live too.

        What a test module's ``gw`` fixture needs after putting its schemas and starting its loaders::

            with cluster.serving("echo", "stream_echo", args=("--once-timeout", "1.5")) as gateway:
                yield gateway
        """
        with self.gateway(*args, auth=auth, env=env) as gw:
            for service in (*services, *routes):
                gw.wait_route(f"/v1/private/{service}")
            for service in services:
                wait_for(lambda s=service: gw.loaders(s), 20, f"a loader of {service} known to the gateway")
            yield gw

    @contextlib.contextmanager
    def start(self, serving: Serving) -> Iterator[GatewayProcess]:
        """The schemas, the loaders and the gateway ``serving`` declares (its loaders stay until
        :meth:`close`, as those of :meth:`loader`)."""
        for yaml_text in serving.schemas:
            self.put_schema(yaml_text)
        for project, *args in serving.loaders:
            self.loader(project, *(str(a) for a in args))
        with self.serving(
            *serving.services, routes=serving.routes, args=serving.args, auth=serving.auth
        ) as gateway:
            yield gateway

    def close(self) -> None:
        for loader in self.loaders:
            loader.finish()
        self.loaders.clear()


def _healthy(gw: GatewayProcess) -> bool:
    try:
        return gw.client.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


def frame(status: int, text: str | None) -> str:
    """A later frame: header.status and payload.text."""
    body: dict[str, Any] = {"header": {"status": status}}
    if text is not None:
        body["payload"] = {"text": {"encoding": "utf8", "status": status, "text": b64(text)}}
    return orjson.dumps(body).decode()


def first_frame(service: str, status: int, text: str, **params: Any) -> str:
    """The first frame: app_id, the service's parameters, payload.text."""
    body = orjson.loads(frame(status, text))
    body["header"]["app_id"] = "test"
    body["parameter"] = {service: params}
    return orjson.dumps(body).decode()


async def results(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every frame until the server closes."""
    out = []
    try:
        async for msg in ws:
            out.append(orjson.loads(msg))
    except websockets.ConnectionClosed:
        pass
    return out


ECHO_YAML = """
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {serviceName: echo, version: "1.0.0", name: echo}
spec:
  interface: once
  sub: ech
  max_body: 4096
  request:
    parameters:
      properties:
        upper: {type: string, enum: ["0", "1"]}
        speed: {type: integer, minimum: 0, maximum: 100}
    payload:
      properties:
        text: {type: text, encoding: [utf8, raw]}
      required: [text]
  response:
    payload:
      properties:
        text: {type: text, encoding: utf8}
"""


async def asgi_websocket(
    app: Any, path: str, frames: list[bytes | str], timeout: float
) -> list[dict[str, Any]]:
    """One WebSocket through the ASGI app, as a client that sends ``frames`` and then waits for
    the gateway to close: every message the app sent (a hang past ``timeout`` raises
    ``TimeoutError``)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})
    for frame in frames:
        key = "bytes" if isinstance(frame, bytes) else "text"
        inbox.put_nowait({"type": "websocket.receive", key: frame})
    sent: list[dict[str, Any]] = []

    async def send(msg: Any) -> None:
        if sent and sent[-1]["type"] == "websocket.close":
            raise RuntimeError(f"sent after the close: {msg}")  # as a server would refuse it
        sent.append(dict(msg))
        if msg["type"] == "websocket.close":
            inbox.put_nowait({"type": "websocket.disconnect", "code": msg.get("code", 1000)})

    scope = {
        "type": "websocket",
        "path": path,
        "headers": [],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
    }
    await asyncio.wait_for(app(scope, inbox.get, send), timeout)
    return sent
