"""Every flag of a server's command line also read from an environment variable (for containers).

``--max-body`` of ``python -m ase_serving.gateway`` is ``ASE_GATEWAY_MAX_BODY``: a variable sets the
flag's default, so a flag given on the command line still wins. A repeatable flag takes a
comma-separated list; an on/off flag takes 1/0, true/false, yes/no.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_name(prefix: str, flag: str) -> str:
    """``ASE_GATEWAY`` and ``--max-body`` -> ``ASE_GATEWAY_MAX_BODY``."""
    return f"{prefix}_{flag.lstrip('-').replace('-', '_').upper()}"


def apply_env(ap: argparse.ArgumentParser, prefix: str, environ: Mapping[str, str] | None = None) -> None:
    """Set the defaults of ``ap``'s flags from ``PREFIX_FLAG`` variables; a bad value is a usage
    error naming the variable."""
    env = os.environ if environ is None else environ
    for action in ap._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or isinstance(action, argparse._HelpAction):
            continue
        name = env_name(prefix, longs[0])
        raw = env.get(name)
        if raw is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if raw.strip().lower() not in _TRUE | _FALSE:
                ap.error(f"{name}={raw!r}: use 1 or 0 (true, false)")
            action.default = raw.strip().lower() in _TRUE
        elif isinstance(action, argparse._AppendAction):
            action.default = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            try:
                action.default = action.type(raw) if callable(action.type) else raw
            except (TypeError, ValueError):
                ap.error(f"{name}={raw!r} is not a valid value for {longs[0]}")
            if action.choices is not None and action.default not in action.choices:
                ap.error(f"{name}={raw!r}: choose from {', '.join(map(str, action.choices))}")
        action.help = f"{action.help or ''} [env {name}]"
