"""What a plugin's data goes through before it is lost: a backup (JSON Lines per entity, with the
manifest) and the destructive schema steps of an upgrade that was allowed to lose data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.manifest import Manifest
from app.records.values import to_json
from app.schema import build_table
from app.schema.diff import SchemaDiff


async def backup(
    session: AsyncSession, manifest: Manifest, manifest_toml: str, data_dir: Path, label: str
) -> Path:
    """JSON Lines per entity plus the manifest, under <data dir>/backups/."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    target = data_dir / "backups" / f"{manifest.id}-{label}-{stamp}"
    target.mkdir(parents=True, exist_ok=True)
    (target / "plugin.toml").write_text(manifest_toml, encoding="utf-8")
    meta = sa.MetaData()
    schema = {}
    for entity in manifest.entities:
        table = build_table(entity, meta)
        schema[entity.name] = {"table": table.name, "columns": {c.name: str(c.type) for c in table.columns}}
        rows = (await session.execute(select(table))).mappings().all()
        with (target / f"{entity.name}.jsonl").open("w", encoding="utf-8") as out:
            for r in rows:
                out.write(json.dumps({k: to_json(v) for k, v in r.items()}, ensure_ascii=False) + "\n")
    (target / "schema.json").write_text(
        json.dumps({"plugin": manifest.id, "version": manifest.version, "entities": schema}, indent=2),
        encoding="utf-8",
    )
    return target


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
