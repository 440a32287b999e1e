"""The reliability regressions run against a real cluster, as the gateway tests do (each module's
gateway: the `gw` fixture, from the module's SERVING)."""

from __future__ import annotations

from tests.gateway.conftest import centre, cluster, gw

__all__ = ["centre", "cluster", "gw"]
