"""How the gateway reaches a loader: transports registered by name, each offering once, session, close.

* ``lean`` (the default): the loader's data port, the lean wire (:mod:`ase_serving.wire`), one
  persistent connection per loader with calls multiplexed on it.
* ``grpc``: the loader's gRPC interop port (the address a loader registers as ``grpc`` in its
  registry attrs; else the address itself).
* ``inprocess``: an :class:`~ase_serving.loader.host.EngineHost` in this process, for fast
  gateway tests: no process, no socket, the same results.

A transport is built once per gateway process with a :class:`TransportContext` and keeps its own
connections. :func:`register_transport` adds one, as the config-centre backends are registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ase_serving import errors
from ase_serving.loader.host import EngineHost, EngineSession
from ase_serving.loader.wire_client import SecretSource, SessionLimits, WireLoaderClient, WireSession
from ase_serving.protocol.items import DataItem, Request, Result, Status


class LoaderSession(Protocol):
    """One open session on a loader (see :class:`~ase_serving.loader.wire_client.WireSession`)."""

    @property
    def ended(self) -> bool: ...

    async def open(self) -> None: ...

    async def refused(self) -> int:
        """After :meth:`open`: the code with which the loader refused the session at once (10110
        every licence busy, 11503 unreachable or draining), else 0 (taken, or a transport that
        cannot tell before the first result)."""
        ...

    async def send(self, status: int, items: Iterable[DataItem] = ()) -> None: ...

    async def recv(self) -> Result | None: ...

    async def close(self) -> None: ...


class LoaderTransport(Protocol):
    async def once(self, address: str, req: Request, timeout: float | None) -> Result: ...

    def lost(self, address: str) -> bool:
        """Whether the connection to ``address`` is down now (the loader itself went away)."""
        ...

    def session(self, address: str, first: Request, timeout: float | None) -> LoaderSession: ...

    async def close(self) -> None: ...


@dataclass
class TransportContext:
    """What a transport may need from its gateway."""

    #: The cluster's secret, for loaders whose data port asks for it (None: none known).
    secret: SecretSource | None = None
    #: A registered loader's attrs by address (e.g. ``grpc``), {} when unknown.
    attrs: Callable[[str], dict[str, Any]] = field(default=lambda _address: {})
    #: TLS towards loaders' data ports over TCP (None: plain TCP).
    tls: ssl.SSLContext | None = None
    #: For ``inprocess``: the engine hosts by address.
    hosts: dict[str, EngineHost] = field(default_factory=dict)


_TRANSPORTS: dict[str, Callable[[TransportContext], LoaderTransport]] = {}


def register_transport(name: str, factory: Callable[[TransportContext], LoaderTransport]) -> None:
    _TRANSPORTS[name] = factory


def transport_names() -> list[str]:
    return sorted(_TRANSPORTS)


def make_transport(name: str, context: TransportContext | None = None) -> LoaderTransport:
    factory = _TRANSPORTS.get(name)
    if factory is None:
        raise ValueError(f"unknown loader transport {name!r}: use one of {', '.join(transport_names())}")
    return factory(context or TransportContext())


class _PerAddress:
    """A client per loader address, closed together."""

    def __init__(self, make: Callable[[str], Any]) -> None:
        self._make = make
        self._clients: dict[str, Any] = {}

    def client(self, address: str) -> Any:
        client = self._clients.get(address)
        if client is None:
            client = self._clients[address] = self._make(address)
        return client

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            with contextlib.suppress(Exception):  # a dead loader must not stop closing the rest
                await client.close()


class LeanTransport(_PerAddress):
    """The data port; its Unix socket instead of TCP when the loader runs on this host, and its
    workers' own sockets for once calls when it registered them (:class:`_Direct`)."""

    def __init__(self, context: TransportContext) -> None:
        self.context = context

        def make(address: str) -> Any:
            local = local_path(address, context)
            if local is not None:  # this host's Unix socket: no TLS there
                return WireLoaderClient(local, secret=context.secret)
            return WireLoaderClient(address, secret=context.secret, tls=context.tls)

        super().__init__(make)
        self._direct: dict[str, _Direct | None] = {}
        #: Loaders found gone after a direct call's worker died (:meth:`lost`).
        self._gone: set[str] = set()

    async def once(self, address: str, req: Request, timeout: float | None) -> Result:
        try:
            direct = self._direct[address]
        except KeyError:
            direct = self._direct[address] = _Direct.of(address, self.context)
        if direct is not None:
            answer = await direct.once(req, timeout)
            if answer is not None:
                if answer.code == errors.WORKER_DIED and not await _listening(direct.loader):
                    self._gone.add(address)  # the whole loader went away, not one worker
                return answer
            if direct.all_down():  # restarting, or a loader registered anew: look again later
                self.forget(address)
        result: Result = await self.client(address).once(req, timeout)
        self._gone.discard(address)
        return result

    def session(self, address: str, first: Request, timeout: float | None) -> LoaderSession:
        try:
            direct = self._direct[address]
        except KeyError:
            direct = self._direct[address] = _Direct.of(address, self.context)
        if direct is None:
            session: LoaderSession = self.client(address).session(first, timeout)
            return session
        return _DirectSession(direct, first, timeout, lambda: self.client(address).session(first, timeout))

    def lost(self, address: str) -> bool:
        if address in self._gone:
            return True
        client = self._clients.get(address)
        return client is not None and not client.connected

    def forget(self, address: str) -> None:
        """The loader's registration changed: look at its direct sockets again on the next call."""
        direct = self._direct.pop(address, None)
        if direct is not None:
            asyncio.get_running_loop().create_task(direct.close())

    async def close(self) -> None:
        directs, self._direct = self._direct, {}
        for direct in directs.values():
            if direct is not None:
                await direct.close()
        await super().close()


class _Direct:
    """Once calls and sessions straight to the workers of a loader on this host (their own Unix
    sockets, registered as ``direct``), round robin, skipping a worker that is full, restarting
    or gone.

    A worker's 10110 (or 11503 while it drains) sends the call or the session to the next
    worker; when none of them takes it (all full, all restarting) :meth:`once` and
    :meth:`session` return None and the loader's data port gets it, whose front answers as
    always. A worker that died with the call answers 10911 as through the front (never retried:
    it may have run). The loader's limits are kept here (the front is not on the way): its
    ``once_timeout`` (the shorter of it and the caller's deadline) and, for sessions, its
    ``read_timeout`` and ``session_timeout``, each 10114 with the front's message.
    """

    #: Seconds a worker whose socket refused a connection or died is left alone.
    BACKOFF_S = 0.5

    def __init__(
        self,
        loader: str,
        paths: list[str],
        once_timeout: float | None,
        secret: Any,
        limits: SessionLimits | None = None,
    ) -> None:
        #: The loader's own Unix socket (its front).
        self.loader = loader
        self.clients = [WireLoaderClient(f"unix:{p}", secret=secret) for p in paths]
        self.once_timeout = once_timeout
        #: The loader's session limits (None: it registered none, its sessions go to the front).
        self.limits = limits
        self._next = 0
        self._down_until = [0.0] * len(paths)

    @classmethod
    def of(cls, address: str, context: TransportContext) -> _Direct | None:
        attrs = context.attrs(address)
        paths = attrs.get("direct")
        loader = local_path(address, context)
        if loader is None or not isinstance(paths, list) or not paths:
            return None
        timeout = attrs.get("once_timeout")
        read, total = attrs.get("read_timeout"), attrs.get("session_timeout")
        return cls(
            loader.removeprefix("unix:"),
            [str(p) for p in paths],
            float(timeout) if timeout else None,
            context.secret,
            SessionLimits(float(read), float(total)) if read and total else None,
        )

    def _workers(self) -> Iterator[tuple[int, WireLoaderClient]]:
        """The workers to try, round robin from the next one, without those left alone now."""
        now = asyncio.get_running_loop().time()
        n = len(self.clients)
        for _ in range(n):
            i = self._next
            self._next = (i + 1) % n
            if self._down_until[i] <= now:
                yield i, self.clients[i]

    def _down(self, i: int) -> None:
        self._down_until[i] = asyncio.get_running_loop().time() + self.BACKOFF_S

    async def once(self, req: Request, timeout: float | None) -> Result | None:
        if self.once_timeout and (timeout is None or self.once_timeout < timeout):
            timeout = self.once_timeout
        for i, client in self._workers():
            result: Result = await client.once(req, timeout)
            if result.code == errors.NO_LICENCE:
                continue  # this worker is full: the next one
            if result.code == errors.NO_LOADER and not client.connected:
                self._down(i)  # restarting, or gone
                continue
            if result.code == errors.WORKER_DIED:
                self._down(i)
            return result
        return None

    async def session(self, first: Request, timeout: float | None) -> WireSession | None:
        """A session opened on a worker that took it (its first answer is not a refusal), or
        None when none did."""
        if self.limits is None:
            return None
        for i, client in self._workers():
            session = client.session(first, timeout, self.limits)
            try:
                code = await session.answered()
            except BaseException:  # cancelled (the client left): the worker must not keep it
                await session.close()
                raise
            if code == errors.NO_LICENCE or code == errors.NO_LOADER:
                await session.close()
                if not client.connected:
                    self._down(i)  # restarting, or gone
                continue
            return session
        return None

    def all_down(self) -> bool:
        now = asyncio.get_running_loop().time()
        return all(until > now for until in self._down_until)

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()


class _DirectSession:
    """A session of a loader with direct sockets: on one of its workers when one takes it, else
    through the loader's data port (``fallback``)."""

    def __init__(
        self,
        direct: _Direct,
        first: Request,
        timeout: float | None,
        fallback: Callable[[], LoaderSession],
    ) -> None:
        self._direct = direct
        self._first = first
        self._timeout = timeout
        self._fallback = fallback
        self._session: LoaderSession | None = None

    @property
    def ended(self) -> bool:
        return self._session is not None and self._session.ended

    async def _opened(self) -> LoaderSession:
        session = self._session
        if session is None:
            session = await self._direct.session(self._first, self._timeout)
            if session is None:
                session = self._fallback()
            self._session = session
            await session.open()
            # From now on straight to the session (no layer per frame).
            self.send = session.send  # type: ignore[method-assign]
            self.recv = session.recv  # type: ignore[method-assign]
        return session

    async def open(self) -> None:
        await self._opened()

    async def refused(self) -> int:
        return await (await self._opened()).refused()

    async def send(self, status: int, items: Iterable[DataItem] = ()) -> None:
        await (await self._opened()).send(status, items)

    async def recv(self) -> Result | None:
        return await (await self._opened()).recv()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _listening(path: str) -> bool:
    """Whether the loader front at the Unix socket ``path`` is alive: a fresh connection that it
    greets (a connection already open may not have seen its end yet, and a front being killed
    with its workers may still take a connection it will never greet)."""
    probe = WireLoaderClient(f"unix:{path}")
    try:
        return await probe.reachable()
    finally:
        await probe.close()


def local_path(address: str, context: TransportContext) -> str | None:
    """``unix:PATH`` of the loader at ``address`` when it registered a Unix socket on this host."""
    from ase_serving import wire

    attrs = context.attrs(address)
    path = attrs.get("uds")
    if isinstance(path, str) and attrs.get("host") == wire.host_id() and os.path.exists(path):
        return f"unix:{path}"
    return None


class GrpcTransport(_PerAddress):
    def __init__(self, context: TransportContext) -> None:
        from ase_serving.loader.client import AsyncLoaderClient

        def make(address: str) -> Any:
            return AsyncLoaderClient(str(context.attrs(address).get("grpc") or address))

        super().__init__(make)

    async def once(self, address: str, req: Request, timeout: float | None) -> Result:
        result: Result = await self.client(address).once(req, timeout=timeout)
        return result

    def session(self, address: str, first: Request, timeout: float | None) -> LoaderSession:
        session: LoaderSession = self.client(address).session(first, timeout=timeout)
        return session

    def lost(self, address: str) -> bool:
        return False  # gRPC reports an unreachable loader as 11503 itself


class InProcessTransport:
    """Engine hosts in this process; a call runs in a thread (wrappers may block)."""

    def __init__(self, context: TransportContext) -> None:
        self.hosts = context.hosts

    def _host(self, address: str) -> EngineHost | Result:
        host = self.hosts.get(address)
        if host is None:
            return Result(errors.NO_LOADER, f"no in-process engine at {address}", status=Status.END)
        return host

    async def once(self, address: str, req: Request, timeout: float | None) -> Result:
        host = self._host(address)
        if isinstance(host, Result):
            return host
        try:
            return await asyncio.wait_for(asyncio.to_thread(host.once, req), timeout)
        except asyncio.TimeoutError:
            return Result(errors.TIMEOUT, "loader did not answer before the deadline", status=Status.END)

    def session(self, address: str, first: Request, timeout: float | None) -> LoaderSession:
        return _InProcessSession(self._host(address), first)

    def lost(self, address: str) -> bool:
        return address not in self.hosts

    async def close(self) -> None:
        pass


class _InProcessSession:
    def __init__(self, host: EngineHost | Result, first: Request) -> None:
        self.host = host
        self.first: Request | None = first
        self.ended = False
        self.state: EngineSession | None = None
        self.results: asyncio.Queue[Result] = asyncio.Queue()
        self.lock = threading.Lock()
        self.sent = 0

    def _status(self, ended: bool) -> int:
        status = Status.END if ended else (Status.BEGIN if self.sent == 0 else Status.CONTINUE)
        self.sent += 1
        return status

    def _run(self, status: int, items: list[DataItem]) -> Result | None:
        assert self.state is not None
        with self.lock:
            try:
                out, ended, _wait = self.state.frame(status, items)
            except errors.AseError as exc:
                self.state.ended = True
                return Result(exc.code, exc.message, status=Status.END)
        if out or ended:
            return Result(items=out, status=self._status(ended))
        return None

    async def open(self) -> None:
        first, self.first = self.first, None
        if first is None:
            return
        if isinstance(self.host, Result):
            self.ended = True
            return
        host = self.host
        try:
            handle = await asyncio.to_thread(host.create, first)
        except errors.AseError as exc:
            self.results.put_nowait(Result(exc.code, exc.message, status=Status.END))
            return
        self.state = EngineSession(host, handle)
        if first.items or first.status == Status.END:
            await self._frame(first.status, first.items)

    async def refused(self) -> int:
        return errors.NO_LOADER if self.ended and isinstance(self.host, Result) else 0

    async def _frame(self, status: int, items: list[DataItem]) -> None:
        res = await asyncio.to_thread(self._run, status, items)
        if res is not None:
            self.results.put_nowait(res)

    async def send(self, status: int, items: Iterable[DataItem] = ()) -> None:
        if self.ended:
            raise errors.frame_after_end()
        await self.open()
        await self._frame(status, list(items))

    async def recv(self) -> Result | None:
        await self.open()
        if self.state is None and self.results.empty():
            return None
        res = await self.results.get()
        if res.code != 0 or res.status == Status.END:
            self.ended = True
        return res

    async def close(self) -> None:
        self.ended = True
        if self.state is not None:
            state, self.state = self.state, None
            await asyncio.to_thread(state.destroy)


register_transport("lean", LeanTransport)
register_transport("grpc", GrpcTransport)
register_transport("inprocess", InProcessTransport)
