"""CSV import (upload or paste): a dry-run preview counting the rows that would be created, updated,
skipped and refused, then the import itself through the record service (app.records.importer).

Two modes. *All or nothing* (the default): every row valid or none written, in one transaction — so
at most MAX_ATOMIC_ROWS rows. *Import the valid rows, skip the rest*: batches of BATCH_SIZE rows, each
committed on its own (SQLite's write lock is released between batches), refused rows offered as a CSV
of the rows and their errors. Reference cells may name the row (its display value or a unique field)
instead of its id; a key field makes rows that match an existing row update it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from litestar import Response
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.core.db import commit_keeping_write_lock
from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.events import PENDING_KEY
from app.manifest import STANDARD_FIELDS
from app.manifest.labels import pick_label
from app.plugins.runtime import EntityRef
from app.records.importer import BATCH_SIZE, ImportCounts, ImportRun
from app.web.context import RequestContext
from app.web.i18n import localize
from app.web.records.csv_io import CSV_FORMULA
from app.web.records.target import Target, atomic, common, need_action
from app.web.render import page, redirect

MAX_IMPORT_BYTES = 32 * 1024 * 1024
MAX_IMPORT_ROWS = 200_000
MAX_ATOMIC_ROWS = 5_000  # all-or-nothing is one transaction: bigger files import in batches
PREVIEW_ROWS = 200

Rows = list[tuple[int, dict[str, str]]]


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
    done: bool = False  # the result of an import, not a preview
    errors: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def error_rows(self) -> int:
        return self.counts.refused

    @property
    def ok(self) -> bool:
        """May be confirmed: no file problem, and every row valid unless refused rows are skipped."""
        return (
            not self.done
            and self.problem is None
            and self.total > 0
            and (self.counts.refused == 0 or self.skip_invalid)
            and self.counts.refused < self.total
        )

    @property
    def refused_href(self) -> str:
        return "data:text/csv;charset=utf-8," + quote("\ufeff" + self.refused_csv) if self.refused_csv else ""


def read_csv(text: str, ref: EntityRef) -> tuple[list[str], Rows, list[str], list[str]]:
    """(header, numbered rows for the service, ignored standard columns, unknown columns)."""
    try:
        return _parse_csv(text, ref)
    except csv.Error as exc:
        raise ValidationFailed(
            {"file": N_("This is not a readable CSV file: %(error)s.", error=str(exc))}
        ) from exc


def _parse_csv(text: str, ref: EntityRef) -> tuple[list[str], Rows, list[str], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValidationFailed({"file": N_("The CSV file is empty.")}) from None
    if not any(header):
        raise ValidationFailed({"file": N_("The first line must name the columns (field names).")})
    ignored = [h for h in header if h in STANDARD_FIELDS]
    unknown = [h for h in header if h and h not in STANDARD_FIELDS and not ref.spec.has_field(h)]
    rows: Rows = []
    for line in reader:
        if not any(cell.strip() for cell in line):
            continue
        if len(rows) >= MAX_IMPORT_ROWS:
            raise ValidationFailed(
                {"file": N_("Import at most %(rows)s rows at a time.", rows=f"{MAX_IMPORT_ROWS:,}")}
            )
        data: dict[str, str] = {}
        for i, name in enumerate(header):
            if not name or name in STANDARD_FIELDS:
                continue
            cell = line[i] if i < len(line) else ""
            if len(cell) > 1 and cell[0] == "'" and cell[1] in CSV_FORMULA:
                cell = cell[1:]  # undo the export's formula guard
            if cell != "":  # an empty cell means "no value": the field's default applies
                data[name] = cell
        rows.append((len(rows) + 1, data))
    return header, rows, ignored, unknown


async def csv_text(form: FormMultiDict) -> str:
    upload = form.get("file")
    raw: bytes | str = ""
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_IMPORT_BYTES + 1)
    elif isinstance(form.get("csv_text"), str):
        raw = str(form.get("csv_text"))
    if len(raw) > MAX_IMPORT_BYTES:
        raise ValidationFailed(
            {"file": N_("The file is larger than %(mb)s MB.", mb=MAX_IMPORT_BYTES // (1024 * 1024))}
        )
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationFailed(
                {"file": N_("The file is not UTF-8 text (byte %(at)s).", at=exc.start)}
            ) from exc
    text = raw.lstrip("\ufeff")
    if not text.strip():
        raise ValidationFailed({"file": N_("Choose a CSV file (or paste CSV text).")})
    return text


def _options(form: FormMultiDict, ref: EntityRef, header: list[str], rows: Rows) -> tuple[str | None, bool]:
    key = str(form.get("key") or "").strip() or None
    skip = form.get("skip_invalid") == "1"
    if key is not None:
        if ImportRun.key_spec(ref, key) is None:
            raise ValidationFailed({"key": N_("Choose a unique field as the key.")})
        if key not in header:
            raise ValidationFailed({"key": N_("The key column %(key)s is not in the file.", key=key)})
    if not skip and len(rows) > MAX_ATOMIC_ROWS:
        raise ValidationFailed(
            {
                "skip_invalid": N_(
                    "Files of more than %(rows)s rows import in batches: choose “Import the valid rows, "
                    "skip the rest”.",
                    rows=f"{MAX_ATOMIC_ROWS:,}",
                )
            }
        )
    return key, skip


def refused_csv(
    ctx: RequestContext, columns: list[str], rows: Rows, errors: dict[int, dict[str, str]]
) -> str:
    """The refused rows as they were in the file, with the row number and the errors (to fix, re-import)."""
    if not errors:
        return ""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*columns, "row", "errors"])
    for number, cells in rows:
        if number in errors:
            problems = "; ".join(
                f"{key}: {localize(ctx, message)}" if key else localize(ctx, message)
                for key, message in errors[number].items()
            )
            writer.writerow([*(cells.get(c, "") for c in columns), number, problems])
    return buffer.getvalue()


async def _run(ctx: RequestContext, run: ImportRun, rows: Rows, *, keep: bool, commit: bool = True) -> None:
    """Every batch in a savepoint; `keep`: keep each batch's rows, else roll them back (a dry run).
    `commit`: the request's transaction commits after each batch of a file of several batches, so
    SQLite's write lock is never held for the whole file (not in all-or-nothing mode: one transaction)."""
    for start in range(0, len(rows), BATCH_SIZE):
        async with ctx.db.begin_nested() as savepoint:
            await run.batch(rows[start : start + BATCH_SIZE])
            if not keep and savepoint.is_active:
                await savepoint.rollback()
        if not keep:
            ctx.db.sync_session.info.pop(PENDING_KEY, None)  # no events for rows that were never kept
        if commit and len(rows) > BATCH_SIZE:
            await commit_keeping_write_lock(ctx.db)


def _preview(
    ctx: RequestContext,
    header: list[str],
    rows: Rows,
    ignored: list[str],
    unknown: list[str],
    text: str,
    run: ImportRun,
    skip: bool,
    *,
    done: bool = False,
) -> ImportPreview:
    columns = [h for h in header if h and h not in STANDARD_FIELDS]
    shown = [(n, cells, run.errors.get(n, {})) for n, cells in rows]
    shown.sort(key=lambda r: (not r[2], r[0]))  # rows with errors first, then the clean ones
    return ImportPreview(
        columns,
        ignored,
        unknown,
        shown[:PREVIEW_ROWS],
        len(rows),
        run.counts,
        text,
        run.key,
        skip,
        None if rows else "The file has no data rows.",
        refused_csv(ctx, columns, rows, run.errors),
        done,
        run.errors,
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


async def import_post(request: HTMXRequest, ctx: RequestContext, target: Target) -> Response[Any]:
    need_action(ctx, target, "import")
    svc = ctx.records()
    ref = target.ref
    svc.require(ref, "insert")
    form = await request.form()
    chosen = {"key": str(form.get("key") or ""), "skip_invalid": form.get("skip_invalid") == "1"}
    try:
        text = await csv_text(form)
        header, rows, ignored, unknown = read_csv(text, ref)
        key, skip = _options(form, ref, header, rows)
        run = ImportRun(svc, ref, key)
        if form.get("confirm") != "1" or not rows:
            await _run(ctx, run, rows, keep=False)
            preview = _preview(ctx, header, rows, ignored, unknown, text, run, skip)
            return await import_page(request, ctx, target, preview=preview, form=chosen)
        if skip:
            await _run(ctx, run, rows, keep=True)
        else:
            async with atomic(ctx) as everything:
                await _run(ctx, run, rows, keep=True, commit=False)
                if run.errors and everything.is_active:  # changed since the preview: write nothing
                    await everything.rollback()
            if run.errors:
                ctx.db.sync_session.info.pop(PENDING_KEY, None)
                preview = _preview(ctx, header, rows, ignored, unknown, text, run, skip)
                return await import_page(request, ctx, target, preview=preview, form=chosen, status_code=422)
    except ValidationFailed as exc:
        return await import_page(request, ctx, target, errors=exc.errors, form=chosen, status_code=422)
    c = run.counts
    if c.refused:  # the result, with the refused rows to download
        preview = _preview(ctx, header, rows, ignored, unknown, text, run, skip, done=True)
        return await import_page(request, ctx, target, preview=preview, form=chosen)
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
