"""The blocking client: httpx for once requests, ``websockets.sync`` for sessions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, NoReturn

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from ase_serving.client.core import END, ClientCore, Payload, Result, decode_body, too_slow, unreachable
from ase_serving.client.stream import WS_LOGGER, SessionState


class Client(ClientCore):
    """A blocking client of one gateway, for one app.

    ``Client(base_url, app_id, api_key=None, api_secret=None, *, timeout=60.0, ws_query_auth=True)``:
    with ``api_key`` and ``api_secret`` every request is signed (HMAC-SHA256), with ``api_key``
    alone it carries the key; ``timeout`` bounds each request and each wait for a session's
    result; ``ws_query_auth=False`` sends a session's credentials as headers, not query parameters.
    Use it as a context manager, or call :meth:`close`.
    """

    _http: httpx.Client

    def _open_http(self, timeout: float) -> None:
        self._http = httpx.Client(timeout=timeout)

    def _request(self, method: str, url: str, content: bytes | None = None) -> httpx.Response:
        headers = self.credentials.http_headers(method, url, content)
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self._http.request(method, url, content=content, headers=headers)
        except httpx.TimeoutException:
            raise too_slow(url, self.timeout) from None
        except httpx.TransportError as exc:
            raise unreachable(url, exc) from None

    def route(self, service: str) -> str:
        """The route of ``service`` (a serviceId, looked up once in the gateway's OpenAPI; or a route)."""
        route = self.cached_route(service)
        if route is None:
            resp = self._request("GET", self.openapi_url(service))
            route = self.learn_route(service, resp.status_code, resp.content)
        return route

    def once(
        self,
        service: str,
        params: Mapping[str, Any] | None = None,
        payload: Payload | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> Result:
        """POST one request to ``service``; raises :class:`AseClientError` for an error answer."""
        url = self.url(self.route(service))
        resp = self._request("POST", url, self.once_body(service, params, payload, header))
        return decode_body(resp.content, url, resp.status_code)

    def session(
        self, service: str, params: Mapping[str, Any] | None = None, header: Mapping[str, Any] | None = None
    ) -> Session:
        """A session (WebSocket) with ``service``, opened on ``with`` or by the first :meth:`Session.send`."""
        return Session(SessionState(self, service, self.route(service), params, header))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Session:
    """One session: :meth:`send` frames, iterate for results (until the one with status 2)."""

    def __init__(self, state: SessionState) -> None:
        self._state = state
        self._ws: ClientConnection | None = None

    def __repr__(self) -> str:
        return (
            f"Session({self._state.where!r}, frames_sent={self._state.frames_sent}, done={self._state.done})"
        )

    def open(self) -> Session:
        """Connect (the gateway's refusal, e.g. 10401 or 10404, is raised here)."""
        if self._ws is None:
            st = self._state
            try:
                # Entered as a context manager: websockets >= 17.1 warns about a bare connect().
                self._ws = connect(
                    st.url,
                    additional_headers=st.headers,
                    open_timeout=st.timeout,
                    max_size=None,
                    logger=WS_LOGGER,
                ).__enter__()
            except InvalidStatus as exc:
                raise st.refused(exc.response.status_code, exc.response.body) from None
            except TimeoutError:
                raise too_slow(st.where, st.timeout) from None
            except (OSError, InvalidHandshake) as exc:
                raise unreachable(st.where, exc) from None
        return self

    def send(self, payload: Payload | None = None, status: int | None = None) -> None:
        """Send a frame: status 0 for the first (it carries the parameters), 1 after, 2 the last."""
        ws = self.open()._ws
        assert ws is not None
        text = self._state.frame(payload, status)
        try:
            ws.send(text)
        except ConnectionClosed as exc:
            self._raise_closed(ws, exc)

    def end(self, payload: Payload | None = None) -> None:
        """Send the last frame (status 2)."""
        self.send(payload, END)

    def recv(self) -> Result | None:
        """The next result; None once the result with status 2 has come."""
        ws = self.open()._ws
        assert ws is not None
        if self._state.done:
            return None
        try:
            message = ws.recv(timeout=self._state.timeout)
        except TimeoutError:
            raise too_slow(self._state.where, self._state.timeout) from None
        except ConnectionClosed as exc:
            self._raise_closed(ws, exc)
        return self._state.result(message)

    def __iter__(self) -> Iterator[Result]:
        while (result := self.recv()) is not None:
            yield result

    def results(self) -> list[Result]:
        """Every result still to come, until the one with status 2."""
        return list(self)

    def _raise_closed(self, ws: ClientConnection, exc: ConnectionClosed) -> NoReturn:
        # An error frame may wait in the buffer behind the close: it says why.
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            while True:
                self._state.result(ws.recv(timeout=0))
        rcvd = exc.rcvd
        raise self._state.closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "") from None

    def close(self) -> None:
        """End the session: the last frame (status 2) if it was not sent, then close the socket."""
        ws = self._ws
        if ws is None:
            return
        if not self._state.ended and not self._state.done:
            with contextlib.suppress(ConnectionClosed):
                ws.send(self._state.frame(None, END))
        ws.close()

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()
