"""Shared by the tests of this folder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    """Run one awaitable to its end in a fresh event loop."""

    async def main() -> T:
        return await coro

    return asyncio.run(main())
