"""What ``asectl loader run`` prints about the service's API: its URLs, its docs page and a call to
try, or the one line saying what is missing (no schema) or wrong (a broken API definition).

Kept apart from :mod:`.loader_serve` (the loader's own process) so that the lines can be tested
without starting one, and light: the loader imports this module for as long as it serves.
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from ase_serving.schema import ServiceSchema

__all__ = ["api_lines", "call_line", "definition_line"]

#: The text the printed call sends to a text input.
SAMPLE_TEXT = "hello ASE"


def definition_line(service: str, problems: list[str], folder: str) -> str:
    """The one line ``loader run`` refuses to start with when the API definition has problems."""
    n = len(problems)
    return (
        f"cannot serve {service}: {n} problem{'s' if n != 1 else ''} in its API definition, so no gateway "
        f"would serve it: {'; '.join(problems)}; fix {'them' if n != 1 else 'it'} and run again "
        f"(`asectl loader test {shlex.quote(folder)}` checks it without a server)"
    )


def api_lines(service: str, gateway: str | None, schema: ServiceSchema | None) -> list[str]:
    """Where the service's API and docs are and a call to try, when the cluster has a gateway; when
    the project brings no schema, the one line saying what to add (its URLs would answer 10404)."""
    if not gateway:
        return []
    if schema is None:
        from ase_serving.loader.project_schemas import no_schema_line

        return [f"api  none: {no_schema_line(service)}"]
    base = gateway.rstrip("/")
    modes = schema.modes
    how = " and ".join(
        m for m in (("POST" if "once" in modes else ""), ("WebSocket" if "session" in modes else "")) if m
    )
    lines = [f"api  {base}{route}  ({how})" for route in schema.routes]
    lines.append(f"docs {base}/docs?service={schema.service_id}")
    lines.append(f"try  {call_line(schema)}    # in another terminal")
    return lines


def call_line(schema: ServiceSchema, home: str | None = None) -> str:
    """An ``asectl call`` command for ``schema``'s service that its schema accepts: its required
    parameters with example values, its required inputs (else the first), text ones with
    :data:`SAMPLE_TEXT`, others from a file to name. ``ASE_HOME=...`` leads it when this process
    has one set (another terminal may not), so it works as printed."""
    from ase_serving.schema.openapi import example_value

    args = ["asectl", "call", schema.service_id]
    if "once" not in schema.modes:
        args.append("--session")
    params = _section(schema.schemainput, "parameter")
    own = params.get("properties", {}).get(schema.service_id, {}) if isinstance(params, dict) else {}
    own = own if isinstance(own, dict) else {}
    props = own.get("properties", {})
    for name in own.get("required", []):
        value = example_value(props.get(name, {})) if isinstance(props.get(name), dict) else "x"
        args += ["--param", f"{name}={_param_text(value)}"]
    payload = _section(schema.schemainput, "payload")
    required = [n for n in payload.get("required", []) if n in schema.inputs]
    for name in required or list(schema.inputs)[:1]:
        kind = str(schema.inputs[name].get("dataType") or "text")
        if kind == "text":
            args += ["--data", f"{name}={SAMPLE_TEXT}"]
        else:
            args += ["--data", f"{name}:{kind}=@FILE"]
    home = home if home is not None else os.environ.get("ASE_HOME")
    prefix = f"ASE_HOME={shlex.quote(home)} " if home else ""
    return prefix + shlex.join(args)


def _section(schemainput: dict[str, Any], name: str) -> dict[str, Any]:
    part = schemainput.get("properties", {}).get(name, {})
    return part if isinstance(part, dict) else {}


def _param_text(value: Any) -> str:
    """``--param`` reads VALUE as JSON when it parses, else as a string: write it so."""
    if isinstance(value, str):
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return orjson.dumps(value).decode()
