"""``asectl``: the command line tool. A thin shell over the domain packages, one module per command group."""

from __future__ import annotations

import typer

from ase_serving.cli import api, cluster, config, consumer, init, loader, setup

app = typer.Typer(
    name="asectl",
    help="ASE serving: serve engine plugins (wrapper.py) behind a validated, load-balanced API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(loader.app, name="loader")
app.add_typer(api.app, name="api")
app.add_typer(config.app, name="config")
app.add_typer(cluster.app, name="cluster")
app.add_typer(consumer.app, name="consumer")
setup.register(app)
init.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
