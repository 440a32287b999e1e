"""Bench toy: a CPU-bound engine. Each once call spins a pure-Python loop of ``iters`` steps (a request
parameter; the bench calibrates it to about 5 ms) while holding the GIL, then echoes its input.

The work is a fixed number of steps, not a fixed wall time, so two calls sharing one core take twice
as long: throughput can only grow with real cores.
"""

from __future__ import annotations

from typing import Any


def spin(iters: int) -> int:
    acc = 0
    for i in range(iters):
        acc = (acc + i * i) % 1_000_003
    return acc


def wrapperInit(config: dict[str, str]) -> int:
    return 0


def wrapperOnceExec(
    usrTag: str,
    params: dict[str, str],
    reqData: list[dict[str, Any]],
    respData: list[dict[str, Any]],
    psrIds: list[str],
    psrCnt: int,
) -> int:
    spin(int(params.get("iters", "100000")))
    for item in reqData:
        respData.append({"key": item["key"], "data": item["data"], "status": 3, "type": item["type"]})
    return 0
