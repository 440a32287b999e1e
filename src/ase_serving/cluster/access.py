"""Reaching the cluster that ``asectl setup``/``asectl init`` stored: settings, backend, access checks.

Every command that talks to the config centre goes through :func:`cluster_backend`, so that the
two common failures read the same everywhere:

- nothing set up -> :class:`NotSetUp` ("no cluster set up: run `asectl init` or `asectl setup`")
- store down     -> :class:`ClusterUnreachable` ("cannot reach the config centre at URL: ...;
  start it with `asectl init`")
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from ase_serving.cluster_settings import ClusterSettings, SettingsError
from ase_serving.store import Backend, open_backend
from ase_serving.store.base import StoreAuthFailed, StoreError, StoreUnavailable
from ase_serving.store.kv_engine import Put

T = TypeVar("T")

#: A key that is never written: the access check's transaction compares it with an impossible
#: revision, so the write is authorised by the store but never applied.
_PROBE_KEY = "/ase/config/.access-check"
#: Seconds a status/health probe may take before the store counts as down.
PING_TIMEOUT = 5.0


class NotSetUp(StoreError):
    def __init__(self) -> None:
        super().__init__("no cluster set up: run `asectl init` or `asectl setup`")


class ClusterUnreachable(StoreUnavailable):
    def __init__(self, address: str, reason: object) -> None:
        self.address = address
        super().__init__(
            f"cannot reach the config centre at {address}: {_one_line(reason)}; start it with `asectl init`"
        )


class AccessDenied(StoreAuthFailed):
    def __init__(self, address: str, account: str | None, reason: object) -> None:
        who = f"account {account!r}" if account else "no account"
        why = _one_line(reason).removeprefix(f"config centre {address}: ")
        # The backend's own reason may already say what to run (the embedded one names the file
        # holding the admin password); do not say it twice.
        hint = (
            ""
            if "asectl setup" in why
            else "; run `asectl setup --account A --password P` with the right ones"
        )
        super().__init__(f"the config centre at {address} refused {who}: {why}{hint}")


def _one_line(reason: object) -> str:
    text = str(reason).strip() or type(reason).__name__
    return text.splitlines()[0].removeprefix("error: ")


def load_settings(project: str | None = None, group: str | None = None) -> ClusterSettings:
    """The current region's settings (flags override project/group); :class:`NotSetUp` if none."""
    try:
        settings = ClusterSettings.load()
    except SettingsError as exc:
        raise StoreError(str(exc)) from None
    if settings is None:
        raise NotSetUp()
    if project:
        settings.project = project
    if group:
        settings.group = group
    return settings


async def check_access(backend: Backend, account: str | None = None, timeout: float = PING_TIMEOUT) -> None:
    """Raise :class:`ClusterUnreachable` or :class:`AccessDenied` unless the store answers AND takes
    this account's writes.

    A ping alone proves little: the embedded store and etcd answer it without credentials. So on
    a writable key-value backend we also send a write transaction guarded by a comparison that can
    never hold (a revision of -1): the store checks the credentials for the write, then writes
    nothing. Read-only backends (configmap) only need the ping.
    """

    async def probe() -> None:
        await backend.config.ping()
        kv = getattr(backend.config, "kv", None)
        if backend.config.writable and kv is not None:
            await kv.txn([Put(_PROBE_KEY, b"")], if_mod={_PROBE_KEY: -1})

    try:
        await asyncio.wait_for(probe(), timeout)
    except StoreAuthFailed as exc:
        raise AccessDenied(backend.address, account, exc) from None
    except StoreUnavailable as exc:
        raise ClusterUnreachable(backend.address, exc) from None
    except TimeoutError:
        raise ClusterUnreachable(backend.address, f"no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ClusterUnreachable(backend.address, exc) from None


@asynccontextmanager
async def opened(settings: ClusterSettings) -> AsyncIterator[Backend]:
    """The settings' backend, closed afterwards; store errors come out with the standard wording."""
    backend = open_backend(settings.address, settings.account, settings.password)
    try:
        yield backend
    except StoreAuthFailed as exc:
        if isinstance(exc, AccessDenied):
            raise
        raise AccessDenied(settings.address, settings.account, exc) from None
    except StoreUnavailable as exc:
        if isinstance(exc, ClusterUnreachable):
            raise
        raise ClusterUnreachable(settings.address, exc) from None
    finally:
        # Closing a connection to a dead store must not hide the real error.
        with contextlib.suppress(StoreError, OSError, TimeoutError):
            await asyncio.wait_for(backend.close(), PING_TIMEOUT)


def run_with_backend(settings: ClusterSettings, work: Callable[[Backend], Awaitable[T]]) -> T:
    """Run ``work(backend)`` on a fresh event loop (the CLI's way into the async store API)."""

    async def main() -> T:
        async with opened(settings) as backend:
            return await work(backend)

    return asyncio.run(main())
