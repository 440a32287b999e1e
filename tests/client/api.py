"""One face for the sync and the async client, so every test runs against both (httpx's way).

``Api.once`` and ``Api.session`` do the same I/O through :class:`Client` or :class:`AsyncClient`
(each async call in its own event loop, with its own client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ase_serving.client import AsyncClient, Client, Result

#: A session script: ("send", payload, status) / ("end", payload) / ("recv",) steps, in order.
Step = tuple[Any, ...]


class Api:
    def __init__(self, kind: str, base_url: str, app_id: str = "test", **kwargs: Any) -> None:
        self.kind = kind
        self.args = (base_url, app_id)
        self.kwargs = kwargs

    def sync(self) -> Client:
        return Client(*self.args, **self.kwargs)

    def aio(self) -> AsyncClient:
        return AsyncClient(*self.args, **self.kwargs)

    def once(self, service: str, *args: Any, **kwargs: Any) -> Result:
        if self.kind == "sync":
            with self.sync() as client:
                return client.once(service, *args, **kwargs)

        async def go() -> Result:
            async with self.aio() as client:
                return await client.once(service, *args, **kwargs)

        return asyncio.run(go())

    def session(self, service: str, steps: Sequence[Step], params: Any = None) -> list[Result]:
        """Run ``steps``; the results read by "recv" steps, then every one still to come."""
        if self.kind == "sync":
            with self.sync() as client, client.session(service, params) as s:
                got = []
                for step in steps:
                    if step[0] == "send":
                        s.send(step[1], *step[2:])
                    elif step[0] == "end":
                        s.end(step[1])
                    else:
                        r = s.recv()
                        assert r is not None
                        got.append(r)
                return got + list(s)

        async def go() -> list[Result]:
            async with self.aio() as client, client.session(service, params) as s:
                got = []
                for step in steps:
                    if step[0] == "send":
                        await s.send(step[1], *step[2:])
                    elif step[0] == "end":
                        await s.end(step[1])
                    else:
                        r = await s.recv()
                        assert r is not None
                        got.append(r)
                return got + [r async for r in s]

        return asyncio.run(go())
