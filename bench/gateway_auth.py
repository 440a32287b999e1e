"""What authentication costs through the gateway: the same echo once request through two gateways of
one cluster, one with ``--auth off`` and one with ``--auth gateway``, the latter called with an API
key and with an HMAC-SHA256 signature, measured one after the other at each concurrency.

    python bench/gateway_auth.py                   # 3 rounds of 8 s points after 2 s of warm-up; 4 minutes
    python bench/gateway_auth.py --seconds 2 --warmup 1 --concurrency 1    # a smoke run
    python bench/gateway_auth.py --json out.json

Method as ``bench/gateway_once.py`` (its wrk script, its CPU windows): every server on CPU 0, wrk on
CPU 1, the ~1.1 KB echo body, one gateway worker each, the echo loader with ``--lic 128``. The
signature (with the body's digest) is made afresh before each point (the gateway accepts a date
within 300 s): wrk sends the same ``Authorization``, ``Date`` and ``Digest`` on every request, so
the secured gateway runs with ``--allow-replays`` (each signature is otherwise taken once) and
parses one date string per point where real clients send a new one each second (cached). The
replay cache itself is timed in process by ``bench/auth_verify.py``.
Needs ``wrk`` (``scripts/system-deps --bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import loadgen
from gateway_once import HEADER, Row, measure, require_wrk, row_text, write_lua
from gateway_servers import (
    CLIENT_CPU,
    ECHO,
    ONCE_ROUTE,
    SERVER_CPU,
    Cluster,
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

from ase_serving.client.signing import sign
from ase_serving.store import open_backend
from ase_serving.store.consumers import ConsumerStore, IssuedCredentials

APP_ID = "bench"  # the app id of gateway_servers.once_body


def add_consumer(cluster: Cluster) -> IssuedCredentials:
    async def go() -> IssuedCredentials:
        backend = open_backend(cluster.config, "admin", cluster.password)
        try:
            return await ConsumerStore(backend.config.kv, "default").add(APP_ID, name="bench")  # type: ignore[attr-defined]
        finally:
            await backend.close()

    return asyncio.run(go())


def signed(creds: IssuedCredentials, url: str, body: bytes) -> dict[str, str]:
    headers = sign(
        "POST", urlsplit(url).netloc, ONCE_ROUTE, creds.api_key, creds.api_secret, body=body, nonce=False
    )
    del headers["Host"]  # wrk sends its own, the same
    return headers


def parse_args(argv: list[str] | None, doc: str | None = __doc__) -> argparse.Namespace:
    """The options of this bench and of ``deploy_compose.py`` (``doc``: the bench's docstring)."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=8, help="measured seconds per point (default 8)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each point (default 2)")
    ap.add_argument("--concurrency", default="1,16", help="connections (default 1,16)")
    ap.add_argument("--payload", type=int, default=768, help="text bytes (default 768 = 1 KiB of base64)")
    ap.add_argument("--rounds", type=int, default=3, help="points per case and concurrency (default 3)")
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin (default: pin)")
    ap.add_argument("--quiet-wait", type=float, default=60.0, help="wait up to this long for a quiet machine")
    args = ap.parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",")]
    return args


def prepare(argv: list[str] | None, doc: str | None = __doc__) -> argparse.Namespace:
    """Options parsed, wrk there, signals handled, pinning off where it cannot be done."""
    args = parse_args(argv, doc)
    require_wrk()
    install_signal_handlers()
    if args.pin and not can_pin():
        print("warning: taskset or a second CPU is missing: nothing is pinned", file=sys.stderr)
        args.pin = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = prepare(argv)
    loop, gw_args = gateway_loop(None)
    info = loadgen.banner(args.quiet_wait)
    text = text_bytes(args.payload)
    body = once_body(text)
    print(f"servers on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU}; event loop {loop}", flush=True)
    out: dict[str, Any] = {**run_header(info), "seconds_per_point": args.seconds, "pinned": args.pin}
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ase-bench-auth-")))
        cluster = stack.enter_context(
            Cluster([(ECHO, ["--lic", "128"])], args.pin, [*gw_args, "--auth", "off"])
        )
        secured = cluster.add_gateway([*gw_args, "--auth", "gateway", "--allow-replays"])
        assert secured.proc is not None
        creds = add_consumer(cluster)
        key = {"X-Api-Key": creds.api_key}
        until("the open gateway", lambda: post_echo(cluster.url, body, text))
        until("the secured gateway", lambda: post_echo(secured.target, body, text, key))
        # Each case's window counts its gateway, the loader and the config centre (the other gateway,
        # idle meanwhile, shows as "other CPU").
        loaders = {k: v for k, v in cluster.pids.items() if k != "gateway"}
        cases = [
            ("--auth off", cluster.url, {"gateway": cluster.pids["gateway"], **loaders}, lambda: {}),
            ("API key", secured.target, {"gateway": secured.proc.pid, **loaders}, lambda: key),
            (
                "HMAC-SHA256",
                secured.target,
                {"gateway": secured.proc.pid, **loaders},
                lambda: signed(creds, secured.target, body),
            ),
        ]
        print(HEADER, flush=True)
        for c in args.levels:
            for _ in range(args.rounds):  # rounds interleaved, so that drift hits every case alike
                for name, url, pids, headers in cases:
                    lua = write_lua(tmp / "post.lua", body, headers())
                    r = measure(name, url, pids, lua, c, args)
                    if r.non2xx:
                        raise SystemExit(f"error: {name} answered {r.non2xx} non-2xx responses")
                    rows.append(r)
                    print(row_text(r), flush=True)
    out["points"] = [r.summary() for r in rows]
    out["medians"] = medians(rows, args.levels, [name for name, *_ in cases])
    print(f"\nmedians of {args.rounds} rounds")
    print(
        "| conc. | case | req/s | vs off | p50 µs | added p50 | gateway CPU µs/req | added "
        "| gateway ÷ loader CPU | added, normalised |"
    )
    print("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for m in out["medians"]:
        print(
            f"| {m['concurrency']} | {m['case']} | {m['rps']:.0f} | {m['rps_pct_of_off']:.1f}% | "
            f"{m['p50_us']:.0f} | {m['added_p50_us']:+.0f} | {m['gateway_cpu_us']:.0f} | "
            f"{m['added_gateway_cpu_us']:+.0f} | {m['gateway_per_loader']:.3f} | "
            f"{m['added_gateway_cpu_us_normalised']:+.0f} µs |"
        )
    return finish(out, args.json)


def medians(rows: list[Row], levels: list[int], names: list[str]) -> list[dict[str, Any]]:
    """Per concurrency and case: the median over the rounds, and the difference from the first case."""
    out = []
    for c in levels:
        med = {}
        for n in names:
            rs = [r for r in rows if r.concurrency == c and r.name == n]
            med[n] = {
                "rps": statistics.median(r.rps for r in rs),
                "p50_us": statistics.median(r.wrk["p50_us"] for r in rs),
                "gateway_cpu_us": statistics.median(r.cpu_us_per_req("gateway") for r in rs),
                # The loader does the same work in every case, so gateway ÷ loader CPU cancels what
                # this VM's speed does from one point to the next (both swing by up to 30 %).
                "gateway_per_loader": statistics.median(
                    r.cpu_us_per_req("gateway") / r.cpu_us_per_req("loader") for r in rs
                ),
                "loader_cpu_us": statistics.median(r.cpu_us_per_req("loader") for r in rs),
            }
        base = med[names[0]]
        for n in names:
            m = med[n]
            out.append(
                {
                    "concurrency": c,
                    "case": n,
                    **m,
                    "rps_pct_of_off": 100 * m["rps"] / base["rps"],
                    "added_p50_us": m["p50_us"] - base["p50_us"],
                    "added_gateway_cpu_us": m["gateway_cpu_us"] - base["gateway_cpu_us"],
                    "added_gateway_cpu_us_normalised": (m["gateway_per_loader"] - base["gateway_per_loader"])
                    * base["loader_cpu_us"],
                }
            )
    return out


if __name__ == "__main__":
    run_main(main)
