"""Where a service schema is pushed: the cluster its metadata names, and its config key.

``asectl api create --push`` and the API design page (``asectl api web``) push through here, so
that both pick the same cluster, say the same thing about a region that is not set up, and
write the same key. A push is refused when another schema of the project/group asks for one of
its routes (unless forced), and a push where no gateway of the cluster serves gets a note
(:func:`~ase_serving.cluster.serving.unserved_warning`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ase_serving.cluster.access import load_settings, opened
from ase_serving.cluster.items import check_routes
from ase_serving.cluster.serving import unserved_warning
from ase_serving.cluster_settings import ClusterSettings, SettingsError
from ase_serving.schema import ApiSpec, Compiled
from ase_serving.store import ConfigItem, ConfigKey, StoreError

__all__ = ["PushTarget", "push_schema", "push_target"]


@dataclass
class PushTarget:
    """The cluster's settings, the item's key, and what the user should know (a region that is
    not set up, so another one is used)."""

    settings: ClusterSettings
    key: ConfigKey
    notes: list[str] = field(default_factory=list)


def _settings(spec: ApiSpec, notes: list[str]) -> ClusterSettings:
    try:
        settings = load_settings(spec.project, spec.group)
        if spec.region and spec.region != settings.region:
            other = ClusterSettings.load(region=spec.region)
            if other is not None:
                other.project, other.group = spec.project or other.project, spec.group or other.group
                return other
            notes.append(
                f"region {spec.region!r} (metadata.region) is not set up (`asectl setup --region "
                f"{spec.region}` sets it up); pushing to region {settings.region!r}"
            )
    except SettingsError as exc:
        raise StoreError(str(exc)) from None
    return settings


def push_target(spec: ApiSpec) -> PushTarget:
    """Where ``spec``'s schema goes. :class:`~ase_serving.store.StoreError` when no cluster is set
    up (:class:`~ase_serving.cluster.access.NotSetUp`) and :class:`~ase_serving.store.base.InvalidName`
    when a part of the key cannot be one."""
    notes: list[str] = []
    settings = _settings(spec, notes)
    key = ConfigKey(settings.project, settings.group, spec.service_id, spec.version, spec.item_name)
    return PushTarget(settings, key, notes)


async def push_schema(target: PushTarget, compiled: Compiled, force: bool = False) -> ConfigItem:
    """Write ``compiled`` as a new revision of its item; store errors keep their standard wording.

    :class:`~ase_serving.cluster.items.RouteTaken` when another schema of the scope asks for one
    of its routes (with ``force``: a note instead). After the write, a note when no gateway of the
    cluster serves the item's project/group."""
    key = target.key
    content = compiled.content()
    async with opened(target.settings) as backend:
        shown = f"{key.service}/{key.version}/{key.name}"
        target.notes += await check_routes(backend.config, key, content, shown, force)
        item = await backend.config.put(key, content)
    spec = compiled.spec
    chosen = [
        f"{label} {value}" for label, value in (("projectName", spec.project), ("group", spec.group)) if value
    ]
    why = f" (metadata: {', '.join(chosen)})" if chosen else ""
    try:
        setup = ClusterSettings.load()
    except SettingsError:
        setup = None
    note = await asyncio.to_thread(unserved_warning, key, target.settings, setup, why)
    if note is not None:
        target.notes.append(note)
    return item
