"""What authentication costs the gateway per request: each scheme's check on a real ASGI scope, in
process, against two baselines measured in the same run (no check, and parsing the ~1.1 KB body
every once request parses anyway).

    python bench/auth_verify.py                    # 200,000 calls per case, 5 rounds; about 1 minute
    python bench/auth_verify.py --calls 20000 --rounds 2       # a smoke run
    python bench/auth_verify.py --json out.json

Cases: ``--auth off`` (``NoAuth``), an API key header, an API key query parameter, an HMAC-SHA256
signature in headers (with a body's digest), the query form (base64 of the authorization, with
date and host), and the replay cache taking one new signature, with 1,000 consumers in the book.
The HMAC cases verify the same signature again and again, so they run without the replay cache
(``--allow-replays``); a gateway's real cost per signed request is an HMAC case plus the replay
cache's. The scope is what uvicorn hands the gateway for ``POST
/v1/private/echo`` from httpx (its headers included). Each case is timed in batches of 1,000 calls
with ``time.perf_counter_ns``; the figure is the median per call over the batches of all rounds,
rounds interleaved so that drift hits every case alike.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ase_serving.gateway.auth import KeyAuth, NoAuth
from ase_serving.gateway.consumer_book import ConsumerBook
from ase_serving.gateway.signatures import Replays
from ase_serving.protocol.signing import (
    HEADERS_NO_BODY,
    authorization,
    body_digest,
    signature,
    string_to_sign,
)
from ase_serving.store.consumers import new_credentials, record_for

HOST = "127.0.0.1:2392"
PATH = "/v1/private/echo"
BATCH = 1000


def scope(headers: dict[str, str], query: str = "") -> dict[str, Any]:
    base = {
        "host": HOST,
        "accept": "*/*",
        "accept-encoding": "gzip, deflate",
        "connection": "keep-alive",
        "user-agent": "python-httpx/0.28.1",
        "content-type": "application/json",
        "content-length": "1100",
    }
    base.update({k.lower(): v for k, v in headers.items()})
    return {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in base.items()],
        "client": ("127.0.0.1", 50000),
    }


def cases(consumers: int) -> dict[str, Callable[[], object]]:
    creds = [new_credentials() for _ in range(consumers)]
    book = ConsumerBook(record_for(c) for c in creds)
    auth = KeyAuth(book, replays=False)
    me = creds[consumers // 2]
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    body = orjson.dumps(
        {
            "header": {"app_id": me.app_id},
            "payload": {
                "text": {"encoding": "utf8", "status": 3, "text": base64.b64encode(b"x" * 800).decode()}
            },
        }
    )
    digest = body_digest(body)
    sig = signature(me.api_secret, string_to_sign(HOST, date, "POST", PATH, digest))
    origin = authorization(me.api_key, sig, "host date request-line digest")
    # The query form is a WebSocket's opening: no body.
    qsig = signature(me.api_secret, string_to_sign(HOST, date, "GET", PATH, x_nonce="n"))
    qorigin = authorization(me.api_key, qsig, HEADERS_NO_BODY)
    query = urlencode(
        {
            "authorization": base64.b64encode(qorigin.encode()).decode(),
            "date": date,
            "host": HOST,
            "x-nonce": "n",
        }
    )
    replays, now, seq = Replays(300.0), time.time(), iter(range(1 << 62))
    plain = scope({})
    by_key, by_key_query = scope({"X-Api-Key": me.api_key}), scope({}, f"apikey={me.api_key}")
    signed = scope({"Authorization": origin, "Date": date, "Digest": digest})
    signed_query = {**scope({}, query), "type": "websocket"}
    off = NoAuth()
    out: dict[str, Callable[[], object]] = {
        "baseline: no check (--auth off)": lambda: off.authenticate(plain, "echo"),
        "baseline: orjson.loads of the body": lambda: orjson.loads(body),
        "API key, header": lambda: auth.authenticate(by_key, "echo"),
        "API key, query": lambda: auth.authenticate(by_key_query, "echo"),
        "HMAC-SHA256, headers": lambda: auth.authenticate(signed, "echo"),
        "HMAC-SHA256, query": lambda: auth.authenticate(signed_query, "echo"),
        "replay cache: one new signature": lambda: replays.take(str(next(seq)), now, now),
    }
    for name, fn in out.items():  # every case must succeed, or the figures mean nothing
        if name.startswith(("API", "HMAC")):
            assert fn().app_id == me.app_id, name  # type: ignore[attr-defined]
    return out


def measure(calls: int, rounds: int, consumers: int) -> dict[str, float]:
    todo = cases(consumers)
    per_call: dict[str, list[float]] = {name: [] for name in todo}
    for _ in range(rounds):
        for name, fn in todo.items():
            for _ in range(calls // BATCH):
                start = time.perf_counter_ns()
                for _ in range(BATCH):
                    fn()
                per_call[name].append((time.perf_counter_ns() - start) / BATCH / 1000)
    return {name: statistics.median(v) for name, v in per_call.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200_000, help="calls per case per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--consumers", type=int, default=1000)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    result = measure(args.calls, args.rounds, args.consumers)
    base = result["baseline: no check (--auth off)"]
    parse = result["baseline: orjson.loads of the body"]
    print(f"{'case':<36} {'µs/call':>8} {'- no check':>11} {'x body parse':>13}")
    for name, us in result.items():
        print(f"{name:<36} {us:>8.2f} {us - base:>11.2f} {us / parse:>13.2f}")
    if args.json:
        doc = {
            "command": " ".join(sys.argv),
            "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "calls": args.calls,
            "rounds": args.rounds,
            "consumers": args.consumers,
            "us_per_call": result,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
