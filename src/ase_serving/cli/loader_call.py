"""``asectl loader call``: send one request (or one session) in the public protocol to a running loader."""

from __future__ import annotations

import base64
import binascii
import contextlib
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ase_serving.cli.common import abort, print_json
from ase_serving.errors import AseError
from ase_serving.loader.client import LoaderClient
from ase_serving.loader.testcases import ONCE, TestCase, call_case, load_file
from ase_serving.protocol.items import DataType
from ase_serving.protocol.public import result_to_public

_EPILOG = """\
Example:

  asectl loader run examples/echo --port 50051 &

  asectl loader call 127.0.0.1:50051 examples/echo/tests/hello.yml --decode

FILE is a test case (the format of `asectl loader test`, with its {utf8: ...} and {file: ...}
conveniences and session frames) or a plain public request body in JSON. Prints the public
response (a list of result frames for a session) as one JSON document. Exit 1 when the
loader answers with an error code.
"""

_FIELDS = tuple(t.field for t in DataType)


def _pick_case(path: Path, name: str | None) -> TestCase:
    try:
        doc = orjson.loads(path.read_bytes()) if path.suffix == ".json" else None
    except (OSError, orjson.JSONDecodeError):
        doc = None
    if isinstance(doc, dict) and "request" not in doc:
        # A plain public request body.
        return TestCase(name=path.stem, file=path, request=doc)
    cases = load_file(path)
    chosen = [c for c in cases if name is None or c.name == name]
    if not chosen:
        abort(f"{path}: no case named {name!r} (cases: {', '.join(c.name for c in cases)})")
    case = chosen[0]
    if case.problem:
        abort(case.problem)
    return case


def _decode(doc: dict[str, Any]) -> dict[str, Any]:
    """Show UTF-8 outputs as text (``<field>_utf8``) next to their base64, for people."""
    for entry in (doc.get("payload") or {}).values():
        for field in _FIELDS:
            if isinstance(entry.get(field), str):
                with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                    entry[f"{field}_utf8"] = base64.b64decode(entry[field]).decode("utf-8")
    return doc


def register(app: typer.Typer) -> None:
    @app.command("call", epilog=_EPILOG)
    def call(
        address: Annotated[str, typer.Argument(help="The loader's HOST:PORT, as `loader run` printed it.")],
        file: Annotated[
            Path, typer.Argument(help="A test case (YAML/JSON) or a public request body (JSON).")
        ],
        case: Annotated[
            str | None, typer.Option("--case", help="Which case, when FILE holds several.")
        ] = None,
        decode: Annotated[bool, typer.Option("--decode", help="Add UTF-8 text next to base64 data.")] = False,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the answer.")] = 30.0,
    ) -> None:
        """Call a running loader once (or run one session) and print the public response."""
        if not file.is_file():
            abort(f"{file}: no such file (give a test case or a JSON request body)")
        chosen = _pick_case(file, case)
        with LoaderClient(address, timeout=timeout) as client:
            try:
                results = call_case(client, chosen, timeout)
            except AseError as exc:
                abort(f"the request is not valid: {exc.message}")
            except TimeoutError as exc:
                abort(f"{exc} (is the loader at {address} running?)")
        session = chosen.mode != ONCE
        docs = [result_to_public(r, session=session) for r in results]
        if decode:
            docs = [_decode(d) for d in docs]
        print_json(docs if session else docs[0])
        failed = [r for r in results if r.code != 0]
        if failed:
            abort(f"the loader answered {failed[0].code}: {failed[0].message}")
