"""Bench toy: answers every once request with its own data items (the engine costs next to nothing)."""

from __future__ import annotations

from typing import Any


def wrapperInit(config: dict[str, str]) -> int:
    return 0


def wrapperFini() -> int:
    return 0


def wrapperOnceExec(
    usrTag: str,
    params: dict[str, str],
    reqData: list[dict[str, Any]],
    respData: list[dict[str, Any]],
    psrIds: list[str],
    psrCnt: int,
) -> int:
    for item in reqData:
        respData.append(
            {"key": item["key"], "data": item["data"], "len": item["len"], "status": 3, "type": item["type"]}
        )
    return 0
