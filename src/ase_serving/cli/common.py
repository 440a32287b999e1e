"""What every command shares: one-line failures on stderr, JSON on stdout."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import orjson
import typer


def abort(message: str, code: int = 1) -> NoReturn:
    """Fail with a one-line reason on stderr (no traceback) and exit ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(doc: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()
