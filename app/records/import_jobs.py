"""Background CSV imports: after the preview, "Import" starts a job that runs in the app's process as an
asyncio task and writes its progress to `import_jobs` (app.core.import_jobs), so the page that polls it
may be served by any host over the same database, and a reload finds it again.

The job reads the stored file a batch at a time (app.records.csv_source) and imports each batch of
BATCH_SIZE rows through the importer (app.records.importer: the record service's rules, with the
permissions and data scope of the user who started it, as they were at the start) in a transaction of
its own, committed with the batch's progress and refused rows. No transaction outlives one batch; on
SQLite the job also pauses SQLITE_PAUSE between batches, longer than SQLite's busy handler waits between
two tries, so a writer waiting for the write lock (another user's form) gets it before the next batch.

When it stops: *done*; *cancelled* (asked on the page; noticed before the next batch); *failed* (the file
or the entity became unusable, an unexpected error, or the server stopped). A process that dies mid-import
leaves its job "running" with an old `beat_at`: shown as failed once the beat is STALE_AFTER old, and
marked failed at the next start of any host (`mark_lost`). Batches committed before stay imported either
way (each batch is whole or absent); the page says how many rows were done, so the rest can be imported
again (with a key field, rows already imported update or are skipped instead of being refused).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import logging
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.scopes import DataScope
from app.audit import Actor
from app.core.db import SQLITE_WRITE_LOCK
from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.core.import_jobs import ImportJob
from app.core.models import Tenant, utcnow
from app.core.settings import SYSTEM_TENANT_ID
from app.plugins import runtime
from app.records.csv_source import CsvFile, Rows, count_rows
from app.records.importer import BATCH_SIZE, ImportRun
from app.records.service import NO_HOOKS, RecordHooks, RecordService

log = logging.getLogger("portal.imports")
SYSTEM = uuid.UUID(SYSTEM_TENANT_ID)
Sessions = Callable[[], AbstractAsyncContextManager[AsyncSession]]

STALE_AFTER = dt.timedelta(minutes=2)  # a running job's beat older than this: its process is gone
SQLITE_PAUSE = 0.11  # s; SQLite's busy handler retries a waiting writer at most every 100 ms
POSTGRES_PAUSE = 0.0  # row locks only: other writers never wait for a batch of new rows
# PostgreSQL: statistics of the table refreshed (ANALYZE) every this many rows written. A bulk load
# leaves them behind until autovacuum catches up (never, with autovacuum off), and plans made for an
# "empty" table scan every row of the tenant per looked-up value: the key lookup of a 500-row batch
# took ~3 s on a 100,000-row table before its first ANALYZE, ~50 ms after.
ANALYZE_EVERY = 20_000
PREVIEW_KEPT = dt.timedelta(days=1)  # files of previews nobody imported are dropped after this
FINISHED_KEPT = dt.timedelta(days=30)  # finished jobs (their result page, refused rows) kept this long
# Stored in the job (`problem`) as the English msgid, shown translated.
LOST = N_("The import stopped because the server stopped. The rows counted as done were imported.")
FAILED = N_("The import stopped on an unexpected error. The rows counted as done were imported.")
GONE = N_("This list is no longer available in this tenant.")


@dataclass(frozen=True)
class Importer:
    """Who imports: what the record service needs, taken from the request that started the job."""

    tenant_id: uuid.UUID
    actor: Actor
    can: Callable[[str], bool]
    scope: DataScope | None
    hooks: RecordHooks = NO_HOOKS
    translate: Callable[[Any], str] = str  # error messages in the refused rows' CSV, in their language


def refused_rows_csv(
    columns: list[str],
    rows: Rows,
    errors: Mapping[int, Mapping[str, Any]],
    translate: Callable[[Any], str],
    *,
    header: bool = True,
) -> str:
    """The refused rows among `rows` as they were in the file, with the row number and the errors."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow([*columns, "row", "errors"])
    for number, cells in rows:
        if number in errors:
            problems = "; ".join(
                f"{key}: {translate(message)}" if key else translate(message)
                for key, message in errors[number].items()
            )
            writer.writerow([*(cells.get(c, "") for c in columns), number, problems])
    return buffer.getvalue()


async def create(
    session: AsyncSession,
    who: Importer,
    entity: str,
    page_url: str,
    raw: bytes,
    key: str | None,
    filename: str,
) -> ImportJob:
    """A job in preview: the file kept until "Import". Old previews and long-finished jobs go meanwhile."""
    assert who.actor.user_id is not None
    now = utcnow()
    await session.execute(
        sa.delete(ImportJob).where(
            sa.or_(
                sa.and_(ImportJob.status == "preview", ImportJob.created_at < now - PREVIEW_KEPT),
                ImportJob.finished_at < now - FINISHED_KEPT,
            )
        )
    )
    job = ImportJob(
        tenant_id=who.tenant_id,
        user_id=who.actor.user_id,
        entity=entity,
        page_url=page_url,
        filename=filename[:255],
        key=key,
        status="preview",
        cancel_requested=False,
        source=raw,
        refused_csv="",
    )
    session.add(job)
    await session.flush()
    return job


def status_of(job: ImportJob, now: dt.datetime | None = None) -> str:
    """The job's status as shown: a running job whose process stopped beating has failed."""
    if job.status == "running" and (now or utcnow()) - job.beat_at > STALE_AFTER:
        return "failed"
    return job.status


async def mark_lost(session: AsyncSession) -> int:
    """At start: the running jobs whose process is gone (no beat for STALE_AFTER) are failed."""
    now = utcnow()
    result = await session.execute(
        sa.update(ImportJob)
        .where(ImportJob.status == "running", ImportJob.beat_at < now - STALE_AFTER)
        .values(status="failed", problem=LOST, finished_at=now, source=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass
class ImportJobs:
    """This process's running imports (AppServices.import_jobs): their tasks, stopped at shutdown."""

    tasks: dict[uuid.UUID, asyncio.Task[None]] = field(default_factory=dict)

    def start(self, sessions: Sessions, job_id: uuid.UUID, who: Importer) -> None:
        task = asyncio.get_running_loop().create_task(run(sessions, job_id, who), name=f"import {job_id}")
        self.tasks[job_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(job_id, None))

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run(sessions: Sessions, job_id: uuid.UUID, who: Importer) -> None:
    """Import the job's file; whatever happens, the job ends in a final status."""
    try:
        await _import(sessions, job_id, who)
    except asyncio.CancelledError:
        await _finish(sessions, job_id, "failed", LOST)
        raise
    except ValidationFailed as exc:  # the file (read again) or the options are refused
        await _finish(sessions, job_id, "failed", "; ".join(who.translate(m) for m in exc.errors.values()))
    except Exception:
        log.exception("import job %s failed", job_id)
        await _finish(sessions, job_id, "failed", FAILED)


async def _finish(sessions: Sessions, job_id: uuid.UUID, status: str, problem: str | None = None) -> None:
    async with sessions() as session:
        await _lock(session)
        await session.execute(
            sa.update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(
                status=status, problem=problem[:500] if problem else None, finished_at=utcnow(), source=None
            )
        )
        await session.commit()


async def _lock(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "sqlite":  # BEGIN IMMEDIATE: see app.core.db
        await session.connection(execution_options={SQLITE_WRITE_LOCK: True})


async def between_batches(session: AsyncSession) -> None:
    """Commit a batch, leave the database to other writers for a moment, then begin the next batch's
    transaction (on SQLite taking the write lock again: BEGIN IMMEDIATE is sent at once)."""
    await session.commit()
    sqlite = session.get_bind().dialect.name == "sqlite"
    pause = SQLITE_PAUSE if sqlite else POSTGRES_PAUSE
    if pause:
        await asyncio.sleep(pause)  # nothing held: a writer waiting for the lock takes it now
    await _lock(session)


async def _note_versions(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """As a request does (app.web.context): note the tenant's and the platform's policy versions read in
    this transaction, so the per-worker caches (enabled plugins, hooks, validators) answer without a
    query per row, and a change of settings is seen by the next batch."""
    query = sa.select(Tenant.id, Tenant.policy_version).where(Tenant.id.in_((tenant_id, SYSTEM)))
    found: dict[uuid.UUID, int] = {rid: version for rid, version in (await session.execute(query)).all()}
    runtime.note_versions(session, tenant_id, (found.get(tenant_id) or 0, found.get(SYSTEM) or 0))


async def _import(sessions: Sessions, job_id: uuid.UUID, who: Importer) -> None:
    async with sessions() as session:
        job = await session.get(ImportJob, job_id)
        if job is None or job.tenant_id != who.tenant_id or job.source is None:
            return
        raw, entity_name, key = job.source, job.entity, job.key
    del job
    async with sessions() as session:
        await _note_versions(session, who.tenant_id)  # reads: no write lock yet
        entity = runtime.find_entity(await runtime.enabled_for(session, who.tenant_id), entity_name)
        await session.commit()
        if entity is None:
            await _finish(sessions, job_id, "failed", GONE)
            return
        svc = RecordService(session, who.tenant_id, who.actor, who.can, scope=who.scope, hooks=who.hooks)
        importer = ImportRun(svc, entity, key)  # checks the permissions again
        # Parsing the whole file once for the total is CPU work: in a thread, holding no transaction.
        total = await asyncio.to_thread(count_rows, io.BytesIO(raw), entity)
        await _lock(session)
        await _progress(session, job_id, total=total)
        source = CsvFile(io.BytesIO(raw), entity)
        del raw  # the BytesIO keeps it; no other copy
        first = True
        postgres = session.get_bind().dialect.name == "postgresql"
        unanalyzed = before = 0  # rows written since the last ANALYZE; rows written so far
        for rows in source.batches(BATCH_SIZE):
            await between_batches(session)  # the previous batch's (or the count's) transaction ends
            await _note_versions(session, who.tenant_id)
            if await session.scalar(sa.select(ImportJob.cancel_requested).where(ImportJob.id == job_id)):
                await session.rollback()
                await _finish(sessions, job_id, "cancelled")
                return
            async with session.begin_nested():
                await importer.batch(rows)
            chunk = ""
            if importer.errors:
                chunk = refused_rows_csv(source.columns, rows, importer.errors, who.translate, header=first)
                first = False
                importer.errors.clear()  # written with the batch: memory stays one batch's
            c = importer.counts
            unanalyzed += c.created + c.updated - before
            before = c.created + c.updated
            if postgres and unanalyzed >= ANALYZE_EVERY:
                await _analyze(session, entity.table)
                unanalyzed = 0
            await _progress(
                session,
                job_id,
                done=source.rows_read,
                created=c.created,
                updated=c.updated,
                skipped=c.skipped,
                refused=c.refused,
                refused_csv=ImportJob.refused_csv + chunk,
            )
        if postgres and before >= ANALYZE_EVERY and unanalyzed:
            await _analyze(session, entity.table)  # for what comes next (another import, the lists)
        await session.commit()
    await _finish(sessions, job_id, "done")


async def _analyze(session: AsyncSession, table: sa.Table) -> None:
    """Refresh the planner's statistics of `table` (takes no lock that blocks readers or writers)."""
    name = session.get_bind().dialect.identifier_preparer.format_table(table)
    await session.execute(sa.text(f"ANALYZE {name}"))


async def _progress(session: AsyncSession, job_id: uuid.UUID, **values: Any) -> None:
    """Write the progress in the batch's transaction: committed together with the batch's rows."""
    await session.execute(
        sa.update(ImportJob).where(ImportJob.id == job_id).values(beat_at=utcnow(), **values)
    )
