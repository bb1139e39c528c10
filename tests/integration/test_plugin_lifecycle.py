"""The plugin lifecycle service on both databases: states, dependencies, upgrades, purge."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app import bootstrap
from app.audit import Actor
from app.core import blobs
from app.core.db import make_alchemy_config
from app.core.errors import Conflict
from app.core.models import Permission, PluginBackup, PluginPackage, PluginSchemaVersion, PluginTenant
from app.core.settings import Settings, load_settings
from app.identity import directory
from app.installs import lifecycle, removal
from app.installs.lifecycle import DestructiveUpgrade, ManifestRejected
from app.plugins import runtime
from app.plugins.packages import Package, read_zip
from app.records.service import ListQuery, RecordService

ROOT = Path(__file__).resolve().parents[2]
SEED_FIXTURE = ROOT / "tests" / "fixtures" / "manifests" / "seed004_inventory.toml"
# The example ERP inventory manifest installs since the workflow module exists; a module the platform
# still lacks (`config`) is refused with a located message.
MISSING_MODULE_TOML = SEED_FIXTURE.read_text(encoding="utf-8").replace(
    'modules = ["auth", "workflow"]', 'modules = ["auth", "config"]'
)
MISSING_MODULE_MESSAGE = (
    "dependencies.modules[1]: base module 'config' is not available on this platform "
    "(available: auth, message, workflow)"
)
ACTOR = Actor(None, "tests")

# --- test packages, built from inline TOML ------------------------------------------------------

NOTE_FIELDS = [
    '{ name = "title", type = "string", required = true, max_length = 200, label = "Title", help = "A short title" }',
    '{ name = "body", type = "text", label = "Body" }',
    '{ name = "pinned", type = "boolean", default = false }',
    '{ name = "due", type = "date" }',
    '{ name = "amount", type = "decimal", precision = 10, scale = 2 }',
]
COLOR_FIELD = '{ name = "color", type = "string", max_length = 20, label = "Colour" }'
NOTEBOOK = """
[[schema.entities]]
name = "notebook"
label = "Notebook"
display_field = "name"
fields = [{ name = "name", type = "string", required = true, unique = true }]
"""


def notes_toml(
    version: str = "1.0.0", *, color: bool = False, notebook: bool = False, body: bool = True
) -> str:
    """The "notes" plugin: 1.0.0 has one entity; 1.1.0 adds a column, an index and an entity;
    2.0.0 (body=False) drops a column."""
    fields = [f for f in NOTE_FIELDS if body or '"body"' not in f] + ([COLOR_FIELD] if color else [])
    indexes = '[["title"], ["color"]]' if color else '[["title"]]'
    return f'''
[plugin]
id = "notes"
name = "Notes"
version = "{version}"
description = "Short notes"
author = "Tests"
min_platform_version = "1.0.0"

[dependencies]
modules = ["auth"]

[permissions]
database = true
events = true

[[schema.entities]]
name = "note"
label = "Note"
display_field = "title"
fields = [
  {("," + chr(10) + "  ").join(fields)},
]
indexes = {indexes}
{NOTEBOOK if notebook else ""}
[events]
published = ["notes.note.created"]
subscribed = ["auth.login"]

[[ui.pages]]
name = "Notes"
path = "/notes"
entity = "note"
type = "crud"
menu_group = "Notes"
'''


TASKS_TOML = """
[plugin]
id = "tasks"
name = "Tasks"
version = "1.0.0"
description = "Tasks that may point at a note"

[dependencies]
modules = ["auth"]
plugins = [{ id = "notes", version = ">=1.0.0" }]

[permissions]
database = true

[[schema.entities]]
name = "task"
label = "Task"
display_field = "title"
fields = [
  { name = "title", type = "string", required = true },
  { name = "note_id", type = "reference", entity = "note" },
]
"""


def make_zip(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), content)
    return buffer.getvalue()


def plugin_zip(toml: str, **extra: str | bytes) -> bytes:
    return make_zip({"plugin.toml": toml, "README.md": "# test plugin\n", **extra})


def package(toml: str) -> Package:
    return read_zip(plugin_zip(toml))


# --- running scenarios against one database -----------------------------------------------------


class Db:
    """One engine for a scenario; every `tx()` is a transaction, like one request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = make_alchemy_config(settings)
        self.tenants: dict[str, uuid.UUID] = {}

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncSession]:
        async with self.config.get_session() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    async def step(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        async with self.tx() as s:
            return await work(s)

    async def refused(
        self, work: Callable[[AsyncSession], Awaitable[Any]], kind: type[Exception] = Conflict
    ) -> Any:
        with pytest.raises(kind) as info:
            await self.step(work)
        return info.value

    # lifecycle shortcuts
    async def upload(self, toml: str, **kw: Any) -> PluginPackage:
        return await self.step(lambda s: lifecycle.upload(s, ACTOR, package(toml), self.settings, **kw))

    async def install(self, plugin_id: str) -> PluginPackage:
        return await self.step(lambda s: lifecycle.install(s, ACTOR, plugin_id))

    async def enable(self, tenant: str, plugin_id: str) -> Any:
        return await self.step(lambda s: lifecycle.enable(s, ACTOR, self.tenants[tenant], plugin_id))

    async def disable(self, tenant: str, plugin_id: str) -> Any:
        return await self.step(lambda s: lifecycle.disable(s, ACTOR, self.tenants[tenant], plugin_id))

    async def uninstall(self, plugin_id: str) -> Any:
        return await self.step(lambda s: removal.uninstall(s, ACTOR, plugin_id))

    async def purge(self, plugin_id: str, confirm: str) -> dict[str, str]:
        """Purge; the backup's files (from the zip stored in the database) by name."""
        record = await self.step(lambda s: removal.purge(s, ACTOR, plugin_id, confirm, self.settings))
        assert record.file_name.startswith(f"{plugin_id}-purge-") and record.file_name.endswith(".zip")
        return await self.backup_files(record)

    async def backups(self) -> list[PluginBackup]:
        return list(
            (
                await self.step(
                    lambda s: s.scalars(sa.select(PluginBackup).order_by(PluginBackup.created_at))
                )
            ).all()
        )

    async def backup_files(self, record: PluginBackup) -> dict[str, str]:
        content = await self.step(lambda s: blobs.store_of(s).get(s, record.blob_sha256))
        assert len(content) == record.size
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return {n.split("/", 1)[1]: archive.read(n).decode("utf-8") for n in archive.namelist()}

    async def insert(
        self, tenant: str, plugin_id: str, entity: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        async def work(s: AsyncSession) -> dict[str, Any]:
            ref = await runtime.entity_in_tenant(s, self.tenants[tenant], plugin_id, entity)
            return await RecordService(s, self.tenants[tenant], ACTOR, lambda _p: True).insert(ref, values)

        return await self.step(work)

    async def rows(self, tenant: str, plugin_id: str, entity: str) -> list[dict[str, Any]]:
        async def work(s: AsyncSession) -> list[dict[str, Any]]:
            ref = await runtime.entity_in_tenant(s, self.tenants[tenant], plugin_id, entity)
            result = await RecordService(s, self.tenants[tenant], ACTOR, lambda _p: True).list(
                ref, ListQuery(sort="created_at", size=100)
            )
            return result.rows

        return await self.step(work)

    async def tables(self) -> set[str]:
        async with self.config.get_engine().connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))

    async def columns(self, table: str) -> set[str]:
        async with self.config.get_engine().connect() as conn:
            return {c["name"] for c in await conn.run_sync(lambda c: sa.inspect(c).get_columns(table))}

    async def indexed_columns(self, table: str) -> list[list[str]]:
        async with self.config.get_engine().connect() as conn:
            return [
                list(ix["column_names"])
                for ix in await conn.run_sync(lambda c: sa.inspect(c).get_indexes(table))
            ]

    async def scalar(self, stmt: Any) -> Any:
        async with self.tx() as s:
            return await s.scalar(stmt)


@pytest.fixture
def scenario(settings_env: dict[str, str]) -> Callable[[Callable[[Db], Awaitable[None]]], None]:
    """Run `body(db)` against a fresh database with the base set up and tenants acme and globex."""
    settings = load_settings(settings_env)

    def go(body: Callable[[Db], Awaitable[None]]) -> None:
        async def main() -> None:
            db = Db(settings)
            try:
                async with db.tx() as s:
                    await bootstrap.ensure_base(s, settings)
                    for slug in ("acme", "globex"):
                        db.tenants[slug] = (await directory.create_tenant(s, ACTOR, slug, slug.title())).id
                await body(db)
            finally:
                await db.config.get_engine().dispose()

        asyncio.run(main())

    return go


# --- the tests ----------------------------------------------------------------------------------


def test_illegal_transitions_are_refused_with_their_reason(scenario):
    async def body(db: Db) -> None:
        row = await db.upload(notes_toml())
        assert (row.status, lifecycle.state_name(row)) == ("uploaded", "uploaded")
        assert "plugin_note" not in await db.tables()  # uploading creates nothing yet

        early = await db.refused(lambda s: lifecycle.enable(s, ACTOR, db.tenants["acme"], "notes"))
        assert early.detail == "notes is not installed on this platform (state: uploaded)"

        await db.install("notes")
        assert "plugin_note" in await db.tables()
        twice = await db.refused(lambda s: lifecycle.install(s, ACTOR, "notes"))
        assert twice.detail == "notes is already installed"

        not_enabled = await db.refused(lambda s: lifecycle.disable(s, ACTOR, db.tenants["acme"], "notes"))
        assert not_enabled.detail == "notes is not enabled in this tenant"
        too_soon = await db.refused(lambda s: removal.purge(s, ACTOR, "notes", "notes", db.settings))
        assert too_soon.detail == "Uninstall notes before purging it"

        await db.enable("acme", "notes")
        again = await db.refused(lambda s: lifecycle.enable(s, ACTOR, db.tenants["acme"], "notes"))
        assert again.detail == "notes is already enabled in this tenant"
        busy = await db.refused(lambda s: removal.uninstall(s, ACTOR, "notes"))
        assert busy.detail == "notes is still enabled in: acme; disable it there first"

        await db.disable("acme", "notes")
        await db.uninstall("notes")
        gone = await db.refused(lambda s: removal.uninstall(s, ACTOR, "notes"))
        assert gone.detail == "notes is already uninstalled"
        late = await db.refused(lambda s: lifecycle.enable(s, ACTOR, db.tenants["acme"], "notes"))
        assert late.detail == "notes is not installed on this platform (state: uninstalled)"

        wrong = await db.refused(lambda s: removal.purge(s, ACTOR, "notes", "note", db.settings))
        assert wrong.detail == "Type the plugin id (notes) to confirm the purge; nothing was deleted"
        assert "plugin_note" in await db.tables()
        assert await db.backups() == []

    scenario(body)


def test_dependencies_between_plugins(scenario):
    async def body(db: Db) -> None:
        early = await db.refused(
            lambda s: lifecycle.upload(s, ACTOR, package(TASKS_TOML), db.settings), ManifestRejected
        )
        assert early.issues == [
            "dependencies.plugins[0]: plugin 'notes' is not installed",
            "schema.entities[0].fields[1].entity: unknown entity 'note' (known: task)",
        ]

        await db.upload(notes_toml(), install_now=True)
        await db.upload(TASKS_TOML, install_now=True)

        first = await db.refused(lambda s: lifecycle.enable(s, ACTOR, db.tenants["acme"], "tasks"))
        assert first.detail == "Enable notes in this tenant first: tasks depends on it"
        await db.enable("acme", "notes")
        await db.enable("acme", "tasks")
        note = await db.insert("acme", "notes", "note", {"title": "Groceries"})
        task = await db.insert("acme", "tasks", "task", {"title": "Buy milk", "note_id": str(note["id"])})
        assert task["note_id"] == note["id"]

        held = await db.refused(lambda s: lifecycle.disable(s, ACTOR, db.tenants["acme"], "notes"))
        assert held.detail == "Disable tasks first: it depends on notes"

        await db.disable("acme", "tasks")
        await db.disable("acme", "notes")
        needed = await db.refused(lambda s: removal.uninstall(s, ACTOR, "notes"))
        assert needed.detail == "Uninstall tasks first: it depends on notes"

        # The dependant goes first; its manifest (referencing the note entity) still reads for the purge,
        # even with the dependency uninstalled as well.
        await db.uninstall("tasks")
        await db.uninstall("notes")
        backup = await db.purge("tasks", "tasks")
        assert [json.loads(line)["title"] for line in backup["task.jsonl"].splitlines()] == ["Buy milk"]
        assert "plugin_task" not in await db.tables()
        assert "plugin_note" in await db.tables()

    scenario(body)


def test_reinstall_after_uninstall_gives_the_data_back(scenario):
    async def body(db: Db) -> None:
        await db.upload(notes_toml(), install_now=True)
        await db.enable("acme", "notes")
        first = await db.insert("acme", "notes", "note", {"title": "Kept", "body": "through uninstall"})
        async with db.tx() as s:  # and one written with plain SQL (Core), bypassing the record service
            ref = await runtime.entity_in_tenant(s, db.tenants["acme"], "notes", "note")
            await s.execute(
                sa.insert(ref.table).values(
                    id=uuid.uuid4(),
                    tenant_id=db.tenants["acme"],
                    title="By SQL",
                    pinned=False,
                    created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                    updated_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                )
            )
        await db.disable("acme", "notes")
        await db.uninstall("notes")

        row = await db.scalar(sa.select(PluginPackage).where(PluginPackage.plugin_id == "notes"))
        assert row.deleted_at is not None and lifecycle.state_name(row) == "uninstalled"
        assert "plugin_note" in await db.tables()  # soft uninstall keeps the tables and the data
        assert await db.scalar(sa.text("SELECT count(*) FROM plugin_note")) == 2

        reinstalled = await db.install("notes")
        assert lifecycle.state_name(reinstalled) == "installed"
        await db.enable("acme", "notes")  # the tenant's old "disabled" state is switched back on
        rows = await db.rows("acme", "notes", "note")
        assert [r["title"] for r in rows] == ["By SQL", "Kept"]
        assert rows[1]["id"] == first["id"] and rows[1]["body"] == "through uninstall"

    scenario(body)


def test_additive_upgrade_applies_entity_column_and_index(scenario):
    async def body(db: Db) -> None:
        await db.upload(notes_toml(), install_now=True)
        await db.enable("acme", "notes")
        old = await db.insert("acme", "notes", "note", {"title": "Before"})
        assert "color" not in await db.columns("plugin_note")

        upgraded = await db.upload(notes_toml("1.1.0", color=True, notebook=True))  # an upload that upgrades
        assert (upgraded.version, upgraded.status) == ("1.1.0", "installed")
        assert "color" in await db.columns("plugin_note")
        assert ["tenant_id", "color"] in await db.indexed_columns("plugin_note")
        assert "plugin_notebook" in await db.tables()

        versions = {
            v.entity_name: (v.schema_version, v.plugin_version)
            for v in (await db.step(lambda s: s.scalars(sa.select(PluginSchemaVersion)))).all()
        }
        assert versions == {"note": (2, "1.1.0"), "notebook": (1, "1.1.0")}

        new = await db.insert("acme", "notes", "note", {"title": "After", "color": "red"})
        book = await db.insert("acme", "notes", "notebook", {"name": "Work"})
        assert book["name"] == "Work"
        rows = {r["title"]: r for r in await db.rows("acme", "notes", "note")}
        assert rows["After"]["color"] == "red" and rows["After"]["id"] == new["id"]
        assert rows["Before"]["color"] is None and rows["Before"]["id"] == old["id"]
        async with db.tx() as s:  # the Member role may now read the new entity too
            assert await s.scalar(sa.select(Permission.code).where(Permission.code == "db.notebook.select"))

        down = await db.refused(
            lambda s: lifecycle.upload(s, ACTOR, package(notes_toml("1.0.0")), db.settings)
        )
        assert down.detail == "Downgrade refused: notes 1.1.0 is installed, the package is 1.0.0"
        down2 = await db.refused(
            lambda s: lifecycle.upgrade(s, ACTOR, package(notes_toml("1.0.9")), db.settings)
        )
        assert down2.detail.startswith("Downgrade refused")
        same = await db.refused(
            lambda s: lifecycle.upload(
                s, ACTOR, package(notes_toml("1.1.0", color=True, notebook=True)), db.settings
            )
        )
        assert same.detail == "notes 1.1.0 is already installed with this exact package"
        changed = await db.refused(
            lambda s: lifecycle.upload(s, ACTOR, package(notes_toml("1.1.0", color=True)), db.settings)
        )
        assert "bump the version" in changed.detail

    scenario(body)


def test_destructive_upgrade_is_refused_with_losses_then_applied_after_a_backup(scenario):
    async def body(db: Db) -> None:
        await db.upload(notes_toml(), install_now=True)
        await db.enable("acme", "notes")
        await db.insert("acme", "notes", "note", {"title": "Keep", "body": "precious text"})

        v2 = notes_toml("2.0.0", body=False)
        refused = await db.refused(
            lambda s: lifecycle.upload(s, ACTOR, package(v2), db.settings), DestructiveUpgrade
        )
        assert refused.losses == ["note.body: field dropped (its data would be lost)"]
        assert "allow_destructive" in refused.detail
        assert "body" in await db.columns("plugin_note")
        assert await db.backups() == []
        row = await db.scalar(sa.select(PluginPackage).where(PluginPackage.plugin_id == "notes"))
        assert row.version == "1.0.0"

        applied = await db.upload(v2, allow_destructive=True)
        assert applied.version == "2.0.0"
        assert "body" not in await db.columns("plugin_note")
        backups = await db.backups()
        assert [(b.plugin_id, b.label) for b in backups] == [("notes", "upgrade")]
        assert backups[0].file_name.startswith("notes-upgrade-")
        saved = [json.loads(line) for line in (await db.backup_files(backups[0]))["note.jsonl"].splitlines()]
        assert [(r["title"], r["body"]) for r in saved] == [("Keep", "precious text")]
        assert [r["title"] for r in await db.rows("acme", "notes", "note")] == ["Keep"]

    scenario(body)


def test_purge_writes_a_backup_that_round_trips_and_drops_the_tables(scenario):
    async def body(db: Db) -> None:
        await db.upload(notes_toml(), install_now=True)
        inserted = []
        for tenant in ("acme", "globex"):
            await db.enable(tenant, "notes")
            inserted.append(
                await db.insert(
                    tenant,
                    "notes",
                    "note",
                    {
                        "title": f"Ünïcode {tenant} ✓",
                        "body": "line 1\nline 2",
                        "pinned": True,
                        "due": "2026-04-13",
                        "amount": "1234.50",
                    },
                )
            )
            inserted.append(await db.insert(tenant, "notes", "note", {"title": f"Plain {tenant}"}))
            await db.disable(tenant, "notes")
        await db.uninstall("notes")

        backup = await db.purge("notes", " notes ")
        assert sorted(backup) == ["note.jsonl", "plugin.toml", "schema.json"]
        assert not (db.settings.data_dir / "backups").exists()  # in the database, not on this host's disk
        schema = json.loads(backup["schema.json"])
        assert schema["plugin"] == "notes" and schema["version"] == "1.0.0"
        assert schema["entities"]["note"]["table"] == "plugin_note"
        assert {"id", "tenant_id", "title", "body", "pinned", "due", "amount", "version"} <= set(
            schema["entities"]["note"]["columns"]
        )
        assert backup["plugin.toml"] == notes_toml()

        saved = {r["id"]: r for r in map(json.loads, backup["note.jsonl"].splitlines())}
        assert len(saved) == len(inserted) == 4
        for row in inserted:
            back = saved[str(row["id"])]
            assert back["tenant_id"] == str(row["tenant_id"])
            assert back["title"] == row["title"] and back["body"] == row.get("body")
            assert back["pinned"] is row.get("pinned", False)  # the column default when not given
            assert back["due"] == (row["due"].isoformat() if row.get("due") else None)
            assert (Decimal(back["amount"]) if back["amount"] is not None else None) == row.get("amount")
            assert back["version"] == 1 and back["deleted_at"] is None

        assert "plugin_note" not in await db.tables()
        async with db.tx() as s:
            assert await s.scalar(sa.select(PluginPackage).where(PluginPackage.plugin_id == "notes")) is None
            assert await s.scalar(sa.select(sa.func.count()).select_from(PluginSchemaVersion)) == 0
            assert await s.scalar(sa.select(sa.func.count()).select_from(PluginTenant)) == 0
            assert await s.scalar(sa.select(Permission).where(Permission.code.like("db.note.%"))) is None
        # A purged plugin is gone for good: it can be uploaded again from scratch.
        again = await db.upload(notes_toml(), install_now=True)
        assert lifecycle.state_name(again) == "installed"
        await db.enable("acme", "notes")
        assert await db.rows("acme", "notes", "note") == []

    scenario(body)


def test_seed004_manifest_installs_and_a_missing_module_is_refused(scenario):
    async def body(db: Db) -> None:
        lacking = read_zip(plugin_zip(MISSING_MODULE_TOML))
        refused = await db.refused(
            lambda s: lifecycle.upload(s, ACTOR, lacking, db.settings, install_now=True), ManifestRejected
        )
        assert refused.issues == [MISSING_MODULE_MESSAGE]
        assert str(refused) == MISSING_MODULE_MESSAGE
        assert await db.scalar(sa.select(sa.func.count()).select_from(PluginPackage)) == 0
        assert not (db.settings.data_dir / "plugins").exists()
        assert not {t for t in await db.tables() if t.startswith("plugin_")}
        # The example, unchanged, depends on auth and workflow: both exist now.
        row = await db.upload(SEED_FIXTURE.read_text(encoding="utf-8"), install_now=True)
        assert row.plugin_id == "erp-inventory" and lifecycle.state_name(row) == "installed"
        assert {"plugin_inventory_item", "plugin_purchase_order"} <= set(await db.tables())

    scenario(body)


def test_cli_installs_upgrades_enables_and_lists(settings_env, tmp_path):
    from click.testing import CliRunner

    from app.cli import main

    runner = CliRunner()

    def portal(*args: str) -> Any:
        return runner.invoke(main, list(args), env=settings_env, catch_exceptions=False)

    assert portal("tenant", "create", "acme", "--name", "Acme").exit_code == 0
    assert portal("plugin", "list").output == "No plugins.\n"
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "plugin.toml").write_text(notes_toml(), encoding="utf-8")
    done = portal("plugin", "install", str(folder), "--tenant", "acme", "--enable")
    assert done.exit_code == 0 and done.output == "Installed notes 1.0.0\nEnabled notes in acme\n"
    again = portal("plugin", "install", str(folder), "--tenant", "acme", "--enable")
    assert again.output == "notes 1.0.0 is already installed\nnotes is already enabled in acme\n"
    newer = tmp_path / "notes-1.1.0.zip"
    newer.write_bytes(plugin_zip(notes_toml("1.1.0", color=True)))
    assert portal("plugin", "install", str(newer)).output == "Upgraded notes 1.0.0 → 1.1.0\n"
    lines = portal("plugin", "list").output.splitlines()
    assert lines[0].split() == ["ID", "VERSION", "STATE", "SHA256", "BUNDLED", "ENABLED", "IN"]
    assert lines[1].split()[:3] == ["notes", "1.1.0", "installed"] and lines[1].split()[-1] == "acme"

    lacking = tmp_path / "lacking.zip"
    lacking.write_bytes(plugin_zip(MISSING_MODULE_TOML))
    refused = portal("plugin", "install", str(lacking))
    assert refused.exit_code == 2 and refused.stderr == f"portal: {MISSING_MODULE_MESSAGE}\n"
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"junk")
    bad = portal("plugin", "install", str(junk))
    assert bad.exit_code == 2 and "Not a zip archive" in bad.stderr
    lonely = portal("plugin", "install", str(folder), "--enable")
    assert lonely.exit_code == 2 and "--enable and --tenant go together" in lonely.stderr
