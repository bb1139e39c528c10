"""`portal storage`: where stored files live (PORTAL_STORAGE_URL) — check it, move the files kept in
the database into the bucket, clear the bucket of objects nothing names."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.common import fail, migrate_or_exit, run_db, settings_or_exit
from app.core.settings import Settings

if TYPE_CHECKING:
    from app.core.blob_s3 import S3BlobStore


def _s3_settings(command: str) -> Settings:
    settings = settings_or_exit()
    if settings.storage.kind != "s3":
        fail(
            f"`portal storage {command}` needs PORTAL_STORAGE_URL=s3://bucket/prefix?... (it names the database)"
        )
    migrate_or_exit(settings)
    return settings


def _s3_store(session: AsyncSession) -> S3BlobStore:
    from app.core.blob_s3 import S3BlobStore
    from app.core.blobs import store_of

    store = store_of(session)
    assert isinstance(store, S3BlobStore)
    return store


@click.group(help="Where stored files live (PORTAL_STORAGE_URL).")
def storage() -> None:
    pass


@storage.command("check", help="Say where files are stored and whether the store answers.")
def storage_check() -> None:
    from app.core.blobs import store_of

    settings = settings_or_exit()

    async def work(s: AsyncSession) -> str:
        store = store_of(s)
        await store.check()
        return store.name

    click.echo(f"Files are stored in {run_db(settings, work)}; it answers.")


@storage.command(
    "copy",
    help="Copy the files kept in the database into the bucket of PORTAL_STORAGE_URL and empty their "
    "database copies. Safe to run while the portal serves, to stop and to run again.",
)
@click.option("--batch", type=click.IntRange(min=1, max=1000), default=20, show_default=True)
def storage_copy(batch: int) -> None:
    from app.core.blob_upkeep import Moved, copy_into

    settings = _s3_settings("copy")

    def show(moved: Moved) -> None:
        click.echo(f"  {moved.copied} file(s), {moved.bytes / 1e6:.1f} MB copied")

    moved = run_db(settings, lambda s: copy_into(s, _s3_store(s), batch, show))
    click.echo(f"Copied {moved.copied} file(s) ({moved.bytes} bytes) to {settings.storage.name}.")
    if moved.damaged:
        click.secho(
            f"Left in the database, damaged (content does not match its hash): {moved.damaged}", fg="red"
        )


@storage.command(
    "sweep",
    help="Delete objects under the bucket's prefix that no stored file names and that are older than "
    "MINUTES (younger ones may belong to an upload in progress).",
)
@click.option("--older-than", "minutes", type=click.IntRange(min=1), default=60, show_default=True)
def storage_sweep(minutes: int) -> None:
    from app.core.blob_upkeep import sweep

    settings = _s3_settings("sweep")
    gone = run_db(settings, lambda s: sweep(s, _s3_store(s), dt.timedelta(minutes=minutes)))
    click.echo(f"Deleted {len(gone)} object(s) nothing names from {settings.storage.name}.")
