"""``asectl loader new``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("new")
    def new() -> None:
        """Not written yet."""
        raise typer.Exit(1)
