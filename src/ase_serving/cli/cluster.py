"""``asectl cluster status``: components with URL and health; services with routes and instances."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ase_serving.cli.common import abort, print_json
from ase_serving.cluster.access import load_settings
from ase_serving.cluster.status import all_healthy, gather_status

app = typer.Typer(help="The cluster as a whole.", no_args_is_help=True)

_EPILOG = """\
Example:

  asectl cluster status --json

Components: the config centre, the LB service (when one is set up) and whatever else
`asectl init` started. Services: every service schema in the project/group and every registered
loader instance, with its licences. Exit 0 when every component is healthy, else 1 (the status is
printed either way).
"""


def _mark(ok: bool | None) -> str:
    if ok is None:
        return "[yellow]unknown[/yellow]"
    return "[green]healthy[/green]" if ok else "[red]DOWN[/red]"


def _print_tables(doc: dict[str, Any]) -> None:
    console = Console(width=200)
    comps = Table("component", "url", "health", "detail", box=None, title="components", title_justify="left")
    for c in doc["components"]:
        comps.add_row(c["name"], c["url"], _mark(c["healthy"]), escape(c.get("error", "")))
    console.print(comps)
    for c in doc["components"]:
        if c.get("problems"):
            title = f"{c['name']}: problems it reports (schemas it does not serve, views out of touch)"
            table = Table("about", "why", box=None, title=title, title_justify="left")
            for key, why in sorted(c["problems"].items()):
                table.add_row(key, f"[red]{escape(why)}[/red]")
            console.print(table)
    problems = doc.get("problems") or {}
    if problems:
        table = Table("record", "why", box=None, title="unreadable records (skipped)", title_justify="left")
        for key, why in sorted(problems.items()):
            table.add_row(key, why)
        console.print(table)
    if not doc["services"]:
        console.print("no services (no service schemas and no loader instances)")
        return
    svcs = Table(
        "service",
        "version",
        "api" if any(s.get("urls") for s in doc["services"]) else "routes",
        "docs",
        "instance",
        "licences idle/total",
        "health",
        "detail",
        box=None,
        title="services",
        title_justify="left",
    )
    for s in doc["services"]:
        routes = ", ".join(s.get("urls") or s["routes"]) or "(no schema)"
        docs = s.get("docs", "")
        if s.get("served") is False:
            routes += " [red](not served: see above)[/red]"
        if not s["instances"]:
            svcs.add_row(s["serviceId"], s["version"], routes, docs, "(none)", "", "", "")
        for i, inst in enumerate(s["instances"]):
            first = i == 0
            svcs.add_row(
                s["serviceId"] if first else "",
                s["version"] if first else "",
                routes if first else "",
                docs if first else "",
                inst["address"],
                f"{inst['lic_idle']}/{inst['lic_total']}",
                _mark(inst["healthy"]),
                escape(inst.get("error", "")),
            )
    console.print(svcs)


@app.command("status", epilog=_EPILOG)
def status(
    project: Annotated[str | None, typer.Option("--project", help="Project (default: from setup).")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Group (default: from setup).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show components with URL and health, and services with routes and loader instances."""
    settings = load_settings(project, group)
    doc = asyncio.run(gather_status(settings))
    if as_json:
        print_json(doc)
    else:
        _print_tables(doc)
    if not all_healthy(doc):
        down = [c["name"] for c in doc["components"] if not c["healthy"]]
        if down:
            abort(f"not healthy: {', '.join(down)}; `asectl init` starts a local cluster")
        abort(
            f"{len(doc['problems'])} record(s) in the config centre cannot be read and are skipped "
            "(listed above): put them again or delete them (`asectl config` / the store's tools)"
        )
