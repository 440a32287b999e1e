"""Where a service schema is pushed: the cluster its metadata names, and its config key.

``asectl api create --push`` and the API design page (``asectl api web``) push through here, so
that both pick the same cluster, say the same thing about a region that is not set up, and
write the same key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ase_serving.cluster.access import load_settings, opened
from ase_serving.home import ClusterSettings, SettingsError
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
                f"region {spec.region!r} (metadata.region) is not set up; "
                f"pushing to region {settings.region!r}"
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


async def push_schema(target: PushTarget, compiled: Compiled) -> ConfigItem:
    """Write ``compiled`` as a new revision of its item; store errors keep their standard wording."""
    async with opened(target.settings) as backend:
        return await backend.config.put(target.key, compiled.content())
