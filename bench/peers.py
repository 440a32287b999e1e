"""ASE serving against its peers: the same echo once request through the bare Starlette + uvicorn
app, mosec, LitServe and our gateway -> loader (auth off, with an API key, with an HMAC signature,
and with the echo loader's default licences), interleaved in one run.

    python bench/peers.py                  # 3 rounds of 6 s points after 1 s of warm-up; about 8 minutes
    python bench/peers.py --quick          # a smoke run: 1 round of 1 s points; about 1.5 minutes
    python bench/peers.py --only bare,mosec,ours --concurrency 16 --json out.json

Method (design/PERFORMANCE.md): one ~1.2 KB JSON body in our public layout,
``{"header":{"app_id":"bench","uid":"u1"},"payload":{"text":{"encoding":"utf8","text":<1,120
chars of base64>}}}``; every server decodes the base64 and answers our gateway's response layout
with the text re-encoded. Every process of every server runs under ``taskset -c 0``, ``wrk`` (one
thread, ``gateway_once.py``'s Lua script) under ``taskset -c 1``; concurrency 1, 16 and 64; each
round measures every server at every concurrency, the server order rotated by one each round, and
the tables give the medians over the rounds. Access logs are off everywhere; one worker everywhere.

- **bare**: ``gateway_once.py --serve-bare`` (uvicorn, the gateway's event loop).
- **mosec** 0.9.8 and **LitServe** 0.2.19, each installed with pip in its own venv under
  ``--cache`` (default ``~/.cache/ase-bench/peers/<name>-<version>``; reused when there) with
  ``orjson``; their echo apps are written into a temp dir at run time. mosec: one ``Worker``
  (``num=1``) on ``/inference`` whose (de)serialisation is orjson, ``--log-level warning``.
  LitServe: a ``LitAPI`` with the defaults (``/predict``, one worker, one API server; FastAPI
  parses and answers the JSON), ``log_level="warning"``, ``access_log=False``. Each answer is
  checked before measuring: a peer that cannot be installed, or answers wrong, is reported and left
  out.
- **ours**: the embedded config centre, ``asectl loader run examples/echo --workers 1 --lic 128``
  and the gateway (one worker) with ``--auth off``; **ours-key** / **ours-hmac**: a second gateway
  of that cluster with ``--auth gateway``, called with ``X-Api-Key`` / an HMAC-SHA256
  ``Authorization`` (with the body's digest) made afresh before each point, the gateway run with
  ``--allow-replays`` (``gateway_auth.py``'s way); **ours-lic**: a
  second cluster whose echo loader has its default licences (``examples/echo/ase.toml``).
- "server CPU µs/req": user + system CPU of the server's process tree(s) in the window (ours: config
  centre + loader + gateway) divided by the requests; "other CPU": what CPUs 0 and 1 spent beyond
  that and wrk (the idle servers, other programs, softirqs).

Needs ``wrk`` (``scripts/system-deps --bench``) and, the first time, pip access to the package
registry for the peers. Every process it starts is stopped on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loadgen
from gateway_auth import add_consumer, signed
from gateway_once import Row, measure, require_wrk, write_lua
from gateway_servers import (
    CLIENT_CPU,
    ECHO,
    ONCE_ROUTE,
    SERVER_CPU,
    Cluster,
    bare_server,
    can_pin,
    finish,
    gateway_loop,
    install_signal_handlers,
    once_body,
    post_echo,
    run_header,
    run_main,
    text_bytes,
    until,
)
from peer_apps import PEERS, PeerError, install_peer, no_urls, peer_server, peer_versions

DEFAULT_CACHE = Path.home() / ".cache" / "ase-bench" / "peers"
UID = "u1"
#: "other CPU" (% of one core) above which a point counts as noisy
NOISY_PCT = 20.0


# -- the servers under test -----------------------------------------------------------------------
@dataclass
class Target:
    """One server as the bench calls it."""

    key: str
    label: str
    url: str
    route: str
    #: process trees whose CPU is the server's
    pids: dict[str, int]
    #: extra request headers, made afresh before each point (a signature's date)
    headers: Callable[[], dict[str, str]] = dict


KEYS = {
    "bare": "bare Starlette + uvicorn",
    "mosec": "mosec 0.9.8",
    "litserve": "LitServe 0.2.19",
    "ours": "ours, auth off (--lic 128)",
    "ours-key": "ours, API key",
    "ours-hmac": "ours, HMAC-SHA256",
    "ours-lic": "ours, auth off, default licences",
}


@dataclass
class Setup:
    targets: list[Target] = field(default_factory=list)
    #: key -> why it is not measured
    skipped: dict[str, str] = field(default_factory=dict)
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)


def checked(
    setup: Setup, target: Target, body: bytes, text: bytes, timeout_s: float = 60.0, wrong_s: float = 5.0
) -> bool:
    """Measure ``target`` only if it answers the echo correctly: polled until it does, for up to
    ``timeout_s``, or until it has answered wrong (HTTP 200, not the echo) for ``wrong_s``. False:
    it answers wrong or not at all (said, and noted in ``setup.skipped``)."""
    wrong_since: list[float] = []

    def check() -> str | None:
        problem = post_echo(target.url, body, text, target.headers(), route=target.route)
        if problem is not None and problem.startswith("wrong answer"):
            wrong_since.append(time.monotonic())
            if wrong_since[-1] - wrong_since[0] >= wrong_s:
                raise PeerError(f"{target.label} answers wrong: {problem}")
        return problem

    try:
        until(target.label, check, timeout_s)
    except (RuntimeError, PeerError) as exc:
        setup.skipped[target.key] = f"not measured: {exc}"
        print(f"NOT MEASURED {target.key}: {exc}", flush=True)
        return False
    setup.targets.append(target)
    return True


def start_peers(
    stack: contextlib.ExitStack, setup: Setup, args: argparse.Namespace, body: bytes, text: bytes
) -> None:
    appdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ase-bench-peers-")))
    for peer in PEERS:
        if peer.key not in args.only:
            continue
        info: dict[str, Any] = {"version": peer.version, "route": peer.route}
        setup.peers[peer.key] = info
        with contextlib.ExitStack() as mine:  # a peer that is not measured is stopped at once
            try:
                py = install_peer(peer, args.cache)
                info["venv"] = str(py.parent.parent)
                info["versions"] = peer_versions(py, peer)
                server = mine.enter_context(peer_server(peer, py, appdir, args.pin))
            except (PeerError, RuntimeError) as exc:
                info["status"] = setup.skipped[peer.key] = f"skipped: {no_urls(str(exc))}"
                print(f"NOT MEASURED {peer.key}: {info['status']}", flush=True)
                continue
            assert server.proc is not None
            target = Target(peer.key, peer.label, server.target, peer.route, {peer.key: server.proc.pid})
            if checked(setup, target, body, text):
                stack.enter_context(mine.pop_all())
        info["status"] = setup.skipped.get(peer.key, "measured")


def start_ours(
    stack: contextlib.ExitStack,
    setup: Setup,
    args: argparse.Namespace,
    body: bytes,
    text: bytes,
    gw_args: list[str],
) -> None:
    if {"ours", "ours-key", "ours-hmac"} & args.only:
        cluster = stack.enter_context(
            Cluster([(ECHO, ["--lic", "128"])], args.pin, [*gw_args, "--auth", "off"])
        )
        if "ours" in args.only:
            checked(setup, Target("ours", KEYS["ours"], cluster.url, ONCE_ROUTE, cluster.pids), body, text)
        if {"ours-key", "ours-hmac"} & args.only:
            # wrk resends one signed request: the HMAC case needs a gateway that takes replays.
            secured = cluster.add_gateway([*gw_args, "--auth", "gateway", "--allow-replays"])
            assert secured.proc is not None
            creds = add_consumer(cluster)
            # Each secured case counts its gateway, the loader and the config centre.
            pids = {**{k: v for k, v in cluster.pids.items() if k != "gateway"}, "gateway": secured.proc.pid}
            url = secured.target
            cases: list[tuple[str, Callable[[], dict[str, str]]]] = [
                ("ours-key", lambda: {"X-Api-Key": creds.api_key}),
                ("ours-hmac", lambda: signed(creds, url, body)),
            ]
            for key, headers in cases:
                if key in args.only:
                    checked(setup, Target(key, KEYS[key], url, ONCE_ROUTE, pids, headers), body, text)
    if "ours-lic" in args.only:
        # A cluster of its own: a loader of the same service on the first would share its calls.
        plain = stack.enter_context(Cluster([(ECHO, [])], args.pin, [*gw_args, "--auth", "off"]))
        checked(setup, Target("ours-lic", KEYS["ours-lic"], plain.url, ONCE_ROUTE, plain.pids), body, text)


# -- measuring ------------------------------------------------------------------------------------
def points(targets: list[Target], levels: list[int], rounds: int) -> Iterator[tuple[int, int, Target]]:
    """(round, concurrency, target) in measuring order: each round every target at every level, the
    target order rotated by one each round."""
    n = len(targets)
    for r in range(rounds):
        order = targets[r % n :] + targets[: r % n] if n else []
        for c in levels:
            for t in order:
                yield r, c, t


def cpu_us(row: Row) -> float:
    n = row.wrk["requests"]
    return 1e6 * sum(row.window.proc_s.values()) / n if n else 0.0


@dataclass
class Median:
    key: str
    concurrency: int
    rounds: int
    rps: float
    p50_us: float
    p99_us: float
    non_2xx: int
    socket_errors: int
    cpu_us: float
    other_pct: float


def medians(rows: list[tuple[int, Row]], targets: list[Target], levels: list[int]) -> list[Median]:
    out = []
    for c in levels:
        for t in targets:
            rs = [r for _, r in rows if r.name == t.key and r.concurrency == c]
            if not rs:
                continue
            out.append(
                Median(
                    t.key,
                    c,
                    len(rs),
                    statistics.median(r.rps for r in rs),
                    statistics.median(r.wrk["p50_us"] for r in rs),
                    statistics.median(r.wrk["p99_us"] for r in rs),
                    sum(r.non2xx for r in rs),
                    sum(r.socket_errors for r in rs),
                    statistics.median(cpu_us(r) for r in rs),
                    statistics.median(r.other_pct for r in rs),
                )
            )
    return out


# -- ratios and aims ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ratio:
    key: str
    what: str
    #: (target, concurrency, field) over (target, concurrency, field)
    num: tuple[str, int, str]
    den: tuple[str, int, str]
    #: the aim: ">=" or "<=" a bound; None: for information
    aim: tuple[str, float] | None = None


RATIOS = (
    Ratio(
        "ours_per_mosec_rps_c16",
        "c=16 req/s, ours ÷ mosec",
        ("ours", 16, "rps"),
        ("mosec", 16, "rps"),
        (">=", 1.0),
    ),
    Ratio(
        "ours_per_litserve_rps_c16",
        "c=16 req/s, ours ÷ LitServe",
        ("ours", 16, "rps"),
        ("litserve", 16, "rps"),
        (">=", 5.0),
    ),
    Ratio(
        "ours_per_mosec_p50_c1",
        "c=1 p50, ours ÷ mosec",
        ("ours", 1, "p50_us"),
        ("mosec", 1, "p50_us"),
        ("<=", 1.0),
    ),
    Ratio(
        "ours_default_lic_p99_per_p50_c64",
        "c=64 p99 ÷ p50, ours with default licences",
        ("ours-lic", 64, "p99_us"),
        ("ours-lic", 64, "p50_us"),
        ("<=", 2.0),
    ),
    Ratio(
        "api_key_per_auth_off_rps_c16",
        "c=16 req/s, API key ÷ auth off",
        ("ours-key", 16, "rps"),
        ("ours", 16, "rps"),
        (">=", 0.95),
    ),
    Ratio(
        "hmac_per_auth_off_rps_c16",
        "c=16 req/s, HMAC ÷ auth off",
        ("ours-hmac", 16, "rps"),
        ("ours", 16, "rps"),
    ),
    Ratio("ours_per_bare_rps_c16", "c=16 req/s, ours ÷ bare", ("ours", 16, "rps"), ("bare", 16, "rps")),
)


def ratio_values(meds: list[Median]) -> dict[str, float | None]:
    by = {(m.key, m.concurrency): m for m in meds}

    def get(ref: tuple[str, int, str]) -> float | None:
        m = by.get(ref[:2])
        return None if m is None else float(getattr(m, ref[2]))

    out: dict[str, float | None] = {}
    for q in RATIOS:
        num, den = get(q.num), get(q.den)
        out[q.key] = round(num / den, 3) if num is not None and den else None
    return out


def verdict(q: Ratio, value: float | None) -> str:
    if q.aim is None:
        return "-"
    if value is None:
        return "n/a (not measured)"
    op, bound = q.aim
    return "met" if (value >= bound if op == ">=" else value <= bound) else "MISSED"


# -- output ---------------------------------------------------------------------------------------
def point_line(r: int, rounds: int, row: Row, label: str) -> str:
    return (
        f"round {r + 1}/{rounds} c={row.concurrency:<3} {label:<34} {row.rps:>9,.0f} req/s  "
        f"p50 {row.wrk['p50_us']:>7,} µs  p99 {row.wrk['p99_us']:>8,} µs  non-2xx {row.non2xx}  "
        f"socket errors {row.socket_errors}  CPU {cpu_us(row):,.0f} µs/req  other CPU {row.other_pct:.0f}%"
    )


def print_tables(out: dict[str, Any], meds: list[Median], labels: dict[str, str]) -> None:
    secs, commit = out["seconds_per_point"], out["commit"]
    print(f"\n## Medians of {out['rounds']} rounds, {secs} s per point (commit {commit})\n")
    print(
        "| server | conc. | req/s | p50 µs | p99 µs | non-2xx | socket errors | server CPU µs/req |", end=""
    )
    print(" other CPU |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for m in meds:
        print(
            f"| {labels[m.key]} | {m.concurrency} | {m.rps:,.0f} | {m.p50_us:,.0f} | {m.p99_us:,.0f} | "
            f"{m.non_2xx} | {m.socket_errors} | {m.cpu_us:,.0f} | {m.other_pct:.0f}% |"
        )
    print("\n## Ratios and aims\n")
    print("| ratio | value | aim | |\n|---|--:|--:|---|")
    for q in RATIOS:
        v = out["ratios"][q.key]
        aim = f"{q.aim[0].replace('>=', '≥').replace('<=', '≤')} {q.aim[1]:g}" if q.aim else "-"
        print(f"| {q.what} | {'-' if v is None else f'{v:.3f}'} | {aim} | {verdict(q, v)} |")
    for key, why in out["skipped"].items():
        print(f"\nNOT MEASURED {key}: {why}")
    if out["noisy_points"]:
        print(
            f"\nNOISY: in {out['noisy_points']} of {len(out['points'])} points other programs used over "
            f"{NOISY_PCT:g} % of a CPU (the 'other CPU' column): compare ratios, rerun on a quiet machine"
        )


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=int, default=6, help="measured seconds per point (default 6)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up seconds before each point (default 1)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--concurrency", default="1,16,64", help="connections (default 1,16,64)")
    ap.add_argument("--only", default=",".join(KEYS), help=f"servers to run (default all: {','.join(KEYS)})")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 1 s points, no quiet wait")
    ap.add_argument(
        "--payload", type=int, default=840, help="text bytes (default 840 = 1,120 chars of base64)"
    )
    ap.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"the peers' venvs (default {DEFAULT_CACHE})"
    )
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin (default: pin)")
    ap.add_argument("--quiet-wait", type=float, default=15.0, help="wait up to this long for a quiet machine")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.rounds, args.quiet_wait = 1, 1, 1, 0.0
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.only = {k.strip() for k in args.only.split(",") if k.strip()}
    unknown = args.only - set(KEYS)
    if unknown:
        ap.error(f"--only: unknown {', '.join(sorted(unknown))} (known: {', '.join(KEYS)})")
    if args.seconds < 1 or args.rounds < 1 or not args.levels:
        ap.error("--seconds and --rounds must be at least 1, --concurrency not empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_wrk()
    install_signal_handlers()
    if args.pin and not can_pin():
        print("warning: taskset or a second CPU is missing: nothing is pinned", file=sys.stderr)
        args.pin = False
    loop, gw_args = gateway_loop(None)
    load_before = os.getloadavg()[0]
    info = loadgen.banner(args.quiet_wait)
    text = text_bytes(args.payload)
    body = once_body(text, uid=UID)
    print(
        f"load average (1 min) before: {load_before:.2f}; body {len(body)} bytes "
        f"({(len(text) + 2) // 3 * 4} chars of base64); servers on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU}"
        + ("" if args.pin else " (NOT pinned)")
        + f"; event loop {loop}",
        flush=True,
    )
    out: dict[str, Any] = {
        **run_header(info),
        "load_avg_1min_before": load_before,
        "body_bytes": len(body),
        "seconds_per_point": args.seconds,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "concurrency": args.levels,
        "pinned": args.pin,
        "loop": loop,
    }
    setup = Setup()
    rows: list[tuple[int, Row]] = []
    with contextlib.ExitStack() as stack:
        t0 = time.monotonic()
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ase-bench-wrk-")))
        if "bare" in args.only:
            bare = stack.enter_context(bare_server(args.pin, loop))
            assert bare.proc is not None
            checked(
                setup,
                Target("bare", KEYS["bare"], bare.target, ONCE_ROUTE, {"bare": bare.proc.pid}),
                body,
                text,
            )
        start_peers(stack, setup, args, body, text)
        start_ours(stack, setup, args, body, text, gw_args)
        order = {k: i for i, k in enumerate(KEYS)}
        setup.targets.sort(key=lambda t: order[t.key])
        plan = list(points(setup.targets, args.levels, args.rounds))
        print(
            f"servers up in {time.monotonic() - t0:.0f} s: "
            + ", ".join(f"{t.key} {t.url}{t.route}" for t in setup.targets)
            + f"\n{len(plan)} points of {args.warmup} + {args.seconds} s: about "
            f"{len(plan) * (args.warmup + args.seconds + 0.3) / 60:.1f} minutes\n",
            flush=True,
        )
        for r, c, t in plan:
            lua = write_lua(tmp / f"{t.key}.lua", body, t.headers())
            row = measure(t.key, t.url, t.pids, lua, c, args, route=t.route)
            rows.append((r, row))
            print(point_line(r, args.rounds, row, t.key), flush=True)
    out["load_avg_1min_after"] = os.getloadavg()[0]
    print(f"\nload average (1 min) after: {out['load_avg_1min_after']:.2f}")
    meds = medians(rows, setup.targets, args.levels)
    out["peers"] = setup.peers
    out["skipped"] = setup.skipped
    out["servers"] = {t.key: {"label": t.label, "url": t.url + t.route} for t in setup.targets}
    out["points"] = [{"round": r + 1, **row.summary()} for r, row in rows]
    out["medians"] = [vars(m) for m in meds]
    out["ratios"] = ratio_values(meds)
    out["aims"] = {q.key: verdict(q, out["ratios"][q.key]) for q in RATIOS if q.aim}
    out["noisy_points"] = sum(row.other_pct > NOISY_PCT for _, row in rows)
    print_tables(out, meds, KEYS)
    return finish(out, args.json)


if __name__ == "__main__":
    run_main(main)
