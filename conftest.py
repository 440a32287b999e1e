"""Every test (tests/ and examples/) runs with its own empty ``$ASE_HOME``.

So no test reads or writes the developer's ``~/.ase``, and a loader started by a test serves
standalone unless the test sets up a cluster (``ASE_HOME`` / ``ASE_CONFIG_*`` in the loader's env).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_CLUSTER_VARS = (
    "ASE_CONFIG_ADDRESS",
    "ASE_CONFIG_ACCOUNT",
    "ASE_CONFIG_PASSWORD",
    "ASE_REGION",
    "ASE_PROJECT",
    "ASE_GROUP",
    "ASE_LB",
)


@pytest.fixture(scope="session", autouse=True)
def _isolated_ase_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("ase-home")
    saved = {k: os.environ.get(k) for k in ("ASE_HOME", *_CLUSTER_VARS)}
    os.environ["ASE_HOME"] = str(home)
    for var in _CLUSTER_VARS:
        os.environ.pop(var, None)
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
