"""``asectl loader run``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run() -> None:
        """Not written yet."""
        raise typer.Exit(1)
