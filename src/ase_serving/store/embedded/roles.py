"""Who may do what in the embedded config centre: the roles of accounts, and consumer redaction.

==========  ===========================================================================
role        may
==========  ===========================================================================
admin       everything; the only one that adds accounts
writer      read and write every key, hold leases (loaders register with it; ``asectl``)
gateway     read every key, consumer secrets and ``/ase/secrets/`` included; write nothing
reader      read ``/ase/config/``, ``/ase/history/``, ``/ase/instances/`` and
            ``/ase/consumers/`` (records without their key digest and secret); write nothing
(none)      read ``/ase/config/``, ``/ase/history/``, ``/ase/instances/``
==========  ===========================================================================

A reader is served a consumer record with only its :data:`CONSUMER_PUBLIC` fields (what ``asectl
consumer list`` shows), so no secret reaches it by a get, a range or a watch. Keys under
:data:`SECRET_PREFIXES` keep no history (see :class:`~.db.KVDB`): a watch from an old revision
gets their current value or their delete, never a rotated-away secret.
"""

from __future__ import annotations

import orjson

ADMIN, WRITER, READER, GATEWAY = "admin", "writer", "reader", "gateway"
ROLES = (ADMIN, WRITER, READER, GATEWAY)

#: Reads under these prefixes need no account (config, its history, the registry).
OPEN_PREFIXES = ("/ase/config/", "/ase/history/", "/ase/instances/")
#: Consumer records (``/ase/consumers/<project>/<app_id>``, see ase_serving.store.consumers).
CONSUMERS = "/ase/consumers/"
#: Keys holding secrets: served to the roles that need them only, and kept without history.
SECRET_PREFIXES = (CONSUMERS, "/ase/secrets/")
#: What a reader may read (consumers without their secrets).
READER_PREFIXES = (*OPEN_PREFIXES, CONSUMERS)
#: The fields of a consumer record a reader is served; every other one (``key_sha256``,
#: ``secret``, and any field added later) is left out.
CONSUMER_PUBLIC = frozenset(
    ("format", "app_id", "name", "key_id", "services", "rps", "sessions", "created", "rotated")
)

#: What each role may do, for the messages of refusals.
CAN = {
    ADMIN: "may do everything",
    WRITER: "may read and write every key but not add accounts",
    GATEWAY: "may read every key (consumer secrets included) but write nothing",
    READER: (
        "may read /ase/config/, /ase/history/, /ase/instances/ and /ase/consumers/ "
        "(without secrets) but write nothing"
    ),
}


def check_role(role: object) -> str:
    """``role`` if it is one of :data:`ROLES`, else ValueError naming them."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return str(role)


def can_write(role: str) -> bool:
    """Writes: transactions and leases."""
    return role in (ADMIN, WRITER)


def can_read(role: str | None, prefix: str) -> bool:
    """May ``role`` (None: no account) read the key ``prefix``, or every key starting with it?"""
    if role is None:
        return prefix.startswith(OPEN_PREFIXES)
    if role == READER:
        return prefix.startswith(READER_PREFIXES)
    return role in ROLES


def shows_secrets(role: str | None) -> bool:
    return role in (ADMIN, WRITER, GATEWAY)


def redact(key: str, value: bytes) -> bytes:
    """What a role without secrets is served for ``key``: a consumer record's public fields (a
    record that is not a JSON object: nothing); any other key's value as it is."""
    if not key.startswith(CONSUMERS) or not value:
        return value
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return b""
    if not isinstance(doc, dict):
        return b""
    return orjson.dumps({k: v for k, v in doc.items() if k in CONSUMER_PUBLIC})
