"""Fixtures of the fronts' tests: the gateway tests' real config centre and cluster, and nginx."""

from __future__ import annotations

from tests.gateway.conftest import centre, cluster

__all__ = ["centre", "cluster"]
