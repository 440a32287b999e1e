"""The consumers a gateway knows (from the config centre's ``/ase/consumers/``), by app id and by
API key digest, and the :class:`Consumer` a request is made by."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ase_serving.store.consumers import ConsumerRecord, key_digest
from ase_serving.store.kv_engine import KVEvent

log = logging.getLogger("ase_serving.gateway")


@dataclass(frozen=True)
class Consumer:
    """An authenticated caller: an app with its app id, and what its record allows."""

    app_id: str
    name: str = ""
    services: tuple[str, ...] = ()
    rps: float = 0
    sessions: int = 0

    @classmethod
    def of(cls, rec: ConsumerRecord) -> Consumer:
        return cls(rec.app_id, rec.name, rec.services, rec.rps, rec.sessions)


class ConsumerBook:
    """The consumers of the project, indexed by app id and by API key digest, kept current from
    the config centre's watch events (:class:`~ase_serving.store.view.PrefixView`)."""

    def __init__(self, records: Iterable[ConsumerRecord] = (), store: str | None = "memory") -> None:
        self._records: dict[str, ConsumerRecord] = {}  # app id -> record
        #: Records in the store that could not be used, by key: why.
        self.bad: dict[str, str] = {}
        self._by_key: dict[str, str] = {}  # key digest -> app id
        #: Keys as sent -> their digest (SHA-256 of a key is a microsecond per request otherwise).
        #: Digests only: which record a digest names is looked up afresh every time.
        self._digests: dict[bytes, str] = {}
        self._consumers: dict[str, tuple[ConsumerRecord, Consumer]] = {}
        #: Where the records come from; None = nowhere (every key is refused, with that reason).
        self.store = store
        #: Why the records are not loaded yet (the config centre's error), or None once they are.
        self.unloaded: Callable[[], str | None] = lambda: None
        #: Why the consumers known are only those of the disk cache (None: read from the store).
        self.stale: Callable[[], str | None] = lambda: None
        for rec in records:
            self._put(rec)

    def __len__(self) -> int:
        return len(self._records)

    def _put(self, rec: ConsumerRecord) -> None:
        self._drop(rec.app_id)
        self._records[rec.app_id] = rec
        self._by_key[rec.key_sha256] = rec.app_id

    def _drop(self, app_id: str) -> None:
        old = self._records.pop(app_id, None)
        if old is not None:
            self._by_key.pop(old.key_sha256, None)

    def apply(self, events: list[KVEvent]) -> None:
        for ev in events:
            app_id = ev.key.rsplit("/", 1)[-1]  # the key is /ase/consumers/<project>/<app_id>
            self._drop(app_id)
            self.bad.pop(ev.key, None)
            if ev.kind == "delete":
                continue
            try:
                rec = ConsumerRecord.from_json(ev.value)
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("consumer record %s is not valid (%s): ignored", ev.key, exc)
                self.bad[ev.key] = f"not a valid consumer record ({exc})"
                continue
            if rec.app_id != app_id:
                log.warning("consumer record %s holds app id %r: ignored", ev.key, rec.app_id)
                self.bad[ev.key] = f"holds app id {rec.app_id!r}, not {app_id!r}"
                continue
            if not rec.usable():
                why = (
                    "served without its key digest and secret: the gateway's config centre account "
                    "may not read secrets (give it the role gateway)"
                )
                log.warning("consumer record %s %s: ignored", ev.key, why)
                self.bad[ev.key] = why
                continue
            self._put(rec)

    def by_key_bytes(self, api_key: bytes) -> ConsumerRecord | None:
        """:meth:`by_key` for a key as sent (a header's bytes), with its digest remembered."""
        digest = self._digests.get(api_key)
        if digest is None:
            if len(self._digests) >= 4096:
                self._digests.clear()
            digest = self._digests[api_key] = key_digest(api_key.decode("latin-1"))
        return self._match(digest)

    def by_key(self, api_key: str) -> ConsumerRecord | None:
        return self._match(key_digest(api_key))

    def _match(self, digest: str) -> ConsumerRecord | None:
        app_id = self._by_key.get(digest)
        rec = self._records.get(app_id) if app_id is not None else None
        if rec is None or not hmac.compare_digest(rec.key_sha256, digest):
            return None
        return rec

    def by_app_id(self, app_id: str) -> ConsumerRecord | None:
        return self._records.get(app_id)

    def consumer(self, rec: ConsumerRecord) -> Consumer:
        """The :class:`Consumer` of a record, made once per record (not per request)."""
        made = self._consumers.get(rec.app_id)
        if made is None or made[0] is not rec:
            made = self._consumers[rec.app_id] = (rec, Consumer.of(rec))
            if len(self._consumers) > 2 * len(self._records) + 64:  # forget removed apps
                self._consumers = {k: v for k, v in self._consumers.items() if k in self._records}
        return made[1]
