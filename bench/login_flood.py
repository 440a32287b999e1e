"""What a flood of wrong passwords costs the embedded config centre, and its other clients.

    python bench/login_flood.py                     # 20 guessers, 15 s per case; about 1 minute
    python bench/login_flood.py --clients 5 --seconds 5    # a smoke run
    python bench/login_flood.py --json out.json

Three cases on one fresh centre each: no guessers (the baseline), guessers against the centre as
it runs (failed logins slowed per client), and guessers against a centre whose throttle never
engages (``--login-failures`` 10^9: what the centre did before, except that each guesser's checks
still run one at a time). Every guesser has its own address (127.0.0.2, .3, ...) and sends wrong
admin passwords as fast as the answers come, from a process of their own; meanwhile this process
reads an open key once every 20 ms with no account and times it. Reported per case: the centre's
CPU (user + system, % of one core), scrypt runs (``/v1/status`` ``logins``), the guessers'
answers by status, and the reads' p50 / p99 / max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

READY = "config centre serving on "


@contextmanager
def centre(data: Path, args: list[str]) -> Iterator[tuple[str, int]]:
    """A fresh embedded config centre on a free port: (url, pid)."""
    cmd = [sys.executable, "-m", "ase_serving.store.embedded", "--port", "0", "--data", str(data), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(READY):
            raise SystemExit(f"the config centre did not start: {line!r}")
        yield line[len(READY) :].split(" ", 1)[0], proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def _cpu(pid: int) -> float:
    """Seconds of CPU (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _guess(url: str, clients: int, seconds: float) -> dict[str, int]:
    answers: Counter[int] = Counter()
    end = time.monotonic() + seconds

    async def one(i: int) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{i + 2}")
        async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as client:
            while time.monotonic() < end:
                resp = await client.get("/v1/status", auth=("admin", f"guess-{i}"))
                answers[resp.status_code] += 1

    await asyncio.gather(*(one(i) for i in range(clients)))
    return {str(k): v for k, v in sorted(answers.items())}


def _case(name: str, clients: int, seconds: float, args: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, centre(Path(tmp) / "configd", args) as (url, pid):
        guessers = None
        if clients:
            guessers = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--guess",
                    url,
                    "--clients",
                    str(clients),
                    "--seconds",
                    str(seconds),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
        cpu0, t0 = _cpu(pid), time.monotonic()
        reads: list[float] = []
        with httpx.Client(base_url=url, timeout=30) as client:
            while time.monotonic() - t0 < seconds:
                start = time.perf_counter()
                client.get("/v1/get", params={"key": "/ase/config/p/g/s/1/n"}).raise_for_status()
                reads.append((time.perf_counter() - start) * 1e3)
                time.sleep(0.02)
        cpu = (_cpu(pid) - cpu0) / (time.monotonic() - t0) * 100
        answers = json.loads(guessers.communicate()[0]) if guessers is not None else {}
        logins = httpx.get(f"{url}/v1/status").json()["logins"]
    reads.sort()
    return {
        "case": name,
        "guessers": clients,
        "centre_cpu_percent": round(cpu, 1),
        "scrypt_runs": logins["checked"],
        "answers": answers,
        "read_ms": {
            "p50": round(statistics.median(reads), 2),
            "p99": round(reads[int(len(reads) * 0.99) - 1], 2),
            "max": round(reads[-1], 2),
            "n": len(reads),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--guess", help=argparse.SUPPRESS)  # the guessers' process
    args = ap.parse_args()
    if args.guess:
        print(json.dumps(asyncio.run(_guess(args.guess, args.clients, args.seconds))))
        return
    cases = [
        _case("no guessers", 0, args.seconds, []),
        _case("guessers, throttled", args.clients, args.seconds, []),
        _case("guessers, never throttled", args.clients, args.seconds, ["--login-failures", str(10**9)]),
    ]
    doc = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
        "cases": cases,
    }
    for c in cases:
        r = c["read_ms"]
        assert isinstance(r, dict)
        print(
            f"{c['case']:<28} cpu {c['centre_cpu_percent']:>5}%  scrypt {c['scrypt_runs']:>5}  "
            f"answers {c['answers']}  reads p50 {r['p50']} ms  p99 {r['p99']} ms  max {r['max']} ms"
        )
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
