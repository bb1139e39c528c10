"""CSV export of the list as the reader sees it (streamed, with a spreadsheet formula guard): its search,
filters and sort, optionally only its chosen columns (`cols`) and with referenced records' names instead
of their ids (`names=1`, re-importable: app.web.records.csv_import resolves names back). The import is
in csv_import."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from typing import Any

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Stream

from app.manifest import FieldSpec
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.csv_source import CSV_FORMULA  # the export guards what the import strips
from app.records.query import ListQuery
from app.records.service import RecordService
from app.records.values import to_input, to_json
from app.web.context import RequestContext
from app.web.records.files import file_links
from app.web.records.listing import ListPage
from app.web.records.target import Target, need_action

# "+1 555 0100" or "-12.5" cannot run as a formula: no guard apostrophe for plain numbers/phones.
PHONE_LIKE = re.compile(r"^[+-][0-9][0-9 ().-]*$")
LABEL_SPEC = FieldSpec(name="label", type="string", label="Label")  # a name is guarded like text


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


async def _reference_targets(ctx: RequestContext, fields: list[FieldSpec]) -> dict[str, EntityRef]:
    """The reference columns whose target is enabled in this tenant (their names can be written)."""
    refs = [f for f in fields if f.type == "reference" and f.entity]
    if not refs:
        return {}
    plugins = await runtime.enabled_for(ctx.db, ctx.tenant_id)
    found = {f.name: runtime.find_entity(plugins, f.entity or "") for f in refs}
    return {name: target for name, target in found.items() if target is not None}


async def export(request: HTMXRequest, ctx: RequestContext, target: Target) -> Stream:
    need_action(ctx, target, "export")
    ref = target.ref
    listing = ListPage(request, ctx, target)
    query = listing.query  # the list's search, filters, sort and deleted view
    svc = ctx.records()
    # Check the query before the response starts (a bad filter is a 422, not a broken download).
    await svc.list(
        ref, ListQuery(q=query.q, filters=query.filters, sort=query.sort, size=1, deleted=query.deleted)
    )
    fields: list[FieldSpec] = list(ref.spec.fields)
    if listing.chosen:  # the view's chosen columns (those that are fields), in its order
        fields = [c.spec for c in listing.columns if c.spec is not None and ref.spec.has_field(c.name)]
    header = ["id", *(f.name for f in fields), "created_at", "updated_at"]
    specs: list[FieldSpec | None] = [None, *fields, None, None]
    names = await _reference_targets(ctx, fields) if request.query_params.get("names") == "1" else {}
    tenant_id, actor, can, alchemy = ctx.tenant_id, ctx.actor, ctx.can, request.app.state.alchemy
    scope = ctx.data_scope()
    base = str(request.base_url).rstrip("/") + target.url  # file fields: their download URLs

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
            batch: list[dict[str, Any]] = []

            async def write(rows: list[dict[str, Any]]) -> None:
                # One query per reference column per 200 rows: the referenced records' names.
                labels = {
                    name: await reader.labels(target_ref, (r.get(name) for r in rows))
                    for name, target_ref in names.items()
                }
                for row in rows:
                    cells = []
                    for h, s in zip(header, specs, strict=True):
                        value = row.get(h)
                        if h in labels and value is not None:
                            cells.append(csv_cell(LABEL_SPEC, labels[h].get(value, str(value))))
                        elif s is not None and s.is_file:
                            links = file_links(base, row["id"], s, value)
                            cells.append(" ".join(link["url"] for link in links))
                        else:
                            cells.append(csv_cell(s, value))
                    writer.writerow(cells)

            async for row in reader.iterate(ref, query):
                batch.append(row)
                if len(batch) == 200:
                    await write(batch)
                    batch.clear()
                    yield flush()
            await write(batch)
        yield flush()

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    filename = f"{ref.name}-{stamp}.csv"
    return Stream(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"', "cache-control": "no-store"},
    )
