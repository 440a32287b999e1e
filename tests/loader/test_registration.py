"""`asectl loader run` in a cluster: registration, licence reports, TTL, drain, outages, schema push.

Real embedded config centres and a real etcd, real loader processes; the registry is read back
with the store's own client, as the LB and ``cluster status`` read it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ase_serving import wire
from ase_serving.cluster_settings import ClusterSettings
from ase_serving.loader.advertise import advertised_address
from ase_serving.loader.project_schemas import project_schemas
from ase_serving.loader.settings import LoaderSettings
from ase_serving.protocol.items import Request, Result, Status
from ase_serving.store import ConfigKey, Instance, NotFound, StoreUnavailable
from ase_serving.store.kv_backed import INSTANCES, KVRegistry
from tests.conftest import StartLoader
from tests.store.embedded_server import EmbeddedServer, start_embedded
from tests.store.etcd_server import start_etcd
from tests.support import ASECTL, WRAPPERS, project_copy, wait_for

pytestmark = pytest.mark.timeout(90)

_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


class Cluster:
    """A store server plus an ``$ASE_HOME`` pointing at it, and sync reads of its registry."""

    def __init__(self, server: Any, home: Path, project: str = "default") -> None:
        self.server = server
        self.url: str = getattr(server, "url", None) or server.address
        self.project = project
        ClusterSettings(
            address=self.url, account=server.account, password=server.password, project=project
        ).save(home)
        self.env = {"ASE_HOME": str(home)}

    def call(self, body: Any) -> Any:
        """``await body(backend)`` on a fresh client (closed after). This is the test's observer, not
        what is tested: a connection to the store that fails (seen once when etcd's fsyncs stalled
        behind a Docker build on the same disk) is tried again on a new client, within 15 s."""

        async def once() -> Any:
            backend = self.server.backend()
            try:
                return await body(backend)
            finally:
                await backend.close()

        async def main() -> Any:
            deadline = time.monotonic() + 15
            while True:
                try:
                    return await asyncio.wait_for(once(), max(deadline - time.monotonic(), 0.1))
                except StoreUnavailable:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)

        return asyncio.run(main())

    def instances(self, service: str) -> list[Instance]:
        async def body(backend: Any) -> list[Instance]:
            return (await backend.registry.instances(service))[0]  # type: ignore[no-any-return]

        return self.call(body)  # type: ignore[no-any-return]

    def one(self, service: str, **expected: Any) -> Instance | None:
        """The service's only instance when its attrs hold ``expected``, else None."""
        found = self.instances(service)
        if len(found) == 1 and all(found[0].attrs.get(k) == v for k, v in expected.items()):
            return found[0]
        return None


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = start_embedded(tmp_path_factory.mktemp("configd") / "data")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def cluster(embedded: EmbeddedServer, tmp_path: Path) -> Cluster:
    return Cluster(embedded, tmp_path / "home", project=unique("p"))


def stderr_count(loader: Any, needle: str) -> int:
    return int(loader.stderr().count(needle))


def test_registers_its_licences_and_reports_their_use(loaders: StartLoader, cluster: Cluster) -> None:
    service = unique("sess")
    loader = loaders(
        WRAPPERS / "session_sync", "--service", service, "--workers", "2", "--lic", "2", env=cluster.env
    )
    inst = wait_for(lambda: cluster.one(service), 20, "the loader registered", 0.05)
    assert inst.version == "1.0.0" and inst.address == loader.address
    assert inst.attrs == {
        "lic_total": 4,
        "lic_idle": 4,
        "lic_best": 4,
        "live": True,
        "workers": 2,
        "modes": ["session"],
        "metrics_url": loader.metrics_url,
        "grpc": loader.grpc,
        "uds": inst.attrs["uds"],
        "host": wire.host_id(),
        # The workers' own sockets and the limits a gateway there keeps for them.
        "direct": [inst.attrs["uds"].removesuffix(".sock") + f"-w{i}.sock" for i in (1, 2)],
        "once_timeout": 30.0,
        "read_timeout": 15.0,
        "session_timeout": 180.0,
    }
    assert f"registered {service} 1.0.0 at {loader.address} with {cluster.url}" in loader.stderr()
    c = loader.client()
    sess = c.session(Request(sid="held", status=Status.BEGIN))
    wait_for(lambda: cluster.one(service, lic_idle=3), 10, "lic_idle 3 while a session is open", 0.05)
    sess.send(Status.END)
    assert [r.status for r in sess][-1] == Status.END
    wait_for(lambda: cluster.one(service, lic_idle=4), 10, "lic_idle 4 after the session", 0.05)


def test_sigkill_disappears_within_the_ttl_heartbeats_keep_it(loaders: StartLoader, cluster: Cluster) -> None:
    service = unique("echo")
    env = {**cluster.env, "ASE_LOADER_ADVERTISE": "127.0.0.1"}
    loader = loaders(WRAPPERS / "echo", "--service", service, "--ttl", "2", "--host", "0.0.0.0", env=env)
    port = loader.address.rsplit(":", 1)[1]
    inst = wait_for(lambda: cluster.one(service), 20, "the loader registered", 0.05)
    # Listening on 0.0.0.0, it registers the advertised host (and metrics there too).
    assert inst.address == f"127.0.0.1:{port}"
    assert str(inst.attrs["metrics_url"]).startswith("http://127.0.0.1:")
    # Heartbeats keep it for two TTLs (a missing keepalive would let it expire here).
    end = time.monotonic() + 4.0
    while time.monotonic() < end:
        assert cluster.one(service) is not None, "the instance expired although the loader runs"
        time.sleep(0.2)
    loader.kill()
    killed = time.monotonic()
    wait_for(lambda: not cluster.instances(service), 8, "the instance to expire", 0.1)
    assert time.monotonic() - killed < 2 + 3  # its TTL, plus the store's expiry sweep and our polling


def test_sigterm_deregisters_before_the_call_in_flight_ends(
    loaders: StartLoader, cluster: Cluster, tmp_path: Path
) -> None:
    service = unique("slow")
    loader = loaders(WRAPPERS / "slow", "--service", service, env=cluster.env)
    wait_for(lambda: cluster.one(service), 20, "the loader registered", 0.05)
    c = loader.client()
    gate, started = tmp_path / "gate", tmp_path / "started"
    results: list[Result] = []
    call = threading.Thread(
        target=lambda: results.append(
            c.once(Request(sid="inflight", params={"gate": str(gate), "started": str(started)}))
        )
    )
    call.start()
    try:
        wait_for(lambda: list(tmp_path.glob("started.*")), what="the call is in the wrapper")
        loader.proc.send_signal(signal.SIGTERM)
        # The call waits for the gate (up to 30 s), so it cannot have ended when the instance is gone.
        wait_for(lambda: not cluster.instances(service), 10, "deregistration", 0.05)
        assert call.is_alive() and not results
    finally:
        gate.touch()
        call.join(30)
    assert [(r.code, r.items[0].data) for r in results] == [(0, b"inflight")]
    assert loader.proc.wait(30) == 0
    assert f"deregistered {service} 1.0.0 at {loader.address}" in loader.stderr()


@pytest.mark.timeout(120)
def test_store_down_at_start_then_restarted(loaders: StartLoader, tmp_path: Path) -> None:
    server = start_embedded(tmp_path / "configd")
    try:
        server.stop()
        cluster = Cluster(server, tmp_path / "home")
        service = unique("echo")
        loader = loaders(WRAPPERS / "echo", "--service", service, "--ttl", "2", env=cluster.env)
        warning = f"cannot reach the config centre at {server.url} ("
        wait_for(lambda: warning in loader.stderr(), 10, "the unreachable-store warning")
        assert "serving anyway and registering when it is back; `asectl init` starts a local one" in (
            loader.stderr()
        )
        c = loader.client()
        assert c.once(Request(params={"x": "1"})).code == 0  # it serves meanwhile
        server.start()
        wait_for(lambda: cluster.one(service), 20, "registration once the store is up", 0.1)
        assert stderr_count(loader, warning) == 1  # said once, not per retry
        assert stderr_count(loader, f"the config centre at {server.url} is back") == 1

        server.kill()  # restarted under the running loader
        wait_for(lambda: "lost the config centre at" in loader.stderr(), 10, "the loader notices")
        server.start()
        wait_for(lambda: cluster.one(service, lic_idle=1), 20, "the instance back after a restart", 0.1)
        wait_for(
            lambda: stderr_count(loader, f"the config centre at {server.url} is back") == 2,
            10,
            "the loader reconnected",
        )
        assert stderr_count(loader, "lost the config centre at") == 1
        assert c.once(Request(params={"x": "2"})).code == 0

        server.kill()  # a dead store must not hold up the drain
        wait_for(lambda: stderr_count(loader, "lost the config centre at") == 2, 10, "the loader notices")
        began = time.monotonic()
        assert loader.stop() == 0
        assert time.monotonic() - began < 8  # the deregistration is bounded (2 s), then a normal drain
        assert "could not deregister" in loader.stderr()
    finally:
        server.kill()


def test_a_refused_account_is_said_once_and_the_loader_serves(
    loaders: StartLoader, embedded: EmbeddedServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    ClusterSettings(address=embedded.url, account="admin", password="wrong").save(home)
    loader = loaders(WRAPPERS / "echo", "--ttl", "2", env={"ASE_HOME": str(home)})
    needle = f"the config centre at {embedded.url} refused the account"
    wait_for(lambda: needle in loader.stderr(), 10, "the refused-account line")
    assert "run `asectl setup` with the right account and password" in loader.stderr()
    assert loader.client().once(Request()).code == 0
    assert stderr_count(loader, needle) == 1


def test_without_a_cluster_it_serves_standalone(loaders: StartLoader) -> None:
    loader = loaders(WRAPPERS / "echo")
    wait_for(lambda: "serving standalone" in loader.stderr(), 10, "the standalone line")
    assert (
        "no cluster set up (run `asectl init`, or `asectl setup` to use an existing one): serving standalone"
        in loader.stderr()
    )
    assert loader.client().once(Request()).code == 0


def test_pushes_missing_schemas_and_keeps_existing_ones(
    loaders: StartLoader, cluster: Cluster, tmp_path: Path
) -> None:
    service = unique("schema")
    project = project_copy("echo", tmp_path)
    (project / "schemas").mkdir()
    (project / "schemas" / "a.json").write_bytes(b'{"meta": {"serviceId": "a"}}')
    (project / "schemas" / "z.json").write_bytes(b'{"meta": {"serviceId": "z"}}')
    (project / "service.json").write_bytes(b'{"meta": {"serviceId": "new"}}')

    def key(name: str) -> ConfigKey:
        return ConfigKey(cluster.project, "default", service, "1.0.0", name)

    async def put_old(backend: Any) -> None:
        await backend.config.put(key("service.json"), b'{"meta": {"serviceId": "old"}}')

    cluster.call(put_old)
    loader = loaders(project, "--service", service, env=cluster.env)

    def item(name: str) -> Any:
        async def body(backend: Any) -> Any:
            try:
                return await backend.config.get(key(name))
            except NotFound:
                return None

        return cluster.call(body)

    # Names are pushed in sorted order: once z.json is there, service.json has been looked at.
    z = wait_for(lambda: item("z.json"), 20, "z.json pushed", 0.1)
    assert orjson.loads(z.content) == {"meta": {"serviceId": "z"}}
    assert orjson.loads(item("a.json").content) == {"meta": {"serviceId": "a"}}
    kept = item("service.json")
    assert (orjson.loads(kept.content), kept.revision) == ({"meta": {"serviceId": "old"}}, 1)
    log = loader.stderr()
    assert (
        f"pushed the schema {key('a.json').path}" in log
        and f"pushed the schema {key('service.json').path}" not in log
    )


@pytest.mark.timeout(120)
def test_etcd_registration_lease_loss_and_ttl(loaders: StartLoader, tmp_path: Path) -> None:
    server = start_etcd(tmp_path / "etcd" / "data")
    try:
        cluster = Cluster(server, tmp_path / "home")
        service = unique("echo")
        loader = loaders(WRAPPERS / "echo", "--service", service, "--lic", "3", "--ttl", "2", env=cluster.env)
        inst = wait_for(lambda: cluster.one(service), 20, "the loader registered in etcd", 0.05)
        assert (inst.address, inst.attrs["lic_total"], inst.attrs["lic_idle"]) == (loader.address, 3, 3)

        async def revoke(backend: Any) -> None:
            # Someone else ends the lease (as a store that lost it would): the loader registers again.
            registry = backend.registry
            assert isinstance(registry, KVRegistry)
            entry = await registry.kv.get(INSTANCES + inst.path)
            assert entry is not None and entry.lease > 0
            await registry.kv.revoke(entry.lease)

        cluster.call(revoke)
        wait_for(lambda: "expired in" in loader.stderr(), 10, "the loader notices the lost lease")
        wait_for(lambda: cluster.one(service, lic_idle=3), 10, "registered again", 0.05)
        loader.kill()
        killed = time.monotonic()
        wait_for(lambda: not cluster.instances(service), 8, "the instance to expire", 0.1)
        assert time.monotonic() - killed < 2 + 3
    finally:
        server.kill()


def test_advertised_address() -> None:
    assert advertised_address("127.0.0.1", 5) == "127.0.0.1:5"
    assert advertised_address("::1", 5) == "[::1]:5"
    assert advertised_address("0.0.0.0", 5, "http://127.0.0.1:2390") == "127.0.0.1:5"
    assert advertised_address("::", 5, "etcd://127.0.0.1:2379,127.0.0.2:2379") == "127.0.0.1:5"
    assert advertised_address("0.0.0.0", 5) == "127.0.0.1:5"
    assert advertised_address("0.0.0.0", 5, None, "10.1.2.3") == "10.1.2.3:5"
    assert advertised_address("10.0.0.1", 5, None, "gw.example:8080") == "gw.example:8080"
    assert advertised_address("0.0.0.0", 5, None, "[fe80::1]:7") == "[fe80::1]:7"
    assert advertised_address("0.0.0.0", 5, None, "fe80::1") == "[fe80::1]:5"


def test_project_schemas_skips_what_cannot_be_pushed(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "b.json").write_text('{"meta": {}}')
    (tmp_path / "schemas" / "broken.json").write_text("{nope")
    (tmp_path / "schemas" / "list.json").write_text("[1]")
    (tmp_path / "service.json").write_text('{"meta": {"x": 1}}')
    found = project_schemas(LoaderSettings(project_dir=tmp_path, service="s"))
    assert found == [("b.json", b'{"meta": {}}'), ("service.json", b'{"meta": {"x": 1}}')]
    assert project_schemas(LoaderSettings(project_dir=tmp_path / "none", service="s")) == []


API_YAML = """\
apiVersion: ase-serving/v1
kind: ApiSchema
metadata: {{serviceName: {service}, version: "3.1", name: api}}
spec:
  interface: once
  request:
    parameters:
      properties:
        level: {{type: integer, minimum: 1, maximum: 5}}
"""

API_CLASS = """

from ase_serving import api as base


class Api(base.BaseASEApi):
    interface = "once"

    def request(self):
        level = base.Arg("level", int, "how loud", min=1, max=5, required=True)
        text = base.Data("text", "text", encoding="utf8")
"""


def _pushed(cluster: Cluster, key: ConfigKey) -> Any:
    async def body(backend: Any) -> Any:
        try:
            return orjson.loads((await backend.config.get(key)).content)
        except NotFound:
            return None

    return cluster.call(body)


def test_a_folder_of_wrapper_py_and_ai_api_yml_pushes_the_schema_made_from_the_yaml(
    loaders: StartLoader, cluster: Cluster, tmp_path: Path
) -> None:
    service = unique("yaml")
    folder = tmp_path / "only"
    folder.mkdir()
    (folder / "wrapper.py").write_bytes((WRAPPERS / "echo" / "wrapper.py").read_bytes())
    (folder / "ai_api.yml").write_text(API_YAML.format(service=service))
    loaders(folder, env=cluster.env)
    # Named by the YAML (service, version, metadata.name), as `asectl api create` names it.
    key = ConfigKey(cluster.project, "default", service, "3.1", "api.json")
    doc = wait_for(lambda: _pushed(cluster, key), 20, "the schema made from ai_api.yml", 0.1)
    level = doc["schemainput"]["properties"]["parameter"]["properties"][service]["properties"]["level"]
    assert level == {"type": "integer", "minimum": 1, "maximum": 5}
    assert cluster.one(service) is not None


def test_a_wrapper_with_an_api_class_pushes_its_schema(
    loaders: StartLoader, cluster: Cluster, tmp_path: Path
) -> None:
    service = unique("code")
    project = project_copy("echo", tmp_path)
    with (project / "wrapper.py").open("a") as fh:
        fh.write(API_CLASS)
    loaders(project, "--service", service, "--version", "2", env=cluster.env)
    key = ConfigKey(cluster.project, "default", service, "2", f"{service}.json")
    doc = wait_for(lambda: _pushed(cluster, key), 30, "the schema of the Api class", 0.1)
    assert doc["meta"]["interface"] == ["once"]
    own = doc["schemainput"]["properties"]["parameter"]["properties"][service]
    assert own["required"] == ["level"]


def test_project_schemas_prefer_the_definition_and_skip_a_broken_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "wrapper.py").write_text("def wrapperInit(config):\n    return 0\n")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "api.json").write_text('{"meta": {"stale": true}}')
    (tmp_path / "ai_api.yml").write_text(API_YAML.format(service="y"))
    settings = LoaderSettings(project_dir=tmp_path, service="renamed", version="9")
    found = dict(project_schemas(settings))
    doc = orjson.loads(found["api.json"])
    # The loader's own name and version win over the YAML's: they are what it registers under.
    assert (doc["meta"]["serviceId"], doc["meta"]["version"]) == ("renamed", "9")
    (tmp_path / "ai_api.yml").write_text(API_YAML.format(service="y").replace("maximum: 5", "maximum: 0"))
    assert dict(project_schemas(settings)) == {"api.json": b'{"meta": {"stale": true}}'}
    assert "minimum 1 > maximum 0" in caplog.text


# -- the data port beyond loopback: the cluster's secret -----------------------------------------
def test_a_data_port_beyond_loopback_refuses_callers_without_the_secret(
    loaders: StartLoader, cluster: Cluster
) -> None:
    from ase_serving import wire
    from ase_serving.loader.wire_client import WireLoaderClient
    from ase_serving.protocol.items import DataItem
    from ase_serving.store.secret import read_secret

    service = unique("sec")
    env = {**cluster.env, "ASE_LOADER_ADVERTISE": "127.0.0.1"}
    loader = loaders(WRAPPERS / "echo", "--service", service, "--host", "0.0.0.0", env=env)
    secret = cluster.call(read_secret)
    assert secret is not None and len(secret) == 64  # made by the loader, 32 random bytes in hex
    req = Request(sid="s1", items=[DataItem(key="text", data=b"hi")])

    async def call(with_secret: bytes | None) -> Any:
        client = WireLoaderClient(loader.address, secret=with_secret)
        try:
            return await client.once(req, 10)
        finally:
            await client.close()

    none = asyncio.run(call(None))
    assert none.code == 11503 and "asks for the cluster secret and this side has none" in none.message
    wrong = asyncio.run(call(b"not the secret"))
    assert wrong.code == 11503 and "refused the connection: wrong cluster secret" in wrong.message
    ok = asyncio.run(call(secret))
    assert ok.code == 0 and ok.items[0].data == b"hi"
    assert "connection from" in loader.stderr() and "wrong cluster secret" in loader.stderr()

    # A caller that skips the handshake gets no call through: refused, connection closed.
    host, port = loader.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(wire.pack(wire.OP_ONCE, 1, 0, wire.encode(req)))
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    ops: list[tuple[int, bytes]] = []
    wire.FrameBuffer().feed(got, lambda op, _f, _c, _code, payload: ops.append((op, bytes(payload))))
    assert [op for op, _ in ops] == [wire.OP_HELLO, wire.OP_AUTH_FAILED]
    assert b"before the handshake" in ops[1][1]


def test_a_data_port_beyond_loopback_needs_a_cluster(loaders: StartLoader, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*ASECTL, "loader", "run", str(WRAPPERS / "echo"), "--standalone", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ASE_HOME": str(tmp_path)},
        check=False,
    )
    assert proc.returncode != 0
    assert "no cluster secret to check callers against" in proc.stderr
    assert "--data-host 127.0.0.1" in proc.stderr


def test_a_gateway_on_the_same_host_uses_the_loaders_unix_socket(
    loaders: StartLoader, cluster: Cluster
) -> None:
    from ase_serving.gateway.transport import TransportContext, local_path
    from ase_serving.loader.wire_client import WireLoaderClient
    from ase_serving.protocol.items import DataItem

    service = unique("uds")
    loader = loaders(WRAPPERS / "echo", "--service", service, env=cluster.env)
    inst = wait_for(lambda: cluster.one(service), 20, "the loader registered", 0.05)
    path = str(inst.attrs["uds"])
    assert Path(path).exists() and Path(path).parent.stat().st_mode & 0o077 == 0  # this user's only
    context = TransportContext(attrs=lambda address: inst.attrs if address == inst.address else {})
    assert local_path(inst.address, context) == f"unix:{path}"
    other_host = {**inst.attrs, "host": "elsewhere/0"}
    assert local_path(inst.address, TransportContext(attrs=lambda _a: other_host)) is None

    async def call() -> Result:
        client = WireLoaderClient(f"unix:{path}")
        try:
            return await client.once(Request(sid="u1", items=[DataItem(key="text", data=b"by uds")]), 10)
        finally:
            await client.close()

    res = asyncio.run(call())
    assert res.code == 0 and res.items[0].data == b"by uds"
    loader.stop()
    assert not Path(path).exists()  # removed when the loader stops


def test_free_licences_are_reported_when_they_moved_enough() -> None:
    """Between heartbeats: every step near zero, a quarter of what is free further up."""
    from ase_serving.loader.registrar import worth_reporting

    assert worth_reporting(None, 5)  # never written
    assert not worth_reporting(4, 4)
    assert worth_reporting(4, 3) and worth_reporting(1, 0) and worth_reporting(0, 1) and worth_reporting(2, 1)
    assert not worth_reporting(120, 118) and not worth_reporting(118, 121)  # steady load on 128
    assert worth_reporting(120, 90) and worth_reporting(8, 6) and not worth_reporting(16, 15)
    assert worth_reporting(128, 0)  # every slot taken: at once
