"""The embedded config centre: an etcd-like KV server with its state in SQLite, for one machine.

==================  ==========================================================
:mod:`.db`          the KV engine (keys, revisions, event log, leases)
:mod:`.accounts`    accounts (scrypt) and the first-start admin password file
:mod:`.roles`       what each account's role may read and write; redaction
:mod:`.throttle`    failed logins slowed per client
:mod:`.settings`    the server's flags (``--port``, ``--data``, ...), each an ``ASE_CONFIGD_*`` variable
:mod:`.api`         the HTTP+JSON API (Starlette)
:mod:`.server`      :func:`~.server.run_server`: uvicorn, signals, the data directory
:mod:`.client`      :class:`~.client.EmbeddedKV` and the backend factory
==================  ==========================================================

Run it with ``python -m ase_serving.store.embedded`` (see :mod:`.__main__`) or ``asectl config
serve``, which takes the same flags and becomes that process.
"""
