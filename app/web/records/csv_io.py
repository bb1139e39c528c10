"""CSV export of the filtered list (streamed, with a spreadsheet formula guard) and CSV import
(upload or paste, a dry-run preview of every row's errors, then all rows or none)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar import Response
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Stream, Template

from app.core.errors import ValidationFailed
from app.events import PENDING_KEY
from app.manifest import STANDARD_FIELDS, FieldSpec
from app.plugins.runtime import EntityRef
from app.records.query import ListQuery
from app.records.service import RecordService
from app.records.values import to_input, to_json
from app.web.context import RequestContext
from app.web.records.listing import ListPage
from app.web.records.target import Target, atomic, common, need_action
from app.web.render import page, redirect

MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 5_000
PREVIEW_ROWS = 200
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")
# "+1 555 0100" or "-12.5" cannot run as a formula: no guard apostrophe for plain numbers/phones.
PHONE_LIKE = re.compile(r"^[+-][0-9][0-9 ().-]*$")


# --- export --------------------------------------------------------------------------------------


def csv_cell(spec: FieldSpec | None, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = to_input(spec, value) if spec is not None and spec.type == "json" else str(to_json(value))
    if (
        spec is not None
        and spec.type in {"string", "text", "select", "json"}
        and text.startswith(CSV_FORMULA)
        and not PHONE_LIKE.match(text)
    ):
        text = "'" + text  # keep spreadsheets from running it as a formula; import strips it again
    return text


async def export(request: HTMXRequest, ctx: RequestContext, target: Target) -> Stream:
    need_action(ctx, target, "export")
    ref = target.ref
    query = ListPage(request, ctx, target).query  # the list's search, filters, sort and deleted view
    svc = ctx.records()
    # Check the query before the response starts (a bad filter is a 422, not a broken download).
    await svc.list(
        ref, ListQuery(q=query.q, filters=query.filters, sort=query.sort, size=1, deleted=query.deleted)
    )
    header = ["id", *ref.spec.field_names, "created_at", "updated_at"]
    specs = [None, *ref.spec.fields, None, None]
    tenant_id, actor, can, alchemy = ctx.tenant_id, ctx.actor, ctx.can, request.app.state.alchemy
    scope = ctx.data_scope()

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")

        def flush() -> str:
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return text

        writer.writerow(header)
        yield flush()
        # The request's session is closed once the response starts: stream from a session of our own.
        async with alchemy.get_session() as session:
            reader = RecordService(session, tenant_id, actor, can, scope=scope, hooks=svc.hooks)
            n = 0
            async for row in reader.iterate(ref, query):
                writer.writerow([csv_cell(s, row.get(h)) for h, s in zip(header, specs, strict=True)])
                n += 1
                if n % 200 == 0:
                    yield flush()
        yield flush()

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    filename = f"{ref.name}-{stamp}.csv"
    return Stream(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"', "cache-control": "no-store"},
    )


# --- import --------------------------------------------------------------------------------------


@dataclass
class ImportPreview:
    columns: list[str]
    ignored: list[str]
    unknown: list[str]
    rows: list[tuple[int, dict[str, str], dict[str, str]]]  # (number, cells, errors)
    total: int
    error_rows: int
    csv_text: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.error_rows == 0 and self.total > 0


def read_csv(text: str, ref: EntityRef) -> tuple[list[str], list[dict[str, str]], list[str], list[str]]:
    """(header, rows for the service, ignored standard columns, unknown columns)."""
    try:
        return _parse_csv(text, ref)
    except csv.Error as exc:
        raise ValidationFailed({"file": f"This is not a readable CSV file: {exc}."}) from exc


def _parse_csv(text: str, ref: EntityRef) -> tuple[list[str], list[dict[str, str]], list[str], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValidationFailed({"file": "The CSV file is empty."}) from None
    if not any(header):
        raise ValidationFailed({"file": "The first line must name the columns (field names)."})
    ignored = [h for h in header if h in STANDARD_FIELDS]
    unknown = [h for h in header if h and h not in STANDARD_FIELDS and not ref.spec.has_field(h)]
    rows: list[dict[str, str]] = []
    for line in reader:
        if not any(cell.strip() for cell in line):
            continue
        if len(rows) >= MAX_IMPORT_ROWS:
            raise ValidationFailed({"file": f"Import at most {MAX_IMPORT_ROWS:,} rows at a time."})
        data: dict[str, str] = {}
        for i, name in enumerate(header):
            if not name or name in STANDARD_FIELDS:
                continue
            cell = line[i] if i < len(line) else ""
            if len(cell) > 1 and cell[0] == "'" and cell[1] in CSV_FORMULA:
                cell = cell[1:]  # undo the export's formula guard
            if cell != "":  # an empty cell means "no value": the field's default applies
                data[name] = cell
        rows.append(data)
    return header, rows, ignored, unknown


async def csv_text(form: FormMultiDict) -> str:
    upload = form.get("file")
    raw: bytes | str = ""
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_IMPORT_BYTES + 1)
    elif isinstance(form.get("csv_text"), str):
        raw = str(form.get("csv_text"))
    if len(raw) > MAX_IMPORT_BYTES:
        raise ValidationFailed({"file": f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB."})
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationFailed({"file": f"The file is not UTF-8 text (byte {exc.start})."}) from exc
    text = raw.lstrip("\ufeff")
    if not text.strip():
        raise ValidationFailed({"file": "Choose a CSV file (or paste CSV text)."})
    return text


async def validate_import(
    svc: RecordService, ctx: RequestContext, ref: EntityRef, text: str
) -> ImportPreview:
    header, rows, ignored, unknown = read_csv(text, ref)
    errors: dict[int, dict[str, str]] = {}
    if rows:
        # Run the real import inside a savepoint and roll it back: the same checks (types, required,
        # unique — also between rows of the file — and references) without writing anything.
        async with ctx.db.begin_nested() as savepoint:
            _, errors = await svc.import_rows(ref, rows)
            if savepoint.is_active:
                await savepoint.rollback()
        ctx.db.sync_session.info.pop(PENDING_KEY, None)  # no events for rows that were never kept
    columns = [h for h in header if h and h not in STANDARD_FIELDS]
    shown = [(n, rows[n - 1], errors.get(n, {})) for n in range(1, len(rows) + 1)]
    # Rows with errors first (all of them, up to the preview size), then the clean ones.
    shown.sort(key=lambda r: (not r[2], r[0]))
    problem = "The file has no data rows." if not rows else None
    return ImportPreview(
        columns, ignored, unknown, shown[:PREVIEW_ROWS], len(rows), len(errors), text, problem
    )


async def import_page(
    request: HTMXRequest,
    ctx: RequestContext,
    target: Target,
    *,
    preview: ImportPreview | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    return await page(
        request,
        ctx,
        "records/import.html",
        status_code=status_code,
        **common(ctx, target),
        preview=preview,
        errors=errors or {},
        field_labels={f.name: f.label for f in target.ref.spec.fields},
        title=f"Import {target.spec.name}",
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
    try:
        text = await csv_text(form)
        if form.get("confirm") != "1":
            preview = await validate_import(svc, ctx, ref, text)
            return await import_page(request, ctx, target, preview=preview)
        _, rows, _, _ = read_csv(text, ref)
        if not rows:
            raise ValidationFailed({"file": "The file has no data rows."})
        async with atomic(ctx):
            inserted, row_errors = await svc.import_rows(ref, rows)
    except ValidationFailed as exc:
        return await import_page(request, ctx, target, errors=exc.errors, status_code=422)
    if row_errors:  # changed since the preview: nothing was written; show why
        preview = await validate_import(svc, ctx, ref, text)
        return await import_page(request, ctx, target, preview=preview, status_code=422)
    noun = ref.spec.label if inserted == 1 else f"{ref.spec.label} records"
    return redirect(target.url, f"Imported {inserted} {noun}")
