"""ApiSchema YAML (the seed's ``ai_api.yml``) -> :class:`~.spec.ApiSpec`.

The YAML is read node by node so that every value keeps its line: errors and warnings read
``ai_api.yml:14: spec.request.parameters.properties.speed: minimum 300 > maximum 200``. The
seed's own example works as written: its misspellings (``paramters``, ``palyload``, ``vedio``,
``configFilname``) and ``type: base64`` are accepted with a warning naming the right word.

Beyond the seed (all optional, in ``spec``): ``interface`` (``once``, ``session`` or a list; default
both), ``route`` (string or list), ``hosts``, ``sub``, ``read_timeout``/``session_timeout`` (seconds)
and ``description``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ase_serving.schema.spec import (
    BYTES_LIMITS,
    DATA_TYPES,
    LIMITS,
    MODES,
    ApiDefinitionError,
    ApiProblem,
    ApiSpec,
    DataSpec,
    Param,
    Where,
    check_spec,
)

__all__ = ["API_VERSIONS", "KEY_ALIASES", "TYPE_ALIASES", "YamlApi", "read_api_text", "read_api_yaml"]

API_VERSIONS = ("ase-serving/v1", "iflytek.com/v1alpha1")
#: The seed's misspellings, read as the right words (with a warning).
KEY_ALIASES = {"paramters": "parameters", "palyload": "payload", "configFilname": "configFileName"}
TYPE_ALIASES = {
    "vedio": ("video", "'vedio' is a misspelling of 'video'"),
    "base64": ("other", "'base64' is not a data type (all payload data travels as base64): read as 'other'"),
}
_TOP = ("apiVersion", "kind", "metadata", "spec")
_METADATA = (
    "group",
    "region",
    "serviceName",
    "projectName",
    "version",
    "configFileName",
    "creationTimestamp",
    "name",
    "description",
    "labels",
    "annotations",
)
_SPEC = (
    "request",
    "response",
    "interface",
    "route",
    "hosts",
    "sub",
    *LIMITS,
    "client_errors",
    "description",
)
_PARAM_KEYS = (
    "type",
    "description",
    "title",
    "default",
    "examples",
    "enum",
    "const",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
)
_DATA_ATTRS = ("sample_rate", "channels", "bit_depth", "width", "height", "frame_rate")
_DATA_KEYS = ("type", "encoding", "compress", "format", "description", "required", *_DATA_ATTRS)

Path_ = tuple[str | int, ...]


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class YamlApi:
    """What reading an ApiSchema file gave: the spec, and warnings (aliases, ignored keys)."""

    spec: ApiSpec
    warnings: list[ApiProblem] = field(default_factory=list)


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path_, int] = {}
        self.problems: list[ApiProblem] = []
        self.warnings: list[ApiProblem] = []

    def where(self, path: Path_) -> Where:
        line = None
        for n in range(len(path), -1, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                break
        return Where(self.file, line, _dotted(path))

    def error(self, path: Path_, message: str) -> None:
        self.problems.append(ApiProblem(self.where(path), message))

    def warn(self, path: Path_, message: str) -> None:
        self.warnings.append(ApiProblem(self.where(path), message))

    # -- YAML nodes -> Python values, keeping lines ------------------------------------------

    def load(self, text: str) -> Any:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            return None if node is None else self._value(loader, node, ())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            what = exc.problem or exc.context or "syntax error"
            self.problems.append(ApiProblem(Where(self.file, line, ""), f"invalid YAML: {what}"))
            return None
        finally:
            loader.dispose()

    def _value(self, loader: yaml.SafeLoader, node: yaml.Node, path: Path_) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    key = str(key)
                at = (*path, key)
                if key in KEY_ALIASES:
                    right = KEY_ALIASES[key]
                    self.lines.setdefault((*path, right), key_node.start_mark.line + 1)
                    self.warn((*path, right), f"{key!r} is a misspelling of {right!r}; read as {right!r}")
                    key, at = right, (*path, right)
                line = key_node.start_mark.line + 1
                if key in out:
                    first = self.lines.get(at)
                    self.problems.append(
                        ApiProblem(
                            Where(self.file, line, _dotted(at)),
                            f"duplicate key {key!r} (first at line {first})",
                        )
                    )
                    continue
                self.lines.setdefault(at, line)
                out[key] = self._value(loader, value_node, at)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._value(loader, item, (*path, i)) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    # -- shape checks --------------------------------------------------------------------------

    def mapping(self, value: Any, path: Path_, what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping ({what})")
            return {}
        return value

    def known(self, doc: dict[str, Any], path: Path_, keys: tuple[str, ...], strict: bool) -> None:
        for key in doc:
            if key in keys:
                continue
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(keys)})"
            if strict:
                self.error((*path, key), f"unknown key {key!r}{hint}")
            else:
                self.warn((*path, key), f"unknown key {key!r} ignored{hint}")

    def text(self, value: Any, path: Path_, default: str | None = None) -> str | None:
        if value is None:
            return default
        if isinstance(value, (bool, dict, list)):
            self.error(path, f"must be a string, not {value!r}")
            return default
        return str(value)

    def strings(self, value: Any, path: Path_) -> list[str]:
        """A string or a list of strings (``""`` or null = none)."""
        if value is None or value == "":
            return []
        items = value if isinstance(value, list) else [value]
        out = []
        for i, v in enumerate(items):
            at = (*path, i) if isinstance(value, list) else path
            if isinstance(v, (dict, list, bool)) or v is None:
                self.error(at, f"must be a string or a list of strings, not {v!r}")
            elif v != "":
                out.append(str(v))
        return out

    def names(self, value: Any, path: Path_) -> dict[str, Where]:
        if value is None:
            return {}
        if not isinstance(value, list):
            self.error(path, "must be a list of names")
            return {}
        out: dict[str, Where] = {}
        for i, name in enumerate(value):
            if not isinstance(name, str):
                self.error((*path, i), f"must be a name, not {name!r}")
            elif name in out:
                self.error((*path, i), f"{name!r} is listed twice")
            else:
                out[name] = self.where((*path, i))
        return out

    # -- the parts -----------------------------------------------------------------------------

    def param(self, name: str, value: Any, path: Path_, required: bool) -> Param:
        doc = self.mapping(value, path, "a JSON Schema: type, description, minimum, ...")
        self.known(doc, path, _PARAM_KEYS, strict=True)
        schema = {k: v for k, v in doc.items() if k not in ("properties", "required", "items")}
        p = Param(name, schema, self.where(path), required)
        if "properties" in doc:
            props = self.mapping(doc["properties"], (*path, "properties"), "name -> parameter")
            listed = self.names(doc.get("required"), (*path, "required"))
            p.required_where = listed
            p.children = [self.param(k, v, (*path, "properties", k), k in listed) for k, v in props.items()]
            schema.setdefault("type", "object")
        elif "required" in doc:
            p.required_where = self.names(doc["required"], (*path, "required"))
        if "items" in doc:
            p.items = self.param("items", doc["items"], (*path, "items"), False)
        return p

    def data(self, name: str, value: Any, path: Path_, required: bool) -> DataSpec:
        doc = self.mapping(value, path, "type, encoding, compress, format")
        self.known(doc, path, _DATA_KEYS, strict=False)
        raw_type = doc.get("type")
        dtype = self.text(raw_type, (*path, "type"), "") or ""
        if dtype in TYPE_ALIASES:
            dtype, why = TYPE_ALIASES[dtype]
            self.warn((*path, "type"), why)
        if not dtype:
            self.error((*path, "type"), f"type is required: one of {', '.join(DATA_TYPES)}")
            dtype = "other"
        own = doc.get("required")
        if own is not None and not isinstance(own, bool):
            self.error((*path, "required"), f"must be true or false, not {own!r}")
        d = DataSpec(name, dtype, self.where(path), required=required or own is True)
        d.encoding = self.strings(doc.get("encoding"), (*path, "encoding"))
        d.compress = self.strings(doc.get("compress"), (*path, "compress"))
        d.format = self.strings(doc.get("format"), (*path, "format"))
        d.description = self.text(doc.get("description"), (*path, "description"), "") or ""
        d.attrs = {k: doc[k] for k in _DATA_ATTRS if k in doc}
        return d

    def payload(self, value: Any, path: Path_) -> tuple[list[DataSpec], dict[str, Where]]:
        doc = self.mapping(value, path, "properties: name -> data, required: [names]")
        self.known(doc, path, ("properties", "required"), strict=True)
        listed = self.names(doc.get("required"), (*path, "required"))
        props = self.mapping(doc.get("properties"), (*path, "properties"), "name -> data")
        return [self.data(k, v, (*path, "properties", k), k in listed) for k, v in props.items()], listed


def _number(r: _Reader, value: Any, path: Path_, unit: str = "seconds") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        r.error(path, f"must be a number of {unit}, not {value!r}")
        return None
    return value


def read_api_yaml(path: str | Path, *, service: str | None = None, version: str | None = None) -> YamlApi:
    """Read an ApiSchema file. :class:`ApiDefinitionError` lists every problem (file, line, field).

    ``service``/``version`` override ``metadata.serviceName``/``version`` (a loader whose flags or
    ase.toml name the service otherwise).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ApiDefinitionError(
            [ApiProblem(Where(str(path), None, ""), f"cannot read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError as exc:
        problem = ApiProblem(Where(str(path), None, ""), f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        raise ApiDefinitionError([problem]) from None
    return read_api_text(text, str(path), service=service, version=version)


def read_api_text(text: str, file: str, *, service: str | None = None, version: str | None = None) -> YamlApi:
    """:func:`read_api_yaml` of text already read (``file`` names it in problems): the API design
    page checks what it would write with the very code that ``asectl api create`` reads it with."""
    r = _Reader(file)
    doc = r.load(text)
    if doc is None and r.problems:
        raise ApiDefinitionError(r.problems)
    if not isinstance(doc, dict):
        r.error((), "must be an ApiSchema mapping (apiVersion, kind, metadata, spec)")
        raise ApiDefinitionError(r.problems)
    r.known(doc, (), _TOP, strict=True)
    kind = doc.get("kind")
    if kind != "ApiSchema":
        r.error(("kind",), f"unknown kind {kind!r}: this file must say kind: ApiSchema")
    api_version = doc.get("apiVersion")
    if api_version not in API_VERSIONS:
        r.error(("apiVersion",), f"unknown apiVersion {api_version!r}: use one of {', '.join(API_VERSIONS)}")

    meta = r.mapping(doc.get("metadata"), ("metadata",), "serviceName, version, name, ...")
    r.known(meta, ("metadata",), _METADATA, strict=False)
    service_id = service or r.text(meta.get("serviceName"), ("metadata", "serviceName"))
    if not service_id:
        r.error(("metadata", "serviceName"), "required: the service's id (its route is /v1/private/<id>)")
    ver = version or r.text(meta.get("version"), ("metadata", "version"), "1.0.0") or "1.0.0"
    spec = ApiSpec(service_id=service_id or "", version=ver, where=r.where(("metadata",)))
    spec.name = r.text(meta.get("name"), ("metadata", "name"), "") or ""
    spec.project = r.text(meta.get("projectName"), ("metadata", "projectName"))
    spec.group = r.text(meta.get("group"), ("metadata", "group"))
    spec.region = r.text(meta.get("region"), ("metadata", "region"))
    spec.config_file = r.text(meta.get("configFileName"), ("metadata", "configFileName"))

    body = r.mapping(doc.get("spec"), ("spec",), "request, response, interface, ...")
    r.known(body, ("spec",), _SPEC, strict=True)
    spec.where = r.where(("spec",)) if "spec" in doc else spec.where
    spec.description = r.text(body.get("description"), ("spec", "description"), "") or ""
    spec.modes = r.strings(body.get("interface"), ("spec", "interface")) or list(MODES)
    spec.route = r.strings(body.get("route"), ("spec", "route"))
    spec.hosts = r.strings(body.get("hosts"), ("spec", "hosts"))
    spec.sub = r.text(body.get("sub"), ("spec", "sub"), "ase") or "ase"
    for key in LIMITS:
        setattr(
            spec, key, _number(r, body.get(key), ("spec", key), "bytes" if key in BYTES_LIMITS else "seconds")
        )

    codes = body.get("client_errors")
    if codes is not None:
        if isinstance(codes, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
            spec.client_errors = list(codes)
        else:
            r.error(
                ("spec", "client_errors"),
                "a list of the wrapper's codes that mean a bad request, such as [20002]",
            )

    request = r.mapping(body.get("request"), ("spec", "request"), "parameters, payload")
    r.known(request, ("spec", "request"), ("parameters", "payload"), strict=True)
    at: Path_ = ("spec", "request", "parameters")
    params = r.mapping(request.get("parameters"), at, "properties: name -> JSON Schema, required: [names]")
    r.known(params, at, ("type", "properties", "required", "additionalProperties"), strict=True)
    if params.get("type", "object") != "object":
        r.error((*at, "type"), f"parameters are an object, not {params['type']!r}")
    extra = params.get("additionalProperties", False)
    if not isinstance(extra, bool):
        r.error((*at, "additionalProperties"), "must be true (allow parameters not listed) or false")
    spec.params_open = extra is True
    spec.required_params = r.names(params.get("required"), (*at, "required"))
    props = r.mapping(params.get("properties"), (*at, "properties"), "name -> JSON Schema")
    spec.params = [r.param(k, v, (*at, "properties", k), k in spec.required_params) for k, v in props.items()]
    spec.inputs, spec.required_inputs = r.payload(request.get("payload"), ("spec", "request", "payload"))

    response = r.mapping(body.get("response"), ("spec", "response"), "payload")
    r.known(response, ("spec", "response"), ("payload",), strict=True)
    spec.outputs, _ = r.payload(response.get("payload"), ("spec", "response", "payload"))
    if r.problems:
        # Report the spec's own problems too, so that one run shows everything to fix.
        problems = r.problems + check_spec(spec)
        raise ApiDefinitionError(problems)
    return YamlApi(spec, sorted(r.warnings, key=lambda w: w.where.line or 0))
