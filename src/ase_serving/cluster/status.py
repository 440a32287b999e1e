"""``asectl cluster status``: what runs, what is healthy, which services and loader instances exist.

The document (later issues add fields; these names stay)::

    {"components": [{"name": "config", "url": "http://127.0.0.1:2390", "healthy": true}, ...],
     "services": [{"serviceId": "echo", "version": "1.0", "routes": ["/v1/private/echo"],
                   "urls": ["http://127.0.0.1:2392/v1/private/echo"],      # with a gateway
                   "schema": true,
                   "instances": [{"address": "127.0.0.1:50051", "lic_total": 4, "lic_idle": 3,
                                  "healthy": true}]}]}

Services are the union of the service schemas in the settings' (project, group) and the
instances in the registry. An instance is healthy when its ``live`` attribute is true and, when it
publishes a ``metrics_url``, that endpoint's ``/health`` answers 200; its health is null (unknown)
when it is live but that URL's host does not resolve here (a name inside a compose or Kubernetes
network).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ase_serving.cluster import owners
from ase_serving.cluster.access import PING_TIMEOUT, ClusterUnreachable, check_access, opened
from ase_serving.cluster.local import LocalCluster
from ase_serving.cluster_settings import ClusterSettings, ase_home
from ase_serving.schema import is_service_schema, parse_json, schema_routes
from ase_serving.store import Backend, ConfigScope, Instance, StoreError

#: Seconds one component or instance health probe may take.
HEALTH_TIMEOUT = 2.0


def health_url(url: str) -> str:
    """The ``/health`` endpoint next to a metrics URL (or under a component's base URL)."""
    base = url.rstrip("/")
    if base.endswith("/metrics"):
        base = base[: -len("/metrics")]
    return base + "/health"


async def http_health(client: httpx.AsyncClient, url: str) -> tuple[bool, str | None, dict[str, Any]]:
    """(healthy, why not, the /health document or {})."""
    try:
        resp = await client.get(health_url(url), timeout=HEALTH_TIMEOUT)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, {}
    if resp.status_code != 200:
        return False, f"/health answered {resp.status_code}", {}
    # A component that answers 200 while degraded (a gateway serving its last known state) says so
    # in its body: "status" and "problems".
    try:
        doc = resp.json()
    except ValueError:
        return True, None, {}
    if not isinstance(doc, dict):
        return True, None, {}
    status = doc.get("status")
    if status in (None, "ok"):
        return True, None, doc
    problems = doc.get("problems") or {}
    shown = (
        "; ".join(f"{k}: {v}" for k, v in list(problems.items())[:3]) if isinstance(problems, dict) else ""
    )
    more = f" (+{len(problems) - 3} more)" if isinstance(problems, dict) and len(problems) > 3 else ""
    return False, f"{status}" + (f": {shown}{more}" if shown else ""), doc


async def http_healthy(client: httpx.AsyncClient, url: str) -> tuple[bool, str | None]:
    healthy, why, _doc = await http_health(client, url)
    return healthy, why


def not_ours(
    name: str, url: str, doc: dict[str, Any], settings: ClusterSettings, home: Path | None = None
) -> str | None:
    """Why what answers at ``url`` is not this cluster's component ``name``, or None.

    Another cluster's gateway on the same port answers /health with 200 as well, so a 200 alone
    proves nothing. Where ``asectl init`` started the component under this home (its pid file),
    the pid that answered must be that process or its child. Otherwise, when both this cluster's
    config centre and the one the component reports are on this machine (loopback), they must be
    the same; a centre named otherwise (inside a compose or Kubernetes network, or by another
    address of this machine) cannot be compared, and is not held against it."""
    home = home or ase_home()
    cluster = LocalCluster(home)
    pid = doc.get("pid")
    if cluster.pid_file(name).exists():
        rec = cluster.running(name, prune=False)
        if rec is not None and (not isinstance(pid, int) or owners.descends_from(pid, rec.pid)):
            return None
        ours = (
            f"this cluster's {name} (pid {rec.pid})"
            if rec is not None
            else f"this cluster's {name} is not running and"
        )
        return f"{ours} does not answer at {url}: {_who(url, pid)} does; {_WHAT_TO_DO}"
    config = doc.get("config")
    theirs = config.get("address") if isinstance(config, dict) else None
    if not isinstance(theirs, str) or not (_on_loopback(theirs) and _on_loopback(settings.address)):
        return None
    if same_centre(theirs, settings.address):
        return None
    return (
        f"what answers at {url} serves the config centre {theirs}, not this cluster's "
        f"({settings.address}): {_who(url, pid)}; {_WHAT_TO_DO}"
    )


_WHAT_TO_DO = "stop that one, or `asectl down` and `asectl init` this cluster with another port"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}


def _who(url: str, pid: object) -> str:
    port = urlsplit(url).port
    seen = owners.holder(port) if port else None
    if seen is not None:
        return str(seen)
    return f"pid {pid}" if isinstance(pid, int) else "another process"


def _endpoints(address: str) -> tuple[str, set[tuple[str, str]]]:
    """``etcd://h1:p1,h2:p2`` -> ("etcd", {(h1, p1), (h2, p2)}); loopback names become one."""
    scheme, _, rest = address.partition("://")
    ends = set()
    for endpoint in rest.split("/", 1)[0].split(","):
        endpoint = endpoint.rsplit("@", 1)[-1]
        if endpoint.startswith("["):
            host, _, port = endpoint[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = endpoint.partition(":")
        host = host.lower()
        ends.add(("loopback" if host in _LOOPBACK else host, port))
    return scheme.lower(), ends


def _on_loopback(address: str) -> bool:
    return all(host == "loopback" for host, _ in _endpoints(address)[1])


def same_centre(a: str, b: str) -> bool:
    """Whether two config centre addresses name the same centre: the same scheme and a shared
    endpoint (``etcd://h1:p1,h2:p2`` lists several; loopback names are one)."""
    (sa, ea), (sb, eb) = _endpoints(a), _endpoints(b)
    return sa == sb and bool(ea & eb)


async def lb_health(address: str) -> tuple[bool, str | None]:
    """The LB service's own health check (``ase_serving.lb.client.lb_healthy``)."""
    from ase_serving.lb.client import lb_healthy

    result: Any
    if inspect.iscoroutinefunction(lb_healthy):
        result = await lb_healthy(address, HEALTH_TIMEOUT)
    else:
        # A blocking check: keep the event loop free for the other probes.
        result = await asyncio.to_thread(lb_healthy, address, HEALTH_TIMEOUT)
    return bool(result), None if result else "no answer to the LB health check"


def _component(name: str, url: str, healthy: bool, error: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "url": url, "healthy": healthy}
    if error:
        doc["error"] = error
    return doc


async def _services(
    backend: Backend, settings: ClusterSettings, client: httpx.AsyncClient, problems: dict[str, str]
) -> list[Any]:
    """The services and their instances; records the store could not read go to ``problems``."""
    services: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(service: str, version: str) -> dict[str, Any]:
        return services.setdefault(
            (service, version),
            {"serviceId": service, "version": version, "routes": [], "schema": False, "instances": []},
        )

    items, _ = await backend.config.list(ConfigScope(settings.project, settings.group))
    problems.update(getattr(backend.config, "bad", {}))
    for item in items:
        doc, problem = parse_json(item.content)
        if problem is None and is_service_schema(doc):
            meta = doc["meta"] if isinstance(doc["meta"], dict) else {}
            svc = entry(
                str(meta.get("serviceId") or item.key.service), str(meta.get("version") or item.key.version)
            )
            svc["schema"] = True
            svc["routes"] = sorted({*svc["routes"], *schema_routes(doc)})

    instances: list[Instance] = []
    if backend.registry is not None:
        instances, _ = await backend.registry.instances()
        problems.update(getattr(backend.registry, "bad", {}))
    checks = await asyncio.gather(*(_instance_health(client, inst) for inst in instances))
    for inst, (healthy, error) in zip(instances, checks, strict=True):
        doc = {
            "address": inst.address,
            "lic_total": inst.lic("lic_total"),
            "lic_idle": inst.lic("lic_idle"),
            "healthy": healthy,
        }
        if error:
            doc["error"] = error
        entry(inst.service, inst.version)["instances"].append(doc)
    return [services[k] for k in sorted(services)]


async def _resolves(host: str) -> bool:
    """Whether ``host`` resolves from this machine (False only for a definite "no such name")."""
    try:
        await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, None), HEALTH_TIMEOUT)
    except socket.gaierror:
        return False
    except (TimeoutError, OSError):
        pass  # the probe itself will report it
    return True


async def _instance_health(client: httpx.AsyncClient, inst: Instance) -> tuple[bool | None, str | None]:
    """(True, None) healthy; (False, why) not; (None, why) unknown: live in the registry, but its
    /health is under a name that only resolves inside the cluster's network (compose, Kubernetes)."""
    if inst.attrs.get("live") is not True:
        return False, "not live (draining or not ready)"
    url = inst.attrs.get("metrics_url")
    if not (isinstance(url, str) and url):
        return True, None
    host = urlsplit(url).hostname
    if host and not await _resolves(host):
        return None, f"live; its /health host {host!r} does not resolve from this machine"
    return await http_healthy(client, url)


async def gather_status(settings: ClusterSettings) -> dict[str, Any]:
    """The status document; never raises for an unreachable component (it is reported unhealthy)."""
    components: list[dict[str, Any]] = []
    services: list[Any] = []
    problems: dict[str, str] = {}
    async with httpx.AsyncClient() as client:
        probes: list[Any] = []
        names: list[tuple[str, str]] = []
        if settings.lb:
            names.append(("lb", settings.lb))
            probes.append(lb_health(settings.lb))
        for name, url in sorted(settings.components.items()):
            if name not in ("config", "lb"):
                names.append((name, url))
                probes.append(http_health(client, url))
        others = asyncio.gather(*probes, return_exceptions=True)
        try:
            async with opened(settings) as backend:
                await check_access(backend, settings.account, PING_TIMEOUT)
                components.append(_component("config", settings.address, True, None))
                services = await _services(backend, settings, client, problems)
                gateway = settings.components.get("gateway")
                if gateway:
                    for svc in services:
                        base = gateway.rstrip("/")
                        svc["urls"] = [base + r for r in svc["routes"]]
                        if svc["schema"]:
                            svc["docs"] = f"{base}/docs?service={svc['serviceId']}"
        except (StoreError, OSError) as exc:
            if not components:
                reason = str(exc) if not isinstance(exc, ClusterUnreachable) else str(exc).split("; start")[0]
                components.append(_component("config", settings.address, False, reason))
        for (name, url), result in zip(names, await others, strict=True):
            if isinstance(result, BaseException):
                components.append(_component(name, url, False, f"{type(result).__name__}: {result}"))
            elif isinstance(result, tuple) and len(result) == 3:
                components.append(_http_component(settings, name, url, *result, services))
            else:
                components.append(_component(name, url, *result))
    return {"components": components, "services": services, "problems": problems}


def _http_component(
    settings: ClusterSettings,
    name: str,
    url: str,
    healthy: bool,
    why: str | None,
    doc: dict[str, Any],
    services: list[Any],
) -> dict[str, Any]:
    """A component probed by its /health: unhealthy when what answered is not ours; a gateway's
    schema problems (conflicts, schemas it cannot load) are listed, and each service says whether
    that gateway serves it."""
    if healthy:
        foreign = not_ours(name, url, doc, settings)
        if foreign is not None:
            return _component(name, url, False, foreign)
    comp = _component(name, url, healthy, why)
    problems = doc.get("problems")
    if isinstance(problems, dict) and problems:
        comp["problems"] = {str(k): str(v) for k, v in problems.items()}
    served = doc.get("services")
    if name == "gateway" and healthy and isinstance(served, list):
        live = {(str(s.get("serviceId")), str(s.get("version"))) for s in served if isinstance(s, dict)}
        for svc in services:
            if svc["schema"]:
                svc["served"] = (svc["serviceId"], svc["version"]) in live
    return comp


def all_healthy(doc: dict[str, Any]) -> bool:
    return all(c["healthy"] for c in doc["components"]) and not doc.get("problems")
