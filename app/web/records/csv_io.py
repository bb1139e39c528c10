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
