"""``python -m ase_serving.schema WRAPPER SERVICE VERSION``: the schema of wrapper.py's Api class.

Prints ``{"name": <config item name>, "schema": <service schema>}`` on stdout, or the problems on
stderr with exit status 1. The loader runs it in a child process, so that importing wrapper.py
for its Api class never happens in the loader's own process.
"""

from __future__ import annotations

import sys

import orjson

from ase_serving.schema.from_definition import from_code
from ase_serving.schema.spec import ApiDefinitionError


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m ase_serving.schema WRAPPER SERVICE VERSION", file=sys.stderr)
        return 2
    try:
        compiled = from_code(argv[0], argv[1], argv[2])
    except ApiDefinitionError as exc:
        print(exc, file=sys.stderr)
        return 1
    sys.stdout.buffer.write(orjson.dumps({"name": compiled.item_name, "schema": compiled.doc}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
