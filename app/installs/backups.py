"""What a plugin's data goes through before it is lost: a backup (a zip of JSON Lines per entity, with
the manifest, stored in the database) and the destructive schema steps of an upgrade that was allowed to lose data."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import blobs
from app.core.models import PluginBackup
from app.manifest import Manifest
from app.records.values import to_json
from app.schema import build_table
from app.schema.diff import SchemaDiff


async def backup(session: AsyncSession, manifest: Manifest, manifest_toml: str, label: str) -> PluginBackup:
    """A zip of JSON Lines per entity, schema.json and the manifest, kept in the database (every host,
    and a platform admin's download, reaches it)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    name = f"{manifest.id}-{label}-{stamp}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}/plugin.toml", manifest_toml)
        meta = sa.MetaData()
        schema = {}
        for entity in manifest.entities:
            table = build_table(entity, meta)
            schema[entity.name] = {
                "table": table.name,
                "columns": {c.name: str(c.type) for c in table.columns},
            }
            rows = (await session.execute(select(table))).mappings().all()
            archive.writestr(
                f"{name}/{entity.name}.jsonl",
                "".join(
                    json.dumps({k: to_json(v) for k, v in r.items()}, ensure_ascii=False) + "\n" for r in rows
                ),
            )
        archive.writestr(
            f"{name}/schema.json",
            json.dumps({"plugin": manifest.id, "version": manifest.version, "entities": schema}, indent=2),
        )
    content = buffer.getvalue()
    record = PluginBackup(
        plugin_id=manifest.id,
        label=label,
        file_name=f"{name}.zip",
        blob_sha256=await blobs.store_of(session).put(session, content),
        size=len(content),
    )
    session.add(record)
    await session.flush()
    return record


def backup_files(content: bytes) -> list[str]:
    """The names of the files inside a backup zip (without its folder)."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return sorted(n.split("/", 1)[-1] for n in archive.namelist())


async def apply_destructive(session: AsyncSession, diff: SchemaDiff) -> None:
    """Drop what the new manifest no longer has, and recreate changed columns (data was backed up)."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from app.schema.tables import column_for

    def work(connection: sa.Connection) -> None:
        ops = Operations(MigrationContext.configure(connection))
        for change in diff.destructive:
            if change.field is None and change.new_entity is None:
                ops.drop_table(change.table_name)
                continue
            if change.field is None:
                continue
            with ops.batch_alter_table(change.table_name) as batch:
                batch.drop_column(change.field)
            if change.new_entity is not None and change.new_entity.has_field(change.field):
                spec = change.new_entity.field(change.field)
                column = column_for(spec)
                column.nullable = True
                with ops.batch_alter_table(change.table_name) as batch:
                    batch.add_column(column)

    conn = await session.connection()
    await conn.run_sync(work)
