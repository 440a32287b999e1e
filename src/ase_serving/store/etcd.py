"""The etcd backend: :class:`EtcdKV`, the :class:`~ase_serving.store.kv_engine.KV` seam on a real
etcd (v3 API).

Address ``etcd://h1:2379[,h2:2379...]`` (port 2379 when left out). The config store and the registry
are :mod:`ase_serving.store.kv_backed` on top, so an etcd dump reads like the embedded store.

We talk to etcd with aetcd's generated gRPC stubs (:mod:`aetcd.rpc`) on our own ``grpc.aio``
channels rather than through ``aetcd.Client``, because the client offers none of what a registry
that must survive etcd restarts needs: it has one endpoint, never re-authenticates when etcd forgets
its (simple) token on a restart, and its shared watcher hides a broken stream instead of raising.

- Endpoints are tried in order; a call that cannot reach one (refused, reset, timed out) drops that
  channel and goes on to the next. When none answers: :class:`StoreUnavailable`.
- Every unary call has a deadline (``timeout``, 5 s) so nothing hangs on a dead etcd.
- With an account, the client authenticates on first use and again when etcd says the token is
  invalid (etcd restarted); a wrong password is :class:`StoreAuthFailed`. An account given to an etcd
  without auth is accepted and unused.
- Nothing connects before the first call, so :func:`open_backend` never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc
from aetcd import rpc  # type: ignore[import-untyped]

from ase_serving.addr import host_port
from ase_serving.store import Backend
from ase_serving.store.base import (
    Compacted,
    InvalidName,
    LeaseLost,
    StoreAuthFailed,
    StoreError,
    StoreUnavailable,
)
from ase_serving.store.kv_backed import KVConfigStore, KVRegistry
from ase_serving.store.kv_engine import KVEntry, KVEvent, Put

DEFAULT_PORT = 2379
DEFAULT_TIMEOUT = 5.0

_CHANNEL_OPTIONS = [
    # Our own subchannels: by default channels to one target share a global one, so a channel dialled
    # afresh after a failure (see _drop) would inherit the old one's reconnect backoff.
    ("grpc.use_local_subchannel_pool", 1),
    # Reconnect soon after etcd comes back instead of gRPC's default backoff of up to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Notice a silently dead peer under a long watch; etcd refuses pings more often than every 5 s.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # Large config lists and histories (etcd itself sends up to 2 GiB).
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
]
# Errors that mean "this endpoint did not answer": try the next one.
_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# etcd's messages when a token no longer works (etcd restarted / auth store changed): authenticate again.
_STALE_TOKEN = ("invalid auth token", "revision of auth store is old", "user name is empty")

T = TypeVar("T")
# The end-of-stream marker of grpc.aio stream reads (missing from the type stubs).
_EOF: Any = getattr(grpc.aio, "EOF")  # noqa: B009


def parse_address(address: str) -> list[tuple[str, int]]:
    """``etcd://h1:2379,h2`` -> ``[("h1", 2379), ("h2", 2379)]``; :class:`InvalidName` if malformed."""
    parts = urlsplit(address)
    if parts.scheme.lower() != "etcd" or parts.path.strip("/") or parts.query:
        raise InvalidName(f"etcd address {address!r} is not etcd://host:port[,host:port...]")
    endpoints: list[tuple[str, int]] = []
    for item in parts.netloc.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [::1]:2379
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port_text = item.partition(":")
        try:
            port = int(port_text) if port_text else DEFAULT_PORT
        except ValueError:
            port = -1
        if not host or not 0 < port < 65536:
            raise InvalidName(f"etcd address {address!r}: {item!r} is not host:port")
        endpoints.append((host, port))
    if not endpoints:
        raise InvalidName(f"etcd address {address!r} names no endpoint (etcd://host:2379)")
    return endpoints


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return bool(cancelling()) if cancelling is not None else False


def _prefix_end(prefix: bytes) -> bytes:
    """The smallest key after every key starting with ``prefix`` (etcd's range_end for a prefix)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key


class EtcdKV:
    """:class:`~ase_serving.store.kv_engine.KV` on etcd. Safe to share between tasks of one event loop."""

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        account: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not endpoints:
            raise InvalidName("an etcd backend needs at least one endpoint")
        if (account is None) != (password is None) and account:
            raise StoreAuthFailed("an etcd account needs a password too: set both, or neither")
        self.endpoints = [host_port(h, p) for h, p in endpoints]
        self.description = "etcd etcd://" + ",".join(self.endpoints)
        self.account = account or None
        self.password = password
        self.timeout = timeout
        self._current = 0
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: str | None = None
        self._auth_off = False  # the account was given, but this etcd runs without auth

    # -- connection ---------------------------------------------------------------------------

    def _channel(self, index: int) -> grpc.aio.Channel:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Channels belong to the loop that made them (a CLI may run several asyncio.run()).
            self._channels.clear()
            self._loop = loop
        channel = self._channels.get(index)
        if channel is None:
            channel = grpc.aio.insecure_channel(self.endpoints[index], options=_CHANNEL_OPTIONS)
            self._channels[index] = channel
        return channel

    def _drop(self, index: int) -> None:
        """Forget a channel that failed, so the next call dials afresh (no stale reconnect backoff)."""
        channel = self._channels.pop(index, None)
        if channel is not None:
            # Closing cancels its calls (watches on it raise StoreUnavailable and resume elsewhere).
            task = asyncio.ensure_future(channel.close(None))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _unreachable(self, errors: list[str]) -> StoreUnavailable:
        where = ", ".join(self.endpoints)
        return StoreUnavailable(f"cannot reach etcd at {where}: {'; '.join(errors)}; is it running?")

    async def _authenticate(self, channel: grpc.aio.Channel) -> None:
        if self.account is None or self._auth_off:
            return
        stub = rpc.AuthStub(channel)
        request = rpc.AuthenticateRequest(name=self.account, password=self.password or "")
        try:
            resp = await stub.Authenticate(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "not enabled" in (exc.details() or ""):
                self._auth_off = True
                return
            raise
        self._token = str(resp.token)

    def _metadata(self) -> tuple[tuple[str, str], ...] | None:
        return (("token", self._token),) if self._token else None

    async def _call(self, what: str, fn: Callable[[grpc.aio.Channel, Any], Awaitable[T]]) -> T:
        """Run ``fn(channel, metadata)`` on the first endpoint that answers; map etcd's errors."""
        errors: list[str] = []
        n = len(self.endpoints)
        for step in range(n):
            index = (self._current + step) % n
            channel = self._channel(index)
            reauthed = False
            while True:
                try:
                    if self._token is None:
                        await self._authenticate(channel)
                    result = await fn(channel, self._metadata())
                    self._current = index
                    return result
                except asyncio.CancelledError:
                    # Another call on this client dropped (closed) the channel after a failure,
                    # which cancels every call on it: that is this endpoint failing, not us being
                    # cancelled, unless our own task is.
                    if self._channels.get(index) is channel or _being_cancelled():
                        raise
                    errors.append(f"{self.endpoints[index]}: the connection was closed after a failure")
                    break
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    details = exc.details() or code.name
                    if code in _UNREACHABLE:
                        errors.append(f"{self.endpoints[index]}: {details}")
                        self._drop(index)
                        break
                    if self.account is not None and not reauthed and any(s in details for s in _STALE_TOKEN):
                        self._token = None
                        self._auth_off = False
                        reauthed = True
                        continue
                    raise _map_error(what, self.account, exc) from None
        raise self._unreachable(errors)

    # -- KV -------------------------------------------------------------------------------------

    async def get(self, key: str) -> KVEntry | None:
        request = rpc.RangeRequest(key=key.encode())
        resp = await self._call(
            f"get {key}",
            lambda ch, md: rpc.KVStub(ch).Range(request, timeout=self.timeout, metadata=md),
        )
        if not resp.kvs:
            return None
        kv = resp.kvs[0]
        return KVEntry(kv.key.decode(), bytes(kv.value), int(kv.mod_revision), int(kv.lease))

    async def range(self, prefix: str, keys_only: bool = False) -> tuple[list[KVEntry], int]:
        start = prefix.encode()
        request = rpc.RangeRequest(
            key=start,
            range_end=_prefix_end(start),
            keys_only=keys_only,
            sort_order=rpc.RangeRequest.ASCEND,
            sort_target=rpc.RangeRequest.KEY,
        )
        resp = await self._call(
            f"list {prefix}",
            lambda ch, md: rpc.KVStub(ch).Range(request, timeout=self.timeout, metadata=md),
        )
        entries = [
            KVEntry(kv.key.decode(), bytes(kv.value), int(kv.mod_revision), int(kv.lease)) for kv in resp.kvs
        ]
        return entries, int(resp.header.revision)

    async def txn(
        self, puts: Sequence[Put], deletes: Sequence[str] = (), if_mod: dict[str, int] | None = None
    ) -> int | None:
        compares = []
        for key, mod in (if_mod or {}).items():
            if mod == 0:
                # A missing key has version 0; an existing one at least 1.
                compares.append(
                    rpc.Compare(
                        key=key.encode(), result=rpc.Compare.EQUAL, target=rpc.Compare.VERSION, version=0
                    )
                )
            else:
                compares.append(
                    rpc.Compare(
                        key=key.encode(), result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, mod_revision=mod
                    )
                )
        ops = [
            rpc.RequestOp(request_put=rpc.PutRequest(key=p.key.encode(), value=p.value, lease=p.lease))
            for p in puts
        ]
        ops += [rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k.encode())) for k in deletes]
        request = rpc.TxnRequest(compare=compares, success=ops, failure=[])
        what = "write " + ", ".join([p.key for p in puts] + list(deletes))
        resp = await self._call(
            what, lambda ch, md: rpc.KVStub(ch).Txn(request, timeout=self.timeout, metadata=md)
        )
        return int(resp.header.revision) if resp.succeeded else None

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[KVEvent]]:
        start = prefix.encode()
        create = rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=start, range_end=_prefix_end(start), start_revision=max(start_revision, 1)
            )
        )
        call = await self._open_watch(prefix, create)
        try:
            while True:
                try:
                    resp = await call.read()
                except grpc.aio.AioRpcError as exc:
                    raise self._watch_broken(prefix, exc) from None
                if resp is _EOF:
                    raise StoreUnavailable(
                        f"etcd closed the watch on {prefix}; resume from the last revision"
                    )
                _check_watch_response(prefix, start_revision, resp)
                if resp.events:
                    yield [
                        KVEvent(
                            "put" if ev.type == rpc.Event.PUT else "delete",
                            ev.kv.key.decode(),
                            bytes(ev.kv.value) if ev.type == rpc.Event.PUT else b"",
                            int(ev.kv.mod_revision),
                        )
                        for ev in resp.events
                    ]
        finally:
            call.cancel()

    def _watch_broken(self, prefix: str, exc: grpc.aio.AioRpcError) -> StoreError:
        if exc.code() in _UNREACHABLE or exc.code() == grpc.StatusCode.CANCELLED:
            return StoreUnavailable(
                f"the etcd watch on {prefix} broke ({exc.details() or exc.code().name}); "
                "resume from the last revision"
            )
        return _map_error(f"watch {prefix}", self.account, exc)

    async def _open_watch(self, prefix: str, create: Any) -> Any:
        """Open a watch stream and wait for etcd to confirm it; the stream is returned ready to read."""

        async def opener(channel: grpc.aio.Channel, metadata: Any) -> Any:
            call = rpc.WatchStub(channel).Watch(metadata=metadata)
            try:
                await asyncio.wait_for(call.write(create), self.timeout)
                resp = await asyncio.wait_for(call.read(), self.timeout)
            except (asyncio.TimeoutError, grpc.aio.AioRpcError) as exc:
                call.cancel()
                if isinstance(exc, grpc.aio.AioRpcError):
                    raise
                raise StoreUnavailable(
                    f"etcd did not confirm the watch on {prefix} within {self.timeout:g} s; is it running?"
                ) from None
            except BaseException:
                call.cancel()
                raise
            if resp is _EOF:
                call.cancel()
                raise StoreUnavailable(f"etcd closed the watch on {prefix} at once; resume later")
            try:
                _check_watch_response(prefix, int(create.create_request.start_revision), resp)
            except BaseException:
                call.cancel()
                raise
            return call

        try:
            return await self._call(f"watch {prefix}", opener)
        except StoreAuthFailed:
            if self.account is None:
                raise
            # etcd cancels a watch opened with a stale token (after a restart) instead of failing the
            # call: "invalid auth token", or "permission denied" on older versions. Authenticate again.
            self._token = None
            return await self._call(f"watch {prefix}", opener)

    async def grant(self, ttl: int) -> int:
        request = rpc.LeaseGrantRequest(TTL=int(ttl), ID=0)
        resp = await self._call(
            "grant a lease",
            lambda ch, md: rpc.LeaseStub(ch).LeaseGrant(request, timeout=self.timeout, metadata=md),
        )
        if resp.error:
            raise StoreError(f"etcd refused a lease: {resp.error}")
        return int(resp.ID)

    async def keepalive(self, lease: int) -> None:
        async def refresh(channel: grpc.aio.Channel, metadata: Any) -> int:
            for attempt in (1, 2):
                call = rpc.LeaseStub(channel).LeaseKeepAlive(metadata=metadata, timeout=self.timeout)
                try:
                    await call.write(rpc.LeaseKeepAliveRequest(ID=lease))
                    resp = await call.read()
                    break
                except grpc.aio.AioRpcError as exc:
                    # A stream opened on a channel that is reconnecting (etcd just restarted)
                    # can fail its first write with INTERNAL ("Internal error from Core"), not a
                    # status of etcd's: open the stream once more before calling it an error.
                    if exc.code() != grpc.StatusCode.INTERNAL or attempt == 2:
                        raise
                finally:
                    call.cancel()
            if resp is _EOF:
                raise StoreUnavailable("etcd closed the lease keepalive stream; try again")
            return int(resp.TTL)

        ttl = await self._call(f"keep lease {lease:x} alive", refresh)
        if ttl <= 0:
            raise LeaseLost(f"etcd lease {lease:x} is gone (expired or etcd forgot it); register again")

    async def revoke(self, lease: int) -> None:
        request = rpc.LeaseRevokeRequest(ID=lease)
        with contextlib.suppress(LeaseLost):
            await self._call(
                f"revoke lease {lease:x}",
                lambda ch, md: rpc.LeaseStub(ch).LeaseRevoke(request, timeout=self.timeout, metadata=md),
            )

    async def status(self) -> dict[str, Any]:
        # A one-key read checks the account's access too (Maintenance.Status needs no auth).
        probe = rpc.RangeRequest(key=b"/ase/", range_end=_prefix_end(b"/ase/"), count_only=True)
        read = await self._call(
            "read",
            lambda ch, md: rpc.KVStub(ch).Range(probe, timeout=self.timeout, metadata=md),
        )
        status = await self._call(
            "status",
            lambda ch, md: rpc.MaintenanceStub(ch).Status(
                rpc.StatusRequest(), timeout=self.timeout, metadata=md
            ),
        )
        return {
            "revision": max(int(read.header.revision), int(status.header.revision)),
            "version": str(status.version),
            "endpoint": self.endpoints[self._current],
        }

    async def close(self) -> None:
        channels = list(self._channels.values())
        self._channels.clear()
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            return  # made by a loop that is gone; nothing left to close
        for channel in channels:
            with contextlib.suppress(Exception):
                await channel.close(None)


def _check_watch_response(prefix: str, start_revision: int, resp: Any) -> None:
    if resp.compact_revision:
        raise Compacted(
            f"etcd no longer keeps revision {start_revision} for {prefix} (compacted up to "
            f"{resp.compact_revision}); list again, then watch from the list's revision"
        )
    if resp.canceled:
        reason = str(resp.cancel_reason) or "no reason given"
        if (
            "permission denied" in reason
            or "Unauthenticated" in reason
            or any(s in reason for s in _STALE_TOKEN)
        ):
            raise StoreAuthFailed(f"etcd refused the watch on {prefix}: {reason}; check the account's roles")
        raise StoreError(f"etcd cancelled the watch on {prefix}: {reason}")


def _map_error(what: str, account: str | None, exc: grpc.aio.AioRpcError) -> StoreError:
    code, details = exc.code(), exc.details() or exc.code().name
    if code == grpc.StatusCode.NOT_FOUND and "lease" in details:
        return LeaseLost(f"etcd cannot {what}: {details}; register again")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED) or (
        code == grpc.StatusCode.INVALID_ARGUMENT
        and ("authentication failed" in details or "user name" in details)
    ):
        who = f"account {account!r}" if account else "no account"
        return StoreAuthFailed(
            f"etcd refused to {what} with {who}: {details}; check the account and password "
            "(asectl setup, or ASE_CONFIG_ACCOUNT / ASE_CONFIG_PASSWORD)"
        )
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        return Compacted(f"etcd cannot {what}: {details}; list again")
    return StoreError(f"etcd cannot {what}: {details}")


def open_backend(address: str, account: str | None = None, password: str | None = None) -> Backend:
    """The etcd backend at ``address``; nothing is contacted until the first call."""
    kv = EtcdKV(parse_address(address), account, password)
    return Backend(kind="etcd", address=address, config=KVConfigStore(kv), registry=KVRegistry(kv))
