"""`portal db` and `portal events`: database maintenance."""

from __future__ import annotations

from typing import Any, cast

import click
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.common import migrate_or_exit, run_db, settings_or_exit


@click.group(help="Database maintenance.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply the base migrations (also done by `portal serve`).")
def db_upgrade() -> None:
    from app import bootstrap

    settings = settings_or_exit()
    migrate_or_exit(settings)
    first = run_db(settings, lambda s: bootstrap.ensure_base(s, settings))
    click.echo("Database is up to date.")
    if first and first.password:
        click.secho(f"First platform admin: {first.email}  password: {first.password}", fg="yellow")


@click.group(help="The event log.")
def events() -> None:
    pass


@events.command(
    "prune",
    help="Delete handled events (and their delivery records) older than DAYS days; "
    "pending and running ones are kept.",
)
@click.option("--older-than", "days", type=click.IntRange(min=1), required=True, metavar="DAYS")
def events_prune(days: int) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from app.core.models import EventDelivery, EventRecord

    settings = settings_or_exit()
    migrate_or_exit(settings)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)

    async def work(s: AsyncSession) -> int:
        old = sa.select(EventRecord.id).where(
            EventRecord.created_at < before, EventRecord.status.not_in(("pending", "running"))
        )
        await s.execute(sa.delete(EventDelivery).where(EventDelivery.event_id.in_(old)))
        result = cast(
            sa.CursorResult[Any], await s.execute(sa.delete(EventRecord).where(EventRecord.id.in_(old)))
        )
        return int(result.rowcount or 0)

    click.echo(f"Deleted {run_db(settings, work)} event(s) from before {before:%Y-%m-%d %H:%M} UTC")
