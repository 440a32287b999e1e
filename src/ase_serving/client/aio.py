"""The asyncio client: httpx for once requests, ``websockets.asyncio`` for sessions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, NoReturn

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ase_serving.client.core import END, ClientCore, Payload, Result, decode_body, too_slow, unreachable
from ase_serving.client.stream import WS_LOGGER, SessionState

#: How long to wait for a frame that a closed connection still holds in its buffer.
_DRAIN_TIMEOUT = 1.0


class AsyncClient(ClientCore):
    """The asyncio twin of :class:`~ase_serving.client.Client` (same arguments, awaitable calls).

    Use it as ``async with AsyncClient(...) as client:``, or ``await client.close()``.
    """

    _http: httpx.AsyncClient

    def _open_http(self, timeout: float) -> None:
        self._http = httpx.AsyncClient(timeout=timeout)

    async def _request(self, method: str, url: str, content: bytes | None = None) -> httpx.Response:
        headers = self.credentials.http_headers(method, url, content)
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            return await self._http.request(method, url, content=content, headers=headers)
        except httpx.TimeoutException:
            raise too_slow(url, self.timeout) from None
        except httpx.TransportError as exc:
            raise unreachable(url, exc) from None

    async def route(self, service: str) -> str:
        """The route of ``service`` (a serviceId, looked up once in the gateway's OpenAPI; or a route)."""
        route = self.cached_route(service)
        if route is None:
            resp = await self._request("GET", self.openapi_url(service))
            route = self.learn_route(service, resp.status_code, resp.content)
        return route

    async def once(
        self,
        service: str,
        params: Mapping[str, Any] | None = None,
        payload: Payload | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> Result:
        """POST one request to ``service``; raises :class:`AseClientError` for an error answer."""
        url = self.url(await self.route(service))
        resp = await self._request("POST", url, self.once_body(service, params, payload, header))
        return decode_body(resp.content, url, resp.status_code)

    def session(
        self, service: str, params: Mapping[str, Any] | None = None, header: Mapping[str, Any] | None = None
    ) -> AsyncSession:
        """A session with ``service``: ``async with client.session(...) as s:`` (or ``await s.open()``)."""
        return AsyncSession(self, service, params, header)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


class AsyncSession:
    """One session: ``await send(...)`` frames, ``async for`` results (until the one with status 2)."""

    def __init__(
        self,
        client: AsyncClient,
        service: str,
        params: Mapping[str, Any] | None,
        header: Mapping[str, Any] | None,
    ) -> None:
        self._client = client
        self._args = (service, params, header)
        self._state: SessionState | None = None
        self._ws: ClientConnection | None = None
        # A reader (e.g. a task printing results while another sends) owns the socket's recv:
        # websockets allows one at a time, so a failed send then leaves the error frame to it.
        self._receiving = False

    def __repr__(self) -> str:
        st = self._state
        where = st.where if st else self._args[0]
        return (
            f"AsyncSession({where!r}, frames_sent={st.frames_sent if st else 0}, done={bool(st and st.done)})"
        )

    async def open(self) -> AsyncSession:
        """Look up the route and connect (the gateway's refusal, e.g. 10401 or 10404, is raised here)."""
        if self._state is None:
            service, params, header = self._args
            route = await self._client.route(service)
            self._state = SessionState(self._client, service, route, params, header)
        if self._ws is None:
            st = self._state
            try:
                self._ws = await connect(
                    st.url,
                    additional_headers=st.headers,
                    open_timeout=st.timeout,
                    max_size=None,
                    logger=WS_LOGGER,
                )
            except InvalidStatus as exc:
                raise st.refused(exc.response.status_code, exc.response.body) from None
            except TimeoutError:
                raise too_slow(st.where, st.timeout) from None
            except (OSError, InvalidHandshake) as exc:
                raise unreachable(st.where, exc) from None
        return self

    async def _opened(self) -> tuple[SessionState, ClientConnection]:
        await self.open()
        assert self._state is not None and self._ws is not None
        return self._state, self._ws

    async def send(self, payload: Payload | None = None, status: int | None = None) -> None:
        """Send a frame: status 0 for the first (it carries the parameters), 1 after, 2 the last."""
        st, ws = await self._opened()
        text = st.frame(payload, status)
        try:
            await ws.send(text)
        except ConnectionClosed as exc:
            await self._raise_closed(st, ws, exc)

    async def end(self, payload: Payload | None = None) -> None:
        """Send the last frame (status 2)."""
        await self.send(payload, END)

    async def recv(self) -> Result | None:
        """The next result; None once the result with status 2 has come."""
        st, ws = await self._opened()
        if st.done:
            return None
        self._receiving = True
        try:
            message = await asyncio.wait_for(ws.recv(), st.timeout)
        except asyncio.TimeoutError:
            raise too_slow(st.where, st.timeout) from None
        except ConnectionClosed as exc:
            await self._raise_closed(st, ws, exc, drain=True)
        finally:
            self._receiving = False
        return st.result(message)

    def __aiter__(self) -> AsyncIterator[Result]:
        return self._results()

    async def _results(self) -> AsyncIterator[Result]:
        while (result := await self.recv()) is not None:
            yield result

    async def results(self) -> list[Result]:
        """Every result still to come, until the one with status 2."""
        return [r async for r in self]

    async def _raise_closed(
        self, st: SessionState, ws: ClientConnection, exc: ConnectionClosed, drain: bool = False
    ) -> NoReturn:
        # An error frame may wait in the buffer behind the close: it says why.
        if drain or not self._receiving:
            with contextlib.suppress(ConnectionClosed, asyncio.TimeoutError):
                while True:
                    st.result(await asyncio.wait_for(ws.recv(), _DRAIN_TIMEOUT))
        rcvd = exc.rcvd
        raise st.closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None

    async def close(self) -> None:
        """End the session: the last frame (status 2) if it was not sent, then close the socket."""
        st, ws = self._state, self._ws
        if st is None or ws is None:
            return
        if not st.ended and not st.done:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(st.frame(None, END))
        await ws.close()

    async def __aenter__(self) -> AsyncSession:
        return await self.open()

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()
