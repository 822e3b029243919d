"""`kanaal dossier purge`: retention (AVG storage limitation) for operators.

Contributed to the `kanaal` command through the `kanaal.cli` entry-point group; it
works on the database of `KANAAL_DATABASE_URL` and brings its schema up to date first.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from kanaal.dossier.app import DossierSettings
from kanaal.dossier.database import create_engine, upgrade
from kanaal.dossier.store import DossierStore
from kanaal.dossier.views import PurgeCounts

dossier_app = typer.Typer(help="The dossier's data: retention.", no_args_is_help=True)


@dossier_app.callback()
def dossier() -> None:
    """The dossier's data: retention."""


@dossier_app.command("purge")
def purge_command(
    closed_before: Annotated[
        datetime,
        typer.Option(
            "--closed-before",
            formats=["%Y-%m-%d"],
            help="remove cases closed before this date (UTC), e.g. 2024-01-01",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only count what would be removed")
    ] = False,
) -> None:
    """Remove closed cases, their contacts and parties left without cases."""
    settings = DossierSettings()
    counts = asyncio.run(
        purge(settings.database_url.get_secret_value(), closed_before.replace(tzinfo=UTC), dry_run)
    )
    verb = "would remove" if counts.dry_run else "removed"
    typer.echo(
        f"{verb} {counts.cases} closed cases, {counts.contacts} contacts and "
        f"{counts.parties} parties without other cases (closed before {closed_before:%Y-%m-%d})"
    )


async def purge(database_url: str, closed_before: datetime, dry_run: bool) -> PurgeCounts:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        return await DossierStore(engine).purge(closed_before, dry_run=dry_run)
    finally:
        await engine.dispose()
