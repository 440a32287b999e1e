"""`asectl init` / `asectl down` with real background processes under a test's own $ASE_HOME."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.store.etcd_server import free_port, start_etcd
from tests.support import ASECTL, asectl

pytestmark = pytest.mark.timeout(120)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def wait_gone(pids: list[int], deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while any(_alive(p) for p in pids):
        assert time.monotonic() < end, f"still running: {[p for p in pids if _alive(p)]}"
        time.sleep(0.05)


def _kill_all(home: Path) -> None:
    for pid_file in (home / "run").glob("*.pid"):
        with contextlib.suppress(ValueError, OSError, ProcessLookupError, KeyError):
            pid = int(json.loads(pid_file.read_text())["pid"])
            if pid != os.getpid():
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """An ASE_HOME whose background processes are killed at teardown, whatever the test did."""
    home = tmp_path / "home"
    yield home
    _kill_all(home)


@pytest.fixture
def other_home(tmp_path: Path) -> Iterator[Path]:
    """A second ASE_HOME (another cluster on the same machine), cleaned up the same way."""
    home = tmp_path / "other"
    yield home
    _kill_all(home)


def test_init_status_init_again_down(tmp_path: Path, home: Path) -> None:
    config_port, lb_port, gw_port, wire_port = free_port(), free_port(), free_port(), free_port()
    # Stale pid files from a crashed earlier run: a dead pid, and a live pid that is not ours.
    (home / "run").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = {"url": "x", "log": "x", "started": 1.0}
    (home / "run" / "config.pid").write_text(json.dumps({**stale, "pid": int(done.stdout)}))
    (home / "run" / "lb.pid").write_text(
        json.dumps({**stale, "pid": os.getpid(), "marker": "ase_serving.lb"})
    )

    args = (
        "init",
        "--lb",
        "--config-port",
        str(config_port),
        "--lb-port",
        str(lb_port),
        "--lb-wire-port",
        str(wire_port),
        "--gateway-port",
        str(gw_port),
    )
    args += ("--json",)
    proc = asectl(*args, home=home)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    url, lb, gw = f"http://127.0.0.1:{config_port}", f"127.0.0.1:{lb_port}", f"http://127.0.0.1:{gw_port}"
    comps = doc.pop("components")
    consumer = doc.pop("consumer")
    assert doc == {
        "mode": "local",
        "address": url,
        "account": "admin",
        "gateway_account": "gateway",
        "lb": lb,
        "settings": str(home / "cluster.json"),
    }
    assert consumer["new"] and consumer["credentials"] == str(home / "credentials.json")
    assert [(c["name"], c["url"], c["started"]) for c in comps] == [
        ("config", url, True),
        ("lb", lb, True),
        ("gateway", gw, True),
    ]
    pids = [c["pid"] for c in comps]
    assert all(_alive(p) for p in pids) and os.getpid() not in pids
    for c in comps:
        assert Path(c["log"]).parent == home / "logs" and (home / "run" / f"{c['name']}.pid").is_file()
    # The LB's lean-wire port (what a gateway's --lb names) is the one asked for.
    assert f"; lean wire on 127.0.0.1:{wire_port}" in Path(comps[1]["log"]).read_text()
    # The settings hold what later commands need, readable by the owner only.
    assert stat.S_IMODE((home / "cluster.json").stat().st_mode) == 0o600
    entry = json.loads((home / "cluster.json").read_text())["regions"]["default"]
    assert entry["password"] == (home / "configd" / "admin.password").read_text().strip()
    assert entry["components"] == {"config": url, "lb": lb, "gateway": gw}
    # The gateway and the LB run with the role gateway: they read consumer secrets, write nothing.
    gw_password = home / "configd" / "gateway.password"
    assert stat.S_IMODE(gw_password.stat().st_mode) == 0o600
    gw_auth = ("gateway", gw_password.read_text().strip())
    creds = json.loads((home / "credentials.json").read_text())
    key = f"/ase/consumers/default/{creds['app_id']}"
    record = httpx.get(f"{url}/v1/get", params={"key": key}, auth=gw_auth).json()["entry"]
    assert json.loads(base64.b64decode(record["value"]))["secret"] == creds["api_secret"]
    put = {"puts": [{"key": "/ase/config/x", "value": ""}]}
    assert httpx.post(f"{url}/v1/txn", json=put, auth=gw_auth).status_code == 403
    for c in comps[1:]:  # the LB and the gateway
        assert b"ASE_CONFIG_ACCOUNT=gateway" in Path(f"/proc/{c['pid']}/environ").read_bytes().split(b"\0")
    # ... and the gateway takes the consumer init made (a record without its secret it would not).
    deadline = time.monotonic() + 20
    while (health := httpx.get(f"{gw}/health").json())["auth"]["consumers"] != 1:
        assert time.monotonic() < deadline, health
        time.sleep(0.05)
    assert health["problems"] == {}

    status = asectl("cluster", "status", "--json", home=home)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == {
        "components": [
            {"name": "config", "url": url, "healthy": True},
            {"name": "lb", "url": lb, "healthy": True},
            {"name": "gateway", "url": gw, "healthy": True},
        ],
        "services": [],
        "problems": {},
    }
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    assert asectl("config", "upload", notes, "--service", "s", "--version", "1", home=home).returncode == 0

    # Again: nothing new starts; the same processes are reported.
    again = asectl(*args, home=home)
    assert again.returncode == 0, again.stderr
    assert [(c["pid"], c["started"]) for c in json.loads(again.stdout)["components"]] == [
        (pids[0], False),
        (pids[1], False),
        (pids[2], False),
    ]

    down = asectl("down", home=home)
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines() == [
        f"stopped gateway (pid {pids[2]}, {gw})",
        f"stopped lb (pid {pids[1]}, {lb})",
        f"stopped config (pid {pids[0]}, {url})",
    ]
    wait_gone(pids)
    assert list((home / "run").glob("*.pid")) == []
    proc = asectl("cluster", "status", "--json", home=home)
    assert proc.returncode == 1
    assert [c["healthy"] for c in json.loads(proc.stdout)["components"]] == [False, False, False]
    nothing = asectl("down", home=home)
    assert nothing.returncode == 0
    assert nothing.stdout == "nothing to stop: no local cluster runs under this ASE_HOME\n"


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line after init's "starting the local cluster ..." (no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[:-1] == ["starting the local cluster ..."], proc.stderr
    return lines[-1]


def test_init_on_a_taken_port_names_who_holds_it_and_leaves_nothing_running(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = asectl("init", "--config-port", str(port), "--no-gateway", home=home)
    assert proc.returncode == 1
    line = _last_line(proc)
    # The holder is this test's own process: its pid and command line are named.
    assert line.startswith(
        f"error: cannot start the config centre: port {port} is taken by pid {os.getpid()} (`"
    )
    # (under pytest-xdist this process is an execnet worker, not `pytest`: name its own program)
    program = Path(Path(f"/proc/{os.getpid()}/cmdline").read_bytes().split(b"\0")[0].decode()).name
    assert program in line and line.endswith(", or choose another port with --config-port")
    assert list((home / "run").glob("*.pid")) == []
    assert not (home / "cluster.json").exists()


def test_init_never_takes_another_clusters_gateway_for_its_own(home: Path, other_home: Path) -> None:
    """Two clusters on one machine: B's gateway dies, A's gateway takes B's port. Then B's status
    must not report A's gateway as B's, and B's init must fail with one line naming A's gateway
    (pid, ASE_HOME) instead of printing "started"."""
    first = asectl("init", "--config-port", "0", "--gateway-port", "0", "--json", home=home)
    assert first.returncode == 0, first.stderr
    b = {c["name"]: c for c in json.loads(first.stdout)["components"]}
    port = int(b["gateway"]["url"].rsplit(":", 1)[1])
    os.killpg(b["gateway"]["pid"], signal.SIGKILL)  # B's gateway dies (pid file left behind)
    wait_gone([b["gateway"]["pid"]])

    other = asectl("init", "--config-port", "0", "--gateway-port", str(port), "--json", home=other_home)
    assert other.returncode == 0, other.stderr
    a_gateway = {c["name"]: c for c in json.loads(other.stdout)["components"]}["gateway"]
    assert a_gateway["url"] == b["gateway"]["url"]
    assert httpx.get(f"{a_gateway['url']}/health").status_code == 200  # it answers, but for A

    status = asectl("cluster", "status", "--json", home=home)
    assert status.returncode == 1
    comps = {c["name"]: c for c in json.loads(status.stdout)["components"]}
    assert comps["config"]["healthy"] is True and comps["gateway"]["healthy"] is False
    why = comps["gateway"]["error"]
    assert why.startswith(
        f"this cluster's gateway is not running and does not answer at {b['gateway']['url']}: "
    )
    assert f"pid {a_gateway['pid']} (`" in why and f"ASE_HOME={other_home}" in why
    text = asectl("cluster", "status", home=home)
    assert text.returncode == 1 and "DOWN" in text.stdout and "not running" in text.stdout

    again = asectl("init", "--config-port", "0", "--gateway-port", str(port), home=home)
    assert again.returncode == 1
    assert "started" not in again.stdout
    line = _last_line(again)
    assert line.startswith(
        f"error: cannot start the gateway: port {port} is taken by pid {a_gateway['pid']} (`"
    )
    assert line.endswith(
        f", ASE_HOME={other_home}); `ASE_HOME={other_home} asectl down` stops that cluster, "
        "or choose another port with --gateway-port"
    )
    assert not (home / "run" / "gateway.pid").exists()
    # B's config centre (already running) is left as it was; A is untouched.
    assert _alive(b["config"]["pid"]) and _alive(a_gateway["pid"])
    # With no pid file left to compare, the config centre the gateway reports tells them apart.
    status = asectl("cluster", "status", "--json", home=home)
    assert status.returncode == 1
    gateway = {c["name"]: c for c in json.loads(status.stdout)["components"]}["gateway"]
    a_config = json.loads((other_home / "cluster.json").read_text())["regions"]["default"]["address"]
    assert gateway["healthy"] is False
    assert gateway["error"].startswith(
        f"what answers at {b['gateway']['url']} serves the config centre {a_config}, not this "
        f"cluster's ({b['config']['url']}): pid {a_gateway['pid']} (`"
    )
    assert asectl("down", home=other_home).returncode == 0
    assert asectl("down", home=home).returncode == 0


def test_a_start_whose_answer_comes_from_another_process_fails(home: Path) -> None:
    """The check after the start: the component is healthy, but the pid that answered is not the
    started process nor its child (a race for the port): the start fails and is undone."""
    from ase_serving.cluster.local import Component, LocalCluster, LocalError

    comp = Component(
        "fake",
        "fake service",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        "http://127.0.0.1:9",
        healthy=lambda _url: True,
        marker="time.sleep",
        owner=lambda _url: os.getpid(),
    )
    with pytest.raises(LocalError) as failed:
        LocalCluster(home).start(comp)
    started = int(str(failed.value).rsplit("(pid ", 1)[1].rstrip(")"))
    assert str(failed.value) == (
        f"cannot start the fake service: what answers at http://127.0.0.1:9 is pid {os.getpid()}, "
        f"not the process started (pid {started})"
    )
    wait_gone([started])
    assert not (home / "run" / "fake.pid").exists()


def test_init_against_an_existing_etcd(tmp_path: Path, home: Path) -> None:
    with start_etcd(tmp_path / "etcd", auth=True) as etcd:
        assert etcd.password is not None
        lb_port = free_port()
        base = (
            "init",
            "--lb",
            "--config",
            etcd.address,
            "--account",
            "root",
            "--lb-port",
            str(lb_port),
            "--lb-wire-port",
            str(free_port()),
            "--no-gateway",
        )
        proc = asectl(*base, "--password", "wrong", home=home)
        assert proc.returncode == 1 and "refused account 'root'" in proc.stderr
        assert list((home / "run").glob("*.pid")) == []

        proc = asectl(*base, "--password", etcd.password, "--json", home=home)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert (doc["address"], doc["account"]) == (etcd.address, "root")
        assert [c["name"] for c in doc["components"]] == ["lb"]  # no embedded centre started
        assert not (home / "configd").exists()

        status = asectl("cluster", "status", "--json", home=home)
        assert status.returncode == 0, status.stderr
        assert [(c["name"], c["url"]) for c in json.loads(status.stdout)["components"]] == [
            ("config", etcd.address),
            ("lb", f"127.0.0.1:{lb_port}"),
        ]
        notes = tmp_path / "notes.txt"
        notes.write_text("hi")
        assert (
            asectl("config", "upload", notes, "--service", "s", "--version", "1", home=home).returncode == 0
        )
        assert etcd.etcdctl("get", "--prefix", "--keys-only", "/ase/config/").split() == [
            "/ase/config/default/default/s/1/notes.txt"
        ]

        down = asectl("down", home=home)
        assert down.returncode == 0 and down.stdout.startswith("stopped lb ")
        wait_gone([doc["components"][0]["pid"]])


def test_init_on_free_ports_reports_the_ports_chosen(home: Path) -> None:
    """Without --lb, init starts what a local cluster uses: its gateway balances in its own process."""
    proc = asectl("init", "--config-port", "0", "--gateway-port", "0", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    urls = {c["name"]: c["url"] for c in doc["components"]}
    assert set(urls) == {"config", "gateway"} and doc["lb"] is None
    assert urls["gateway"].startswith("http://127.0.0.1:") and not urls["gateway"].endswith(":0")
    assert urls["config"].startswith("http://127.0.0.1:") and not urls["config"].endswith(":0")
    assert not (home / "run" / "lb.pid").exists()
    status = asectl("cluster", "status", "--json", home=home)
    assert status.returncode == 0, status.stderr
    assert {c["name"]: (c["url"], c["healthy"]) for c in json.loads(status.stdout)["components"]} == {
        "config": (urls["config"], True),
        "gateway": (urls["gateway"], True),
    }
    assert asectl("down", home=home).returncode == 0


def test_a_loader_run_against_init_is_served_by_its_gateway(home: Path) -> None:
    import httpx

    from examples.support import example_dir
    from tests.support import read_ready_line, stop_group

    proc = asectl("init", "--config-port", "0", "--gateway-port", "0", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    gateway = {c["name"]: c["url"] for c in json.loads(proc.stdout)["components"]}["gateway"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASE_")}
    run = subprocess.Popen(
        [*ASECTL, "loader", "run", str(example_dir("echo")), "--port", "0"],
        env={**env, "ASE_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        first = read_ready_line(run, lambda line: " serving on " in line, 60)
        assert run.stdout is not None  # the three lines come in one write: already buffered
        api, docs = run.stdout.readline(), run.stdout.readline()
        address = first.split(" serving on ", 1)[1].split(" ", 1)[0]
        assert api.split() == ["api", f"{gateway}/v1/private/echo", "(POST)"]
        assert docs.split() == ["docs", f"{gateway}/docs?service=echo"]

        def status() -> dict[str, object]:
            out = asectl("cluster", "status", "--json", home=home)
            doc: dict[str, object] = json.loads(out.stdout)
            return doc

        def registered() -> bool:
            services = status()["services"]
            return any(i["address"] == address for s in services for i in s["instances"])  # type: ignore[attr-defined, index]

        end = time.monotonic() + 20
        while not registered():
            assert time.monotonic() < end, status()
            time.sleep(0.1)
        doc = status()
        assert {"name": "gateway", "url": gateway, "healthy": True} in doc["components"]  # type: ignore[operator]
        (echo,) = doc["services"]  # type: ignore[misc]
        assert (
            echo["serviceId"] == "echo" and echo["routes"] == ["/v1/private/echo"] and echo["schema"] is True
        )
        assert echo["urls"] == [f"{gateway}/v1/private/echo"]
        assert [(i["address"], i["lic_total"]) for i in echo["instances"]] == [(address, 2)]
        # init made a first consumer; its credentials are in ASE_HOME, readable by the owner only.
        made = json.loads(proc.stdout)["consumer"]
        creds_file = home / "credentials.json"
        assert made == {"app_id": made["app_id"], "credentials": str(creds_file), "new": True}
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        creds = json.loads(creds_file.read_text())
        assert creds["app_id"] == made["app_id"] and len(creds["api_key"]) == 32
        body = {
            "header": {"app_id": creds["app_id"]},
            "payload": {"text": {"encoding": "utf8", "text": "aGk="}},
        }
        key = {"X-Api-Key": creds["api_key"]}
        end = time.monotonic() + 20
        while (resp := httpx.post(f"{gateway}/v1/private/echo", json=body, headers=key)).status_code != 200:
            assert time.monotonic() < end, resp.text
            time.sleep(0.1)
        assert resp.json()["payload"]["echo"]["text"] == "aGk="
        # Authentication is on by default.
        assert httpx.post(f"{gateway}/v1/private/echo", json=body).json()["header"]["code"] == 10401
        again = asectl("init", "--config-port", "0", "--gateway-port", "0", "--json", home=home)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["consumer"] == {**made, "new": False}
        assert json.loads(creds_file.read_text()) == creds
    finally:
        stop_group(run)
    assert asectl("down", home=home).returncode == 0
