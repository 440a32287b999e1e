"""The API design page's model (a "design") and the ApiSchema YAML it stands for.

The page edits a design, a JSON document shaped for tables rather than for YAML::

    {"apiVersion": "ase-serving/v1",
     "metadata": {"serviceName": "tts", "version": "1.0.0", "name": "tts", ...},   # as in the YAML
     "service": {"description": "...", "interface": ["once"], "read_timeout": 15, ...},  # spec's own keys
     "params": [{"name": "speed", "required": true,
                 "schema": {"type": "integer", "minimum": 0, "maximum": 100},      # this level's keywords
                 "properties": [...],                                              # an object's, as rows
                 "items": {...} or null}],                                         # an array's element
     "paramsOpen": false,                                                          # additionalProperties
     "inputs": [{"name": "text", "type": "text", "required": true, "encoding": ["utf8"],
                 "compress": [], "format": [], "description": "", "attrs": {"sample_rate": 16000}}],
     "outputs": [...]}

Rows are lists, not mappings, so that two rows with one name reach the YAML as two keys and
``asectl api create``'s reader reports them as it would in a file. The page never checks a design
itself: :mod:`.checks` writes it as YAML (:func:`design_yaml`) and reads that with the toolchain.
"""

from __future__ import annotations

from typing import Any

import yaml

from ase_serving.schema.service import default_route
from ase_serving.schema.yaml_api import API_VERSIONS, KEY_ALIASES, TYPE_ALIASES

__all__ = ["DATA_ATTRS", "design_from_schema", "design_from_yaml", "design_yaml", "empty_design"]

#: Data item attributes the page has columns for (the reader accepts more: kept in ``attrs``).
DATA_ATTRS = ("sample_rate", "channels")
_DATA_LISTS = ("encoding", "compress", "format")
#: Data keys the reader knows; any other is ignored by it (with a warning), so the page drops it.
_DATA_KNOWN = ("type", "description", "required", *_DATA_LISTS)
_DATA_ATTR_KEYS = ("sample_rate", "channels", "bit_depth", "width", "height", "frame_rate")
_REQUEST_PARTS = ("request", "response")


class _Pairs(list[tuple[str, Any]]):
    """A YAML mapping that may hold one key twice (two rows of one name)."""


class _Row(_Pairs):
    """A parameter or data item: in flow style when it holds no mapping or list ({type: integer})."""


class _Dumper(yaml.SafeDumper):
    pass


def _scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list, tuple))


def _scalars(value: Any) -> bool:
    """A plain list of scalars (``enum: [a, b]``), not a mapping (:class:`_Pairs` is a list)."""
    return type(value) is list and all(map(_scalar, value))


def _pairs(dumper: yaml.SafeDumper, data: _Pairs) -> yaml.Node:
    flat = isinstance(data, _Row) and all(_scalar(v) or _scalars(v) for _, v in data)
    return dumper.represent_mapping("tag:yaml.org,2002:map", list(data), flow_style=flat and bool(data))


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(map(_scalar, data))
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(_Pairs, _pairs)
_Dumper.add_representer(_Row, _pairs)
_Dumper.add_representer(list, _list)


def empty_design(service: str, version: str = "1.0.0") -> dict[str, Any]:
    """A new design: the service named, served once and as a session, nothing else yet."""
    return {
        "apiVersion": API_VERSIONS[0],
        "metadata": {"serviceName": service, "version": version, "name": service},
        "service": {"description": "", "interface": ["once", "session"]},
        "params": [],
        "paramsOpen": False,
        "inputs": [],
        "outputs": [],
    }


# -- design -> YAML ----------------------------------------------------------------------------


def _given(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _param_yaml(row: dict[str, Any]) -> Any:
    schema = _mapping(row.get("schema"))
    out = _Row((k, v) for k, v in schema.items() if _given(v) or (k == "default" and v == ""))
    children = [c for c in row.get("properties") or [] if isinstance(c, dict)]
    if children or (schema.get("type") == "object" and "properties" in row):
        out.append(("properties", _Pairs((str(c.get("name", "")), _param_yaml(c)) for c in children)))
        required = [str(c.get("name", "")) for c in children if c.get("required")]
        if required:
            out.append(("required", required))
    items = row.get("items")
    if isinstance(items, dict):
        out.append(("items", _param_yaml(items)))
    return out


def _data_yaml(row: dict[str, Any], with_required: bool) -> Any:
    out = _Row([("type", row.get("type", ""))])
    for key in _DATA_LISTS:
        values = [v for v in row.get(key) or [] if v != ""]
        if values:
            out.append((key, values[0] if len(values) == 1 else values))
    attrs = _mapping(row.get("attrs"))
    out.extend((k, v) for k, v in attrs.items() if _given(v))
    if row.get("description"):
        out.append(("description", row["description"]))
    if with_required and row.get("required"):
        out.append(("required", True))
    return out


def _payload(rows: list[dict[str, Any]], inputs: bool) -> Any:
    props = _Pairs((str(r.get("name", "")), _data_yaml(r, False)) for r in rows)
    out = _Pairs([("properties", props)])
    required = [str(r.get("name", "")) for r in rows if inputs and r.get("required")]
    if required:
        out.append(("required", required))
    return out


def _tree(design: dict[str, Any]) -> Any:
    meta = _Pairs((k, v) for k, v in (design.get("metadata") or {}).items() if _given(v))
    spec = _Pairs((k, v) for k, v in (design.get("service") or {}).items() if _given(v))
    request = _Pairs()
    params = [r for r in design.get("params") or [] if isinstance(r, dict)]
    if params or design.get("paramsOpen"):
        section = _Pairs([("properties", _Pairs((str(r.get("name", "")), _param_yaml(r)) for r in params))])
        required = [str(r.get("name", "")) for r in params if r.get("required")]
        if required:
            section.append(("required", required))
        if design.get("paramsOpen"):
            section.append(("additionalProperties", True))
        request.append(("parameters", section))
    if design.get("inputs"):
        request.append(("payload", _payload(design["inputs"], True)))
    if request:
        spec.append(("request", request))
    if design.get("outputs"):
        spec.append(("response", _Pairs([("payload", _payload(design["outputs"], False))])))
    return _Pairs(
        [
            ("apiVersion", design.get("apiVersion") or API_VERSIONS[0]),
            ("kind", "ApiSchema"),
            ("metadata", meta),
            ("spec", spec),
        ]
    )


def design_yaml(design: dict[str, Any]) -> str:
    """The ApiSchema YAML of ``design``: what Save writes and ``asectl api create`` reads."""
    tree = _tree(design)
    text: str = yaml.dump(tree, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    return text


# -- YAML -> design ----------------------------------------------------------------------------


def _renamed(doc: Any) -> Any:
    """``doc`` with the seed's misspelt keys read as the right ones (the reader warns about them)."""
    if isinstance(doc, dict):
        return {KEY_ALIASES.get(str(k), str(k)): _renamed(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_renamed(v) for v in doc]
    return doc


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _param_row(name: str, doc: Any, required: bool) -> dict[str, Any]:
    doc = _mapping(doc)
    row: dict[str, Any] = {
        "name": name,
        "required": required,
        "schema": {k: v for k, v in doc.items() if k not in ("properties", "required", "items")},
        "items": _param_row("items", doc["items"], False) if "items" in doc else None,
    }
    if "properties" in doc:
        listed = _names(doc.get("required"))
        row["properties"] = [_param_row(k, v, k in listed) for k, v in _mapping(doc["properties"]).items()]
        row["schema"].setdefault("type", "object")
    return row


def _strings(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _data_row(name: str, doc: Any, required: bool) -> dict[str, Any]:
    doc = _mapping(doc)
    dtype = doc.get("type")
    dtype = TYPE_ALIASES[dtype][0] if isinstance(dtype, str) and dtype in TYPE_ALIASES else dtype
    return {
        "name": name,
        "type": "" if dtype is None else str(dtype),
        "required": required or doc.get("required") is True,
        "description": str(doc.get("description") or ""),
        **{key: _strings(doc.get(key)) for key in _DATA_LISTS},
        "attrs": {k: doc[k] for k in _DATA_ATTR_KEYS if k in doc},
    }


def _data_rows(payload: Any) -> list[dict[str, Any]]:
    payload = _mapping(payload)
    listed = _names(payload.get("required"))
    return [_data_row(k, v, k in listed) for k, v in _mapping(payload.get("properties")).items()]


def design_from_yaml(text: str) -> dict[str, Any]:
    """The design of an ApiSchema file as the page shows it: the seed's misspellings read as the
    right words, keys the reader ignores dropped. Its problems and warnings are the reader's
    (:func:`.checks.check_text`); a file that is no YAML mapping gives an empty design."""
    try:
        doc = _renamed(yaml.safe_load(text))
    except yaml.YAMLError:
        doc = None
    doc = _mapping(doc)
    meta = _mapping(doc.get("metadata"))
    spec = _mapping(doc.get("spec"))
    request = _mapping(spec.get("request"))
    params = _mapping(request.get("parameters"))
    listed = _names(params.get("required"))
    version = doc.get("apiVersion")
    return {
        "apiVersion": version if version in API_VERSIONS else API_VERSIONS[0],
        "metadata": {k: v for k, v in meta.items() if k != "creationTimestamp" or v is not None},
        "service": {k: v for k, v in spec.items() if k not in _REQUEST_PARTS},
        "params": [_param_row(k, v, k in listed) for k, v in _mapping(params.get("properties")).items()],
        "paramsOpen": params.get("additionalProperties") is True,
        "inputs": _data_rows(request.get("payload")),
        "outputs": _data_rows(_mapping(spec.get("response")).get("payload")),
    }


# -- service schema JSON -> design ("start from" a schema in the config centre) ---------------


def _schema_param(name: str, s: Any, required: bool) -> dict[str, Any]:
    s = _mapping(s)
    doc = dict(s)
    if "properties" in doc:
        doc["properties"] = _mapping(doc["properties"])
    return _param_row(name, doc, required)


def _enum(s: Any) -> list[str]:
    return [str(v) for v in _mapping(s).get("enum") or []]


def _schema_data(name: str, meta: dict[str, Any], s: dict[str, Any], required: bool) -> dict[str, Any]:
    props = _mapping(s.get("properties"))
    dtype = str(meta.get("dataType") or "other")
    attrs = {}
    for key in _DATA_ATTR_KEYS:
        enum = _mapping(props.get(key)).get("enum")
        if isinstance(enum, list) and enum:
            attrs[key] = enum[0]
    return {
        "name": name,
        "type": dtype,
        "required": required,
        "description": str(s.get("description") or ""),
        **{key: _enum(props.get(key)) for key in _DATA_LISTS},
        "attrs": attrs,
    }


def design_from_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The design that gives ``doc`` again (a schema ``api create`` or the page made); for other
    schemas (the original gateway's files), what can be read of it."""
    meta = _mapping(doc.get("meta"))
    sid = str(meta.get("serviceId") or "")
    own = _mapping(meta.get(sid))
    accepts, declared_inputs = _mapping(own.get("accept")), _mapping(own.get("input"))
    props = _mapping(_mapping(doc.get("schemainput")).get("properties"))
    service_params = _mapping(_mapping(_mapping(props.get("parameter")).get("properties")).get(sid))
    payload = _mapping(props.get("payload"))
    outputs = _mapping(_mapping(doc.get("schemaoutput")).get("properties"))
    required = _names(service_params.get("required"))
    route = meta.get("route")
    service: dict[str, Any] = {"description": meta.get("description", "")}
    interface = meta.get("interface")
    service["interface"] = [interface] if isinstance(interface, str) else interface or ["once", "session"]
    if route and route != default_route(sid):
        service["route"] = route
    if meta.get("sub") not in (None, "ase"):
        service["sub"] = meta["sub"]
    for key in ("hosts", "read_timeout", "session_timeout", "queue_timeout", "max_body", "max_frame"):
        if meta.get(key) is not None:
            service[key] = meta[key]
    if meta.get("client_errors"):
        service["client_errors"] = meta["client_errors"]
    metadata = {"serviceName": sid, "version": str(meta.get("version") or "1.0.0")}
    for key, field in (
        ("name", "name"),
        ("project", "projectName"),
        ("group", "group"),
        ("region", "region"),
    ):
        if meta.get(key):
            metadata[field] = meta[key]
    in_required = _names(payload.get("required"))
    return {
        "apiVersion": API_VERSIONS[0],
        "metadata": metadata,
        "service": service,
        "params": [
            _schema_param(k, v, k in required)
            for k, v in _mapping(service_params.get("properties")).items()
            if k not in accepts
        ],
        "paramsOpen": service_params.get("additionalProperties", True) is not False,
        "inputs": [
            _schema_data(k, _mapping(declared_inputs.get(k)), _mapping(v), k in in_required)
            for k, v in _mapping(payload.get("properties")).items()
        ],
        "outputs": [
            _schema_data(k, _mapping(accepts.get(k)), _mapping(v), False) for k, v in outputs.items()
        ],
    }
