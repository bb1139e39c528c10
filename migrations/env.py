"""Alembic environment for the base tables (run through advanced-alchemy's AlembicCommands)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from advanced_alchemy.base import metadata_registry
from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_engine_from_config

import app.core.attachments
import app.core.import_jobs
import app.core.models  # noqa: F401

config = context.config


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # Plugin tables are created at run time from manifests; autogenerate must never drop them.
    if type_ == "table" and reflected and compare_to is None:
        return False
    return not (
        type_ == "index" and reflected and compare_to is None and (name or "").startswith("ix_plugin_")
    )


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata_registry.get(getattr(config, "bind_key", None)),
        compare_type=True,
        render_as_batch=True,
        include_object=include_object,
        user_module_prefix="",
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=config.db_url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    section = config.get_section(config.config_ini_section) or {}
    section["sqlalchemy.url"] = config.db_url
    connectable = cast(
        AsyncEngine,
        async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool, future=True),
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
