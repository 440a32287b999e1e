"""``--help`` texts shown as they are written: no word in square brackets taken for Rich markup, no
paragraph wrapped twice.

Typer renders help, epilogues and option help with Rich markup, so ``[service]`` (ase.toml's table)
was a style tag and vanished; and it keeps the line breaks of a help text's later paragraphs and of
an epilogue, then wraps them again to the terminal, which breaks every line of a paragraph written
at 100 columns twice on an 80-column terminal. :func:`prepare` rewrites each command's texts once,
where the top-level group is made (:mod:`ase_serving.cli.main`): a prose paragraph becomes one line
(the terminal wraps it once); a paragraph with an indented, listed or ``\\b``-marked line (examples,
code) keeps its lines; and markup is escaped, so every bracket shows.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from rich.markup import escape

#: A line that makes its paragraph literal: indented (an example), a list item, or click's ``\b``.
_LITERAL = re.compile(r"^(\s|[-*•] |\d+[.)] |\x08)")
#: Set on a command whose texts :func:`prepare` rewrote (escaping twice would show the backslash).
_DONE = "_ase_help_prepared"


def unwrap(text: str) -> str:
    """``text`` with each prose paragraph on one line; literal paragraphs as they are."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = []
    for para in paragraphs:
        lines = para.split("\n")
        if any(_LITERAL.match(line) for line in lines):
            out.append(para)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def shown(text: str) -> str:
    """``text`` as Typer should get it: unwrapped, its markup escaped."""
    return escape(unwrap(text))


def prepare(command: Any) -> None:
    """Rewrite the help texts of ``command`` (a Click command or group) and of everything under it."""
    if getattr(command, _DONE, False):
        return
    setattr(command, _DONE, True)
    for name in ("help", "epilog", "short_help"):
        value = getattr(command, name, None)
        if isinstance(value, str) and value:
            setattr(command, name, shown(value))
    for param in getattr(command, "params", ()):
        value = getattr(param, "help", None)
        if isinstance(value, str) and value:
            param.help = shown(value)
    for sub in (getattr(command, "commands", None) or {}).values():
        prepare(sub)
