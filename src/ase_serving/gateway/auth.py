"""The auth stage (the role Kong plays in the seed): who calls, and may they.

Now a pass-through: :class:`NoAuth` lets every request in as an anonymous caller. The
authentication issue fills in API keys and HMAC signatures behind the same two calls, so
that the app does not change: :meth:`Auth.authenticate` before the body is read, and
:func:`check_app_id` once the body's ``header.app_id`` is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ase_serving import errors
from ase_serving.errors import AseError


@dataclass(frozen=True)
class Consumer:
    """An authenticated caller: an app with its app id."""

    app_id: str
    name: str = ""


class Auth(Protocol):
    async def authenticate(self, scope: Mapping[str, Any]) -> Consumer | None:
        """The caller of an ASGI request (HTTP or WebSocket); raises 10401/10403 when refused."""
        ...


class NoAuth:
    """Authentication off: every caller is anonymous (a front proxy may have checked it)."""

    async def authenticate(self, scope: Mapping[str, Any]) -> Consumer | None:
        return None


def check_app_id(consumer: Consumer | None, body: Mapping[str, Any]) -> None:
    """10313 when an authenticated caller sends another app's ``header.app_id``."""
    if consumer is None:
        return
    header = body.get("header")
    app_id = header.get("app_id") if isinstance(header, dict) else None
    if app_id != consumer.app_id:
        raise AseError(
            f"header.app_id {app_id!r} is not the app id of the key used ({consumer.app_id!r})",
            errors.APP_ID_MISMATCH,
            http=403,
        )
