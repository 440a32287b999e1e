"""What Docker costs on a once request: the echo example served by ``asectl init --mode compose``
(etcd, LB, gateway and the echo loader in containers, the gateway's port published through Docker,
the gateway asking the LB service for each request) against the same components as local
processes: ``asectl init`` plus ``asectl loader run examples/echo`` (its gateway balances
in-process), and a second gateway on that cluster that asks an LB service, as the compose one
does. All with the first consumer's API key, measured one after the other.

    python bench/deploy_compose.py                  # 3 rounds of 8 s points after 2 s of warm-up; 3 minutes
    python bench/deploy_compose.py --seconds 2 --warmup 1 --rounds 1 --concurrency 1   # a smoke run
    python bench/deploy_compose.py --json out.json

Method as ``bench/gateway_once.py`` (its wrk script and CPU windows): the ~1.1 KB echo body; every
server process, the containers' (``docker update --cpuset-cpus``) and Docker's port proxies
included, on CPU 0, wrk on CPU 1; rounds interleaved so that drift hits both alike. Both clusters
run the LB as its own service, one gateway worker and the echo loader's own ``ase.toml`` (1 worker,
2 licences). Needs ``wrk`` (``scripts/system-deps --bench``), a Docker engine and the images
(``asectl loader build examples/echo`` after the framework and loader base images; see
docs/deploy-compose.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import loadgen
from gateway_auth import prepare
from gateway_once import HEADER, Row, measure, row_text, write_lua
from gateway_servers import (
    CLIENT_CPU,
    SERVER_CPU,
    finish,
    once_body,
    post_echo,
    run_header,
    run_main,
    taskset,
    text_bytes,
    until,
)

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "echo"
CONTAINERS = {"gateway": "ase_gateway_1", "lb": "ase_lb_1", "loader": "ase_echo_1", "config": "ase_etcd_1"}


def asectl(home: Path, *args: str, pin: bool = False, timeout: float = 900) -> str:
    cmd = [*taskset(SERVER_CPU, pin), sys.executable, "-m", "ase_serving.cli.main", *args]
    env = {**os.environ, "ASE_HOME": str(home)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"error: asectl {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def consumer(path: Path, text: bytes) -> tuple[bytes, dict[str, str]]:
    """The echo body under the first consumer's app id, and its API key header."""
    creds = json.loads(path.read_text())
    doc = json.loads(once_body(text))
    doc["header"]["app_id"] = creds["app_id"]
    return json.dumps(doc, separators=(",", ":")).encode(), {"X-Api-Key": str(creds["api_key"])}


Case = tuple[str, str, dict[str, int], Path]


@contextlib.contextmanager
def local_cluster(tmp: Path, port: int, pin: bool) -> Iterator[list[Case]]:
    """``asectl init`` (config centre, LB, gateway) and the echo loader, pinned to the server CPU;
    and a second gateway on that cluster that asks an LB service (``loadMini``) for each request,
    as the compose gateway does, where ``asectl init``'s gateway balances in-process."""
    home = tmp / "local"
    pin0 = taskset(SERVER_CPU, pin)
    loader = None
    servers: list[loadgen.LoaderServer] = []
    try:
        doc = json.loads(asectl(home, "init", "--gateway-port", str(port), "--json", pin=pin))
        pids = {c["name"]: int(c["pid"]) for c in doc["components"]}
        cmd = [*pin0, sys.executable, "-m", "ase_serving.cli.main", "loader", "run"]
        loader = subprocess.Popen(
            [*cmd, str(ECHO), "--port", "0"],
            env={**os.environ, "ASE_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        pids["loader"] = loader.pid
        region = json.loads((home / "cluster.json").read_text())["regions"]["default"]
        login = [
            "--config",
            region["address"],
            "--account",
            region["account"],
            "--password",
            region["password"],
        ]
        for cmd in (
            [*pin0, sys.executable, "-m", "ase_serving.lb", "--port", "0", "--strategy", "loadMini", *login],
            [*pin0, sys.executable, "-m", "ase_serving.gateway", "--port", "0", "--workers", "1", *login],
        ):
            if servers:  # the gateway asks the LB on its lean-wire port, from its ready line
                cmd += ["--lb", servers[0].line.rsplit(" lean wire on ", 1)[1]]
            server = loadgen.LoaderServer(cmd, None)
            servers.append(server)
            server.start(timeout_s=90.0)
        lb, gateway = servers
        assert lb.proc is not None and gateway.proc is not None
        via_lb = {"gateway": gateway.proc.pid, "lb service": lb.proc.pid, "loader": loader.pid}
        via_lb["config"] = pids["config"]
        creds = home / "credentials.json"
        yield [
            ("local", f"http://127.0.0.1:{port}", pids, creds),
            ("local, LB service", gateway.target, via_lb, creds),
        ]
    finally:
        for server in reversed(servers):
            server.stop()
        if loader is not None:
            loader.terminate()
            loader.wait(timeout=60)
        asectl(home, "down")


@contextlib.contextmanager
def compose_cluster(tmp: Path, port: int, config_port: int, pin: bool) -> Iterator[Case]:
    home, folder = tmp / "compose-home", tmp / "compose"
    try:
        asectl(home, "init", "--mode", "compose", "--dir", str(folder), "--gateway-port", str(port),
               "--config-port", str(config_port))  # fmt: skip
        pids = {}
        for name, container in CONTAINERS.items():
            if pin:
                docker("update", "--cpuset-cpus", str(SERVER_CPU), container)
            pids[name] = int(docker("inspect", "-f", "{{.State.Pid}}", container))
        for i, pid in enumerate(proxy_pids()):
            if pin:
                subprocess.run(["taskset", "-a", "-p", "-c", str(SERVER_CPU), str(pid)], check=True,
                               capture_output=True)  # fmt: skip
            pids[f"docker-proxy {i}"] = pid
        yield "compose", f"http://127.0.0.1:{port}", pids, folder / "credentials.json"
    finally:
        asectl(home, "down", "--volumes")


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def proxy_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "docker-proxy"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def main(argv: list[str] | None = None) -> int:
    from ase_serving.cluster.images import check_engine, free_port

    args = prepare(argv, __doc__)
    check_engine()
    info = loadgen.banner(args.quiet_wait)
    text = text_bytes(args.payload)
    print(f"servers on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU}", flush=True)
    out: dict[str, Any] = {**run_header(info), "seconds_per_point": args.seconds, "pinned": args.pin}
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ase-bench-compose-")))
        clusters = [
            *stack.enter_context(local_cluster(tmp, free_port(), args.pin)),
            stack.enter_context(compose_cluster(tmp, free_port(), free_port(), args.pin)),
        ]
        cases = []
        for name, url, pids, creds in clusters:
            body, key = consumer(creds, text)
            until(f"the {name} gateway", lambda u=url, b=body, k=key: post_echo(u, b, text, k), 120.0)
            cases.append((name, url, pids, write_lua(tmp / f"{name}.lua", body, key)))
        print(HEADER, flush=True)
        for c in args.levels:
            for _ in range(args.rounds):
                for name, url, pids, lua in cases:
                    r = measure(name, url, pids, lua, c, args)
                    if r.non2xx or r.socket_errors:
                        raise SystemExit(
                            f"error: {name}: {r.non2xx} non-2xx, {r.socket_errors} socket errors"
                        )
                    rows.append(r)
                    print(row_text(r), flush=True)
    out["points"] = [r.summary() for r in rows]
    out["medians"] = medians(rows, args.levels)
    print(f"\nmedians of {args.rounds} rounds")
    print("| conc. | case | req/s | vs local | vs local, LB service | p50 µs | p99 µs | server CPU µs/req |")
    print("|--:|---|--:|--:|--:|--:|--:|--:|")
    for m in out["medians"]:
        print(
            f"| {m['concurrency']} | {m['case']} | {m['rps']:,.0f} | {m['rps_pct_of_local']:.1f}% | "
            f"{m['rps_pct_of_lb_service']:.1f}% | "
            f"{m['p50_us']:,.0f} | {m['p99_us']:,.0f} | {m['server_cpu_us']:,.0f} |"
        )
    return finish(out, args.json)


def medians(rows: list[Row], levels: list[int]) -> list[dict[str, Any]]:
    out = []
    for c in levels:
        med: dict[str, dict[str, float]] = {}
        for name in ("local", "local, LB service", "compose"):
            rs = [r for r in rows if r.concurrency == c and r.name == name]
            med[name] = {
                "rps": statistics.median(r.rps for r in rs),
                "p50_us": statistics.median(r.wrk["p50_us"] for r in rs),
                "p99_us": statistics.median(r.wrk["p99_us"] for r in rs),
                "server_cpu_us": statistics.median(
                    1e6 * sum(r.window.proc_s.values()) / r.wrk["requests"] for r in rs
                ),
            }
        for name, m in med.items():
            pct = 100 * m["rps"] / med["local"]["rps"]
            via_lb = 100 * m["rps"] / med["local, LB service"]["rps"]
            out.append(
                {
                    "concurrency": c,
                    "case": name,
                    **m,
                    "rps_pct_of_local": round(pct, 1),
                    "rps_pct_of_lb_service": round(via_lb, 1),
                }
            )
    return out


if __name__ == "__main__":
    run_main(main)
