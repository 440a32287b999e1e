"""Where a pushed service schema is served: the (project, group) each known gateway serves.

A gateway serves the service schemas of one (project, group) (``--project``/``--group``, else its
settings). A schema pushed anywhere else is stored without error and served by nobody, so
``asectl api create --push`` asks the cluster's gateway which scope it serves (its ``/health``
says) and warns in one line when the push went elsewhere.
"""

from __future__ import annotations

import httpx

from ase_serving.cluster_settings import ClusterSettings
from ase_serving.store import ConfigKey

#: Seconds the gateway's /health may take; a slower gateway counts as unknown, not as wrong.
_TIMEOUT = 3.0


def gateway_scope(url: str) -> tuple[str, str] | None:
    """(project, group) the gateway at ``url`` serves, or None when it cannot be asked."""
    try:
        doc = httpx.get(f"{url.rstrip('/')}/health", timeout=_TIMEOUT).json()
    except (httpx.HTTPError, ValueError):
        return None
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        return None
    project, group = config.get("project"), config.get("group")
    if isinstance(project, str) and isinstance(group, str):
        return project, group
    return None


def unserved_warning(
    key: ConfigKey, settings: ClusterSettings, setup: ClusterSettings | None, why: str
) -> str | None:
    """One line when no gateway known to this cluster serves ``key``'s (project, group), or None.

    ``settings`` are those the push used (their gateway is asked), ``setup`` the machine's own
    (the scope an ``asectl init`` gateway serves, used when no gateway answers); ``why`` names
    what chose the scope (``metadata.projectName/group``)."""
    where = f"project {key.project}, group {key.group}"
    start = f"`python -m ase_serving.gateway --project {key.project} --group {key.group}`"
    gateway = settings.components.get("gateway")
    scope = gateway_scope(gateway) if gateway else None
    if scope is not None:
        if scope == (key.project, key.group):
            return None
        return (
            f"pushed to {where}{why}, but the gateway at {gateway} serves project {scope[0]}, group "
            f"{scope[1]}: no gateway of this cluster serves it; push where it serves (drop the "
            f"project/group from the definition), or start a gateway for it: {start}"
        )
    if setup is None or (setup.project, setup.group) == (key.project, key.group):
        return None
    return (
        f"pushed to {where}{why}, not to this machine's project {setup.project}, group {setup.group} "
        f"(the one `asectl init`'s gateway serves): only a gateway started for it serves it: {start}"
    )
