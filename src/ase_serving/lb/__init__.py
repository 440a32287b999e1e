"""The licence-aware, bypass load balancer: a library (:class:`Balancer`), a registry feed, and a service.

- :mod:`.balancer` — :class:`Balancer`: reports in, addresses out; strategies in :mod:`.strategies`.
- :mod:`.feed` — :class:`~ase_serving.lb.feed.RegistryFeed` keeps a Balancer fed from the registry.
- :mod:`.service` — the LB as its own service (``python -m ase_serving.lb``), for several gateways
  sharing one view: a gRPC port (:mod:`.client`) and a lean-wire port (:mod:`.lean`, the protocol;
  :mod:`.wire_client`, what a gateway's ``--lb`` uses).
"""

from __future__ import annotations

from ase_serving.lb.balancer import Balancer, NodeInfo
from ase_serving.lb.strategies import Strategy, register_strategy, strategy_names

__all__ = ["Balancer", "NodeInfo", "Strategy", "register_strategy", "strategy_names"]
