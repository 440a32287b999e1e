"""The Python client of the gateway's public API (docs/protocol.md): once requests and sessions.

    from ase_serving.client import Client

    with Client("http://127.0.0.1:2392", "my-app", api_key, api_secret) as client:
        result = client.once("echo", {"speed": 50}, {"text": "hello"})
        print(result["text"].text, result.sid)
        with client.session("stream_echo") as session:
            session.send({"text": "one "})
            session.end({"text": "two"})
            for r in session:
                print(r["echo"].text)

:class:`AsyncClient` is the same API for asyncio (``await client.once(...)``,
``async with client.session(...) as s``). Errors are :class:`AseClientError` (``code``,
``message``, ``sid``, ``http_status``). :func:`sign` signs a request for other HTTP clients.
Importing this package starts nothing and reads no environment.
"""

from ase_serving.client.aio import AsyncClient, AsyncSession
from ase_serving.client.core import AseClientError, Output, Result
from ase_serving.client.signing import Credentials, sign, sign_query
from ase_serving.client.sync import Client, Session

__all__ = [
    "AseClientError",
    "AsyncClient",
    "AsyncSession",
    "Client",
    "Credentials",
    "Output",
    "Result",
    "Session",
    "sign",
    "sign_query",
]
