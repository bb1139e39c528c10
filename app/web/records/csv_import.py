"""CSV import (upload or paste): a dry-run preview counting the rows that would be created, updated,
skipped and refused, then the import itself through the record service (app.records.importer).

The file is read a batch at a time (app.records.csv_source): the preview keeps the counts, the first
PREVIEW_ROWS rows with problems and clean ones, and the refused rows' CSV, never every row. Two modes.
*All or nothing* (the default): every row valid or none written, in one transaction of this request — so
at most MAX_ATOMIC_ROWS rows. *Import the valid rows, skip the rest*: the preview keeps the file in an
import job, and "Import" starts it in the background (app.records.import_jobs: batches of BATCH_SIZE rows,
each committed on its own); the browser goes to the job's progress page (app.web.records.import_jobs).
Reference cells may name the row (its display value or a unique field) instead of its id; a key field
makes rows that match an existing row update it.
"""

from __future__ import annotations

import asyncio
import functools
import io
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from litestar import Response
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.core.import_jobs import ImportJob
from app.core.models import utcnow
from app.events import PENDING_KEY
from app.manifest.labels import pick_label
from app.records import import_jobs
from app.records.csv_source import MAX_IMPORT_BYTES, CsvFile, Rows, check_text, count_rows
from app.records.importer import BATCH_SIZE, ImportCounts, ImportRun
from app.web.context import RequestContext, TenantContext
from app.web.i18n import localize
from app.web.records.target import Target, atomic, common, need_action
from app.web.render import page, redirect

__all__ = ["MAX_IMPORT_BYTES", "import_form", "import_post"]
MAX_ATOMIC_ROWS = 5_000  # all-or-nothing is one transaction: bigger files import in batches
PREVIEW_ROWS = 200
# A "skip the rest" preview checks this many rows and counts the others: a 100,000-row file previews in
# seconds, not as long as its import (whose job checks every row and lists the refused ones).
PREVIEW_CHECKED = 5_000


@dataclass
class ImportPreview:
    columns: list[str]
    ignored: list[str]
    unknown: list[str]
    rows: list[tuple[int, dict[str, str], dict[str, str]]]  # (number, cells, errors)
    total: int
    counts: ImportCounts
    csv_text: str
    key: str | None = None
    skip_invalid: bool = False
    problem: str | None = None
    refused_csv: str = ""
    job_id: uuid.UUID | None = None  # the import job keeping the file ("skip the rest" mode)
    checked: int = 0  # rows checked: `total`, or the first PREVIEW_CHECKED of a bigger file

    @property
    def partial(self) -> bool:
        return self.checked < self.total

    @property
    def error_rows(self) -> int:
        return self.counts.refused

    @property
    def ok(self) -> bool:
        """May be confirmed: no file problem, and every row valid unless refused rows are skipped."""
        return (
            self.problem is None
            and self.total > 0
            and (self.counts.refused == 0 or self.skip_invalid)
            and self.counts.refused < self.checked
        )

    @property
    def refused_href(self) -> str:
        return "data:text/csv;charset=utf-8," + quote("\ufeff" + self.refused_csv) if self.refused_csv else ""


@dataclass
class Scan:
    """What one pass over the file keeps: the rows shown (problems first) and the refused rows' CSV."""

    bad: list[tuple[int, dict[str, str], dict[str, str]]] = field(default_factory=list)
    good: list[tuple[int, dict[str, str], dict[str, str]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def note(
        self, ctx: RequestContext, source: CsvFile, rows: Rows, errors: dict[int, dict[str, str]]
    ) -> None:
        for number, cells in rows:
            problems = errors.get(number)
            kept = self.bad if problems else self.good
            if len(kept) < PREVIEW_ROWS:
                kept.append((number, cells, problems or {}))
        if errors:
            translate = functools.partial(localize, ctx)
            self.refused.append(
                import_jobs.refused_rows_csv(source.columns, rows, errors, translate, header=not self.refused)
            )

    @property
    def shown(self) -> list[tuple[int, dict[str, str], dict[str, str]]]:
        return (self.bad + self.good)[:PREVIEW_ROWS]


async def file_bytes(form: FormMultiDict) -> tuple[bytes, str]:
    """The uploaded file (or the pasted text) and its name, checked to be readable text."""
    upload = form.get("file")
    raw = b""
    name = ""
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_IMPORT_BYTES + 1)
        name = upload.filename
    elif isinstance(form.get("csv_text"), str):
        raw = str(form.get("csv_text")).encode("utf-8")
    check_text(raw)
    return raw, name


def _options(form: FormMultiDict, ref: Any, header: list[str]) -> tuple[str | None, bool]:
    key = str(form.get("key") or "").strip() or None
    skip = form.get("skip_invalid") == "1"
    if key is not None:
        if ImportRun.key_spec(ref, key) is None:
            raise ValidationFailed({"key": N_("Choose a unique field as the key.")})
        if key not in header:
            raise ValidationFailed({"key": N_("The key column %(key)s is not in the file.", key=key)})
    return key, skip


def _too_many() -> ValidationFailed:
    return ValidationFailed(
        {
            "skip_invalid": N_(
                "Files of more than %(rows)s rows import in batches: choose “Import the valid rows, "
                "skip the rest”.",
                rows=f"{MAX_ATOMIC_ROWS:,}",
            )
        }
    )


async def _run(
    ctx: RequestContext,
    run: ImportRun,
    source: CsvFile,
    *,
    keep: bool,
    skip: bool,
    commit: bool = True,
    limit: int | None = None,
) -> Scan:
    """Every batch in a savepoint; `keep`: keep each batch's rows, else roll them back (a dry run).
    `commit`: the request's transaction commits after each batch, so SQLite's write lock is never held
    for the whole file (not in all-or-nothing mode: one transaction). `limit`: stop after the batch that
    reaches this many rows."""
    scan = Scan()
    first = True
    for rows in source.batches(BATCH_SIZE):
        if commit and not first:
            await import_jobs.between_batches(ctx.db)  # other writers may write between two batches
        first = False
        if not skip and source.rows_read > MAX_ATOMIC_ROWS:
            raise _too_many()
        async with ctx.db.begin_nested() as savepoint:
            await run.batch(rows)
            if not keep and savepoint.is_active:
                await savepoint.rollback()
        if not keep:
            ctx.db.sync_session.info.pop(PENDING_KEY, None)  # no events for rows that were never kept
        scan.note(ctx, source, rows, run.errors)
        run.errors.clear()  # noted: memory stays one batch's
        if limit is not None and source.rows_read >= limit:
            break
    return scan


def _preview(
    source: CsvFile, text: str, run: ImportRun, skip: bool, scan: Scan, total: int | None = None
) -> ImportPreview:
    return ImportPreview(
        source.columns,
        source.ignored,
        source.unknown,
        scan.shown,
        source.rows_read if total is None else total,
        run.counts,
        text,
        run.key,
        skip,
        None if source.rows_read else "The file has no data rows.",
        "".join(scan.refused),
        checked=source.rows_read,
    )


def importer(ctx: TenantContext) -> import_jobs.Importer:
    """The user importing, as a background job needs them after this request (permissions and data
    scope as they are now; error messages in this request's language)."""
    language = SimpleNamespace(translations=ctx.translations, language=ctx.language)
    return import_jobs.Importer(
        ctx.tenant_id,
        ctx.actor,
        ctx.can,
        ctx.data_scope(),
        hooks=ctx.records().hooks,
        translate=functools.partial(localize, language),
    )


async def import_page(
    request: HTMXRequest,
    ctx: RequestContext,
    target: Target,
    *,
    preview: ImportPreview | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    spec = target.ref.spec
    return await page(
        request,
        ctx,
        "records/import.html",
        status_code=status_code,
        **common(ctx, target),
        preview=preview,
        errors=errors or {},
        chosen=form or {},
        key_fields=ImportRun.key_fields(target.ref) if ctx.can(target.ref.permission("update")) else [],
        field_labels={f.name: f.label for f in spec.fields},
        reference_fields=[f for f in spec.fields if f.type == "reference"],
        max_atomic=f"{MAX_ATOMIC_ROWS:,}",
        title=N_("Import %(entity)s", entity=pick_label(target.ref.spec.label, ctx.language)),
    )


async def import_form(request: HTMXRequest, ctx: RequestContext, target: Target) -> Template:
    need_action(ctx, target, "import")
    ctx.records().require(target.ref, "insert")
    return await import_page(request, ctx, target)


async def import_post(request: HTMXRequest, ctx: TenantContext, target: Target) -> Response[Any]:
    need_action(ctx, target, "import")
    svc = ctx.records()
    ref = target.ref
    svc.require(ref, "insert")
    form = await request.form()
    chosen = {"key": str(form.get("key") or ""), "skip_invalid": form.get("skip_invalid") == "1"}
    confirm = form.get("confirm") == "1"
    try:
        if confirm and form.get("job"):  # "Import" after a preview that kept the file
            return await _start(request, ctx, target, await _previewed(ctx, target, str(form.get("job"))))
        raw, filename = await file_bytes(form)
        source = CsvFile(io.BytesIO(raw), ref)
        key, skip = _options(form, ref, source.header)
        run = ImportRun(svc, ref, key)
        if confirm and skip:  # the file posted again with "Import": straight to a job
            who = importer(ctx)
            job = await import_jobs.create(ctx.db, who, ref.name, target.url, raw, key, filename)
            return await _start(request, ctx, target, job)
        if not confirm:
            scan = await _run(
                ctx, run, source, keep=False, skip=skip, limit=PREVIEW_CHECKED if skip else None
            )
            total = None
            if skip and source.rows_read >= PREVIEW_CHECKED:  # the rest counted, not checked
                total = await asyncio.to_thread(count_rows, io.BytesIO(raw), ref)
            preview = _preview(source, "" if skip else raw.decode("utf-8-sig"), run, skip, scan, total)
            if skip and preview.ok:  # keep the file for "Import" (not sent back and forth)
                job = await import_jobs.create(
                    ctx.db, importer(ctx), ref.name, target.url, raw, key, filename
                )
                preview.job_id = job.id
            return await import_page(request, ctx, target, preview=preview, form=chosen)
        async with atomic(ctx) as everything:
            scan = await _run(ctx, run, source, keep=True, skip=False, commit=False)
            if run.counts.refused and everything.is_active:  # changed since the preview: write nothing
                await everything.rollback()
        if run.counts.refused:
            ctx.db.sync_session.info.pop(PENDING_KEY, None)
            preview = _preview(source, raw.decode("utf-8-sig"), run, skip, scan)
            return await import_page(request, ctx, target, preview=preview, form=chosen, status_code=422)
    except ValidationFailed as exc:
        return await import_page(request, ctx, target, errors=exc.errors, form=chosen, status_code=422)
    c = run.counts
    return redirect(
        target.url,
        N_(
            "Imported %(entity)s: %(created)s created, %(updated)s updated, %(skipped)s unchanged.",
            entity=ref.spec.label,
            created=c.created,
            updated=c.updated,
            skipped=c.skipped,
        ),
    )


async def _previewed(ctx: TenantContext, target: Target, given: str) -> ImportJob:
    """The preview's job holding the file: this user's, in this tenant, for this list, not started."""
    try:
        job_id = uuid.UUID(given)
    except ValueError:
        job_id = None
    job = (
        await ctx.db.scalar(
            sa.select(ImportJob).where(
                ImportJob.id == job_id,
                ImportJob.tenant_id == ctx.tenant_id,
                ImportJob.user_id == ctx.user.id,
                ImportJob.entity == target.ref.name,
            )
        )
        if job_id
        else None
    )
    if job is None or job.status != "preview":
        raise ValidationFailed({"file": N_("This preview is no longer available: choose the file again.")})
    return job


async def _start(request: HTMXRequest, ctx: TenantContext, target: Target, job: ImportJob) -> Response[Any]:
    """Mark the job running, commit (the task reads it at once), start it; show its progress page."""
    job.status = "running"
    job.beat_at = job.created_at = utcnow()
    await ctx.db.commit()
    ctx.services.import_jobs.start(request.app.state.alchemy.get_session, job.id, importer(ctx))
    return redirect(f"{target.url}/import/jobs/{job.id}")
