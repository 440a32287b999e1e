"""The config-centre client's HTTP (store/embedded/http.py) against a scripted server on loopback:
kept-alive connections are reused, one the server closed meanwhile is replaced without an error,
chunked answers are read whole, and a server that is not there or says nothing is a clear error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ase_serving.store.embedded.http import HttpClient, HttpError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def test_keep_alive_reuse_a_closed_connection_and_chunked_answers() -> None:
    connections: list[int] = []
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        n = 0
        while True:
            try:
                heads.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                break
            n += 1
            if n == 1:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            else:
                writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n")
                writer.write(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            await writer.drain()
            if n == 2:  # then this connection goes away while the client keeps it idle
                break
        writer.close()

    async def main() -> None:
        server, url = await serve(handler)
        client = HttpClient(url, auth=("admin", "pw"))
        try:
            assert await client.request("GET", "/v1/kv", params={"key": "a b"}) == (200, b"ok")
            assert await client.request("PUT", "/v1/kv", body=b'{"v":1}') == (201, b"abcde")
            # The server closed the kept-alive connection: the next request opens another.
            assert await client.request("GET", "/x") == (200, b"ok")
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    assert len(connections) == 2
    assert heads[0].startswith(b"GET /v1/kv?key=a+b HTTP/1.1\r\n")
    assert b"authorization: basic " in heads[0].lower() and b"YWRtaW46cHc=" in heads[0]  # admin:pw
    assert b"content-length: 7" in heads[1].lower()


def test_no_server_and_no_answer_are_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            await reader.read()  # never answers; ends when the client gives up
        finally:
            writer.close()

    async def main() -> None:
        server, url = await serve(silent)
        client = HttpClient(url)
        try:
            with pytest.raises(HttpError, match=r"no answer within 0\.2 s"):
                await client.request("GET", "/", timeout=0.2)
        finally:
            await client.close()
            server.close()
            await server.wait_closed()
        gone = HttpClient(url)  # the server is closed: nothing listens there any more
        with pytest.raises(HttpError) as info:
            await gone.request("GET", "/", timeout=5)
        assert info.value.kind == "ConnectionRefusedError"

    asyncio.run(main())
