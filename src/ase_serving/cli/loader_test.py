"""``asectl loader test``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("test")
    def test() -> None:
        """Not written yet."""
        raise typer.Exit(1)
