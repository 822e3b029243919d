"""Builds the `kanaal` command from the `kanaal.cli` entry-point group.

A package contributes a subcommand by naming a function (a command) or a
`typer.Typer` (a group of commands) in its `[project.entry-points."kanaal.cli"]`.
The CLI never imports a service's internals itself.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="kanaal",
        help="Open Kanaal: one customer-contact operation across all channels.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
    )
    for entry_point in sorted(entry_points(group="kanaal.cli"), key=lambda ep: ep.name):
        contributed = entry_point.load()
        if isinstance(contributed, typer.Typer):
            app.add_typer(contributed, name=entry_point.name)
        else:
            app.command(entry_point.name)(contributed)
    return app


def main() -> None:
    build_app()()
