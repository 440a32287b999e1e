"""Service schemas: the JSON document a config centre stores and gateways load (SCHEMA.md)."""

from __future__ import annotations

from ase_serving.schema.service import (
    Problem,
    ServiceSchemaError,
    check_service_schema,
    default_route,
    is_service_schema,
    parse_json,
    schema_routes,
)

__all__ = [
    "Problem",
    "ServiceSchemaError",
    "check_service_schema",
    "default_route",
    "is_service_schema",
    "parse_json",
    "schema_routes",
]
