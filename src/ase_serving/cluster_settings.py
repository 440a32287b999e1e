"""``$ASE_HOME`` (default ``~/.ase``): the tool's settings and a local cluster's state.

``cluster.json`` (mode 0600, written by ``asectl setup`` and ``asectl init``) holds one entry per
region and which region is current::

    {"region": "default",
     "regions": {"default": {"address": "http://127.0.0.1:2390", "account": "admin",
                             "password": "...", "project": "default", "group": "default",
                             "lb": null, "components": {"config": "http://127.0.0.1:2390"}}}}

Environment variables override the file (for containers, where there is no ``setup``):
``ASE_CONFIG_ADDRESS``, ``ASE_CONFIG_ACCOUNT``, ``ASE_CONFIG_PASSWORD``, ``ASE_REGION``,
``ASE_PROJECT``, ``ASE_GROUP``, ``ASE_LB``. Nothing is read at import time.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ase_serving.errors import UserError
from ase_serving.files import ase_home as ase_home  # where $ASE_HOME is, for every user of this module
from ase_serving.files import write_private
from ase_serving.store import Backend, open_backend
from ase_serving.store.base import DEFAULT_GROUP, DEFAULT_PROJECT

SETTINGS_FILE = "cluster.json"
#: The consumer credentials `asectl init` saves for this machine (app_id, api_key, api_secret).
CREDENTIALS_FILE = "credentials.json"


class SettingsError(UserError):
    """cluster.json is unreadable or incomplete; the message says what to run."""


@dataclass
class ClusterSettings:
    """Where the config centre of one region is, how to log in, and which (project, group) to use."""

    address: str
    account: str | None = None
    password: str | None = None
    region: str = "default"
    project: str = DEFAULT_PROJECT
    group: str = DEFAULT_GROUP
    #: host:port of the LB service, when the LB runs as its own service (else in-process).
    lb: str | None = None
    #: Components a local cluster started (name -> URL), for ``cluster status``.
    components: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, home: Path | None = None, region: str | None = None) -> ClusterSettings | None:
        """The settings of ``region`` (default: the current one), env overrides applied;
        None when nothing is set up (no file and no ``ASE_CONFIG_ADDRESS``)."""
        doc = _read(home or ase_home())
        region = region or os.environ.get("ASE_REGION") or doc.get("region") or "default"
        entry: dict[str, Any] = dict(doc.get("regions", {}).get(region, {}))
        env = {
            "address": "ASE_CONFIG_ADDRESS",
            "account": "ASE_CONFIG_ACCOUNT",
            "password": "ASE_CONFIG_PASSWORD",
            "project": "ASE_PROJECT",
            "group": "ASE_GROUP",
            "lb": "ASE_LB",
        }
        for name, var in env.items():
            if os.environ.get(var):
                entry[name] = os.environ[var]
        if not entry.get("address"):
            return None
        known = {k: v for k, v in entry.items() if k in cls.__dataclass_fields__ and k != "region"}
        return cls(region=region, **known)

    def save(self, home: Path | None = None, current: bool = True) -> Path:
        """Store these settings under their region (0600); make it the current region if ``current``."""
        home = home or ase_home()
        doc = _read(home)
        entry = asdict(self)
        region = entry.pop("region")
        doc.setdefault("regions", {})[region] = entry
        if current or "region" not in doc:
            doc["region"] = region
        path = home / SETTINGS_FILE
        write_private(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        return path

    @staticmethod
    def resolve(
        address: str | None, account: str | None, password: str | None, home: Path | None = None
    ) -> tuple[ClusterSettings | None, str | None, str | None, str | None]:
        """(settings, address, account, password) for a process given ``--config/--account/
        --password``: the flags, else the cluster settings; the settings' credentials only go
        with the settings' own address."""
        settings = ClusterSettings.load(home)
        chosen = address or (settings.address if settings else None)
        if settings is not None and (not address or address == settings.address):
            account = account or settings.account
            password = password or settings.password
        return settings, chosen, account, password

    def open(self) -> Backend:
        """Open the backend (nothing is contacted until the first call)."""
        return open_backend(self.address, self.account, self.password)


def _read(home: Path) -> dict[str, Any]:
    path = home / SETTINGS_FILE
    with contextlib.suppress(FileNotFoundError):
        try:
            doc = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise  # nothing set up: the suppress above turns it into {}
        except (OSError, orjson.JSONDecodeError) as exc:
            raise SettingsError(f"{path}: unreadable ({exc}); run `asectl setup` again") from None
        if not isinstance(doc, dict):
            raise SettingsError(f"{path}: not a JSON object; run `asectl setup` again")
        return doc
    return {}
