"""What every `portal` subcommand shares: settings, migrations and one database transaction, with
errors turned into one-line messages and exit codes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import PortalError, ValidationFailed
from app.core.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def fail(message: str) -> None:
    click.secho(f"portal: {message}", fg="red", err=True)
    sys.exit(2)


def _db_error_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return f"cannot use the database: {text}"


def settings_or_exit(env: dict[str, str] | None = None) -> Settings:
    try:
        return load_settings(env)
    except SettingsError as exc:
        fail(str(exc))
        raise  # unreachable


def migrate_or_exit(settings: Settings) -> None:
    from app.core.db import upgrade

    try:
        upgrade(settings)
    except (OperationalError, DBAPIError, OSError) as exc:
        fail(_db_error_line(exc))
    except Exception as exc:  # driver errors that SQLAlchemy did not wrap (bad host names, ...)
        if "sqlalchemy" in type(exc).__module__ or "psycopg" in type(exc).__module__:
            fail(_db_error_line(exc))
        raise


def run_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction; domain errors become one-line messages."""
    from app.core.blobs import store_for
    from app.core.db import make_alchemy_config

    async def main() -> T:
        store = store_for(settings)  # PORTAL_STORAGE_URL: the database or a bucket
        config = make_alchemy_config(settings, store)
        try:
            async with config.get_session() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await config.get_engine().dispose()
            await store.drain()  # objects of blobs a command purged
            store.close()

    try:
        return asyncio.run(main())
    except ValidationFailed as exc:
        fail("; ".join(f"{k}: {v}" for k, v in exc.errors.items()))
    except PortalError as exc:
        fail(exc.detail)
    except (OperationalError, DBAPIError) as exc:
        fail(_db_error_line(exc))
    raise AssertionError("unreachable")


def author_error(message: str) -> None:
    """Authoring commands exit with 1 (the plugin is at fault), not 2 (a usage or setup problem)."""
    click.secho(f"portal: {message}", fg="red", err=True)
    sys.exit(1)
