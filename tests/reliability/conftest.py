"""The reliability regressions run against a real cluster, as the gateway tests do."""

from __future__ import annotations

from tests.gateway.conftest import centre, cluster

__all__ = ["centre", "cluster"]
