"""Replace the ``asectl`` process with a lean ``python -m MODULE`` (``exec``: same pid, standard
streams, environment and working directory).

A server that ``asectl`` starts in the foreground (``loader run``, ``gateway serve``, ``lb serve``)
keeps whatever its process imported for as long as it serves: Typer, Click and Rich are several
MB of it and a slower start. So the command
parses its options with Typer and then becomes the server's own entry point. No Typer here.
"""

from __future__ import annotations

import os
import subprocess
import sys


def module_argv(module: str, args: list[str]) -> list[str]:
    """``python [its -X/-W/... options] -m MODULE ARGS`` for this interpreter."""
    # The interpreter's own options (-X, -W, -B, ...) as this process was given them.
    flags: list[str] = getattr(subprocess, "_args_from_interpreter_flags", list)()
    return [sys.executable, *flags, "-m", module, *args]


def become(module: str, args: list[str]) -> None:
    """Become ``python -m MODULE ARGS``; returns only where ``exec`` is not available (not POSIX, or
    no interpreter to exec), for the caller to run it otherwise."""
    if os.name != "posix":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, module_argv(module, args))
    except OSError:
        return
