"""``asectl loader test``: check a wrapper and run its test cases in-process, no server."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ase_serving.cli.common import print_json
from ase_serving.loader.testrun import Report, run_project

HELP = """Check DIR/wrapper.py against the contract and DIR/ai_api.yml (or the Api class) as `asectl
api create` does, then run wrapperInit, every test case in DIR/tests (*.json, *.yml, *.yaml) and
wrapperFini in this process, without a server. Each case's request is first checked against the
service schema with the gateway's own validator (a request the gateway refuses with 10163 fails
here with the same message); an exception in the wrapper shows its traceback.

Exit code 0 when every case passes, 1 otherwise. The case format is in docs/test-cases.md.

Example:

    asectl loader new hello && asectl loader test hello

    asectl loader test examples/echo --json

A case (DIR/tests/hello.yml):

    name: hello
    request:
      header: {app_id: test, status: 3}
      payload: {text: {encoding: utf8, status: 3, text: {utf8: "hi"}}}
    expect: {code: 0, payload: {echo: {utf8: "hi"}}}
"""


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send whatever the wrapper prints (Python or C level) to stderr, so that stdout holds only
    the one JSON document."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _print_table(report: Report) -> None:
    console = Console()
    err = Console(stderr=True)
    for warning in report.warnings:
        err.print(f"warning: {escape(warning)}", highlight=False, soft_wrap=True)
    for problem in report.problems:
        err.print(f"[red]problem:[/red] {escape(problem)}", highlight=False, markup=True, soft_wrap=True)
    if not report.cases:
        return
    table = Table(title=f"test cases of {report.project}", title_justify="left")
    table.add_column("case")
    table.add_column("result")
    table.add_column("ms", justify="right")
    table.add_column("reason", overflow="fold")
    for case in report.cases:
        result = "[green]ok[/green]" if case.ok else "[red]failed[/red]"
        table.add_row(escape(case.name), result, f"{case.ms:.1f}", escape(case.reason))
    console.print(table)
    for case in report.cases:
        if case.traceback:
            # Where the wrapper raised: the table's reason has the message, this the file and line.
            text = f"\n{case.name}: the wrapper raised\n{case.traceback}"
            console.print(escape(text), highlight=False, soft_wrap=True)
    failed = sum(not c.ok for c in report.cases)
    summary = f"{len(report.cases) - failed} passed, {failed} failed"
    if any(c.traceback for c in report.cases):
        console.print()
    console.print(f"[red]{summary}[/red]" if failed else f"[green]{summary}[/green]")


def register(app: typer.Typer) -> None:
    @app.command("test", help=HELP)
    def test(
        folder: Annotated[Path, typer.Argument(metavar="DIR", help="the wrapper project folder")] = Path("."),
        as_json: Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")] = False,
        image: Annotated[
            str | None,
            typer.Option("--image", help="run the cases against this built image (docker) instead"),
        ] = None,
    ) -> None:
        if image is not None:
            from ase_serving.cluster.images import test_image

            report = test_image(folder, image)
        elif as_json:
            with _stdout_to_stderr():
                report = run_project(folder)
        else:
            report = run_project(folder)
        if report.no_cases and not report.problems:
            typer.echo(f"warning: no test cases in {report.project / 'tests'}", err=True)
        if as_json:
            print_json(report.to_json())
        else:
            _print_table(report)
        if not report.ok:
            raise typer.Exit(1)
