"""The gateway: the public HTTP (once) and WebSocket (session) API of every live service schema.

A pipeline of stages, each its own module: :mod:`~.auth` (who calls), :mod:`~.webgate` (the body
against the service schema; base64), :mod:`~.atom` (the loader's request; pick and call a loader),
around the live :mod:`~.routes` kept current from the config centre (:mod:`~.runtime`). The ASGI
app is in :mod:`~.app` and :mod:`~.session`; :mod:`~.server` runs it on uvicorn.
"""

from ase_serving.gateway.settings import GatewaySettings

__all__ = ["GatewaySettings"]
