"""Fixtures of the fronts' tests: the gateway tests' real config centre, cluster and
module gateway (`gw`, from the module's SERVING), and nginx."""

from __future__ import annotations

from tests.gateway.conftest import centre, cluster, gw

__all__ = ["centre", "cluster", "gw"]
