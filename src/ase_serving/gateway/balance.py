"""Which loader: the LB as the gateway uses it, and the wait for a free licence.

:class:`LocalPicker` runs a :class:`~ase_serving.lb.balancer.Balancer` in this process, fed from
the registry (the default: a pick costs microseconds); :class:`RemotePicker` asks an LB service
(several gateways sharing one view). Both pick, release, and list their nodes.

:class:`LicenceWaits` is how a request waits for a licence without spinning: whoever releases one
of (service, version) wakes the waiters of that pair; a waiter also looks again every
``poll`` seconds, since licences freed elsewhere (another gateway, a loader's report) ring no bell
here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any, Protocol

from ase_serving.lb.balancer import Balancer, NodeInfo
from ase_serving.lb.feed import RegistryFeed
from ase_serving.store.base import Registry

log = logging.getLogger("ase_serving.gateway")


class Picker(Protocol):
    async def pick(self, service: str, version: str, exclude: Collection[str] = ()) -> str: ...

    async def release(self, service: str, version: str, address: str) -> None: ...

    async def nodes(self) -> list[NodeInfo]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalPicker:
    """A Balancer in this process; fed by ``registry`` when there is one."""

    def __init__(self, strategy: str, ttl: float, registry: Registry | None) -> None:
        self.balancer = Balancer(strategy, ttl=ttl)
        self.feed = RegistryFeed.from_registry(self.balancer, registry) if registry is not None else None

    async def start(self) -> None:
        if self.feed is not None:
            await self.feed.start()

    async def pick(self, service: str, version: str, exclude: Collection[str] = ()) -> str:
        return self.balancer.pick(service, version, 1, exclude)[0]

    async def release(self, service: str, version: str, address: str) -> None:
        self.balancer.release(service, version, address)

    async def nodes(self) -> list[NodeInfo]:
        return self.balancer.nodes()

    def attrs(self, address: str) -> dict[str, Any]:
        """The registry attrs of the loader at ``address`` ({} when unknown)."""
        return self.feed.attrs(address) if self.feed is not None else {}

    async def close(self) -> None:
        if self.feed is not None:
            await self.feed.close()


class RemotePicker:
    """An LB service at ``address`` (``python -m ase_serving.lb``)."""

    def __init__(self, address: str) -> None:
        from ase_serving.lb.client import LbClient  # grpc: only for a gateway that asks an LB service

        self.client = LbClient(address)

    async def start(self) -> None:
        pass

    async def pick(self, service: str, version: str, exclude: Collection[str] = ()) -> str:
        return (await self.client.pick(service, version, 1, exclude))[0]

    async def release(self, service: str, version: str, address: str) -> None:
        await self.client.release(service, version, address)

    async def nodes(self) -> list[NodeInfo]:
        return await self.client.nodes()

    async def close(self) -> None:
        await self.client.close()


class LicenceWaits:
    """Wake-ups for requests waiting on a licence of (service, version)."""

    def __init__(self, poll: float = 0.05) -> None:
        self.poll = poll
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    def freed(self, service: str, version: str) -> None:
        """A licence of (service, version) was given back here: wake its waiters."""
        event = self._events.pop((service, version), None)
        if event is not None:
            event.set()

    async def wait(self, service: str, version: str, timeout: float) -> None:
        """Until a licence is freed here, ``poll`` seconds pass, or ``timeout`` runs out."""
        key = (service, version)
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
        # asyncio.TimeoutError: not the built-in TimeoutError before Python 3.11.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), min(timeout, self.poll))
