"""Service schemas (README, "Service schemas"): made from ApiSchema YAML or the ``Api`` class,
checked, loaded, documented.

- :mod:`.yaml_api` / :mod:`.code_api`: the two front ends, each giving an :class:`ApiSpec`;
- :mod:`.spec`: the spec and its checks (every problem with file, line and field);
- :mod:`.spec_to_schema`: spec -> the service schema JSON (``meta``, ``schemainput``, ``schemaoutput``);
- :mod:`.service`: recognise and check a service schema document;
- :mod:`.loaded`: a document as a gateway uses it (ours, or the original gateway's files);
- :mod:`.openapi`: service schemas -> OpenAPI 3.1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ase_serving.schema.from_definition import Compiled, from_code, from_yaml, from_yaml_text
    from ase_serving.schema.loaded import ServiceSchema, load_service_schema
    from ase_serving.schema.openapi import example_request, openapi_document
    from ase_serving.schema.service import (
        Problem,
        ServiceSchemaError,
        check_service_schema,
        default_route,
        is_service_schema,
        parse_json,
        schema_routes,
    )
    from ase_serving.schema.spec import ApiDefinitionError, ApiProblem, ApiSpec

# Each name is imported from its module when first asked for: a gateway, which only loads and
# documents schemas, then never imports the compiler (PyYAML, the Api class front end).
_LAZY = {
    **dict.fromkeys(("Compiled", "from_code", "from_yaml", "from_yaml_text"), "from_definition"),
    **dict.fromkeys(("ServiceSchema", "load_service_schema"), "loaded"),
    **dict.fromkeys(("example_request", "openapi_document"), "openapi"),
    **dict.fromkeys(
        (
            "Problem",
            "ServiceSchemaError",
            "check_service_schema",
            "default_route",
            "is_service_schema",
            "parse_json",
            "schema_routes",
        ),
        "service",
    ),
    **dict.fromkeys(("ApiDefinitionError", "ApiProblem", "ApiSpec"), "spec"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ApiDefinitionError",
    "ApiProblem",
    "ApiSpec",
    "Compiled",
    "Problem",
    "ServiceSchema",
    "ServiceSchemaError",
    "check_service_schema",
    "default_route",
    "example_request",
    "from_code",
    "from_yaml",
    "from_yaml_text",
    "is_service_schema",
    "load_service_schema",
    "openapi_document",
    "parse_json",
    "schema_routes",
]
