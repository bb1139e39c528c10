"""Related lists on a record's page: the rows of other entities whose reference fields point at the record
(a customer's contacts, a purchase order's lines), each with "New … for this record".

Found automatically from every enabled plugin's reference fields; the page's `related` config orders,
limits, relabels or hides them. Rows come through the record service, so only what the user may see,
within their data scope, is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from app.core.errors import ValidationFailed
from app.core.i18n import LANGUAGE_NAMES
from app.manifest import FieldSpec, PageSpec
from app.manifest.labels import Label, pick_label
from app.plugins.runtime import EntityRef, LoadedPlugin
from app.records.query import DEFAULT_SORT, ListQuery, sortable
from app.records.service import RecordService
from app.web.context import RequestContext
from app.web.records.display import reference_labels
from app.web.records.listing import EMPTY, Column, TableRow, columns, count_text, filter_fields, table_row
from app.web.records.target import Target, actions, record_link_base

DEFAULT_LIMIT = 10


@dataclass
class RelatedList:
    key: str  # entity.field, for ids in the page
    label: str
    entity_label: str
    field: FieldSpec  # the child's reference to this record
    columns: list[Column]
    rows: list[TableRow]
    total_text: str
    more_url: str | None  # the child's list, filtered to this record (when the page filters on it)
    new_url: str | None  # the child's create form with the reference filled in


@dataclass(frozen=True)
class Candidate:
    ref: EntityRef
    field: FieldSpec
    page: PageSpec  # the child's crud page
    page_url: str
    config: dict[str, Any]


def candidates(ctx: RequestContext, target: Target) -> list[Candidate]:
    """Every (entity, reference field) pointing at this page's entity that has a crud page, in the
    order the page config gives (configured first), without the hidden ones."""
    parent = target.ref.name
    config = {(c["entity"], c["field"]): c for c in target.spec.related or ()}
    found: list[Candidate] = []
    for plugin in target.plugins:
        for ref in plugin.entities.values():
            for fspec in ref.spec.fields:
                if fspec.type != "reference" or fspec.entity != parent:
                    continue
                page = _crud_page(plugin, ref.name)
                if page is None:
                    continue
                url = f"/t/{ctx.tenant.slug}/p/{plugin.id}{page.path}"  # type: ignore[union-attr]
                found.append(Candidate(ref, fspec, page, url, config.get((ref.name, fspec.name), {})))
    order = list(config)
    found.sort(key=lambda c: order.index(k) if (k := (c.ref.name, c.field.name)) in config else len(order))
    return [c for c in found if not c.config.get("hidden")]


def _crud_page(plugin: LoadedPlugin, entity: str) -> PageSpec | None:
    return next((p for p in plugin.manifest.pages if p.type == "crud" and p.entity == entity), None)


async def related_lists(ctx: RequestContext, target: Target, record_id: Any) -> list[RelatedList]:
    svc = ctx.records()
    out = []
    for c in candidates(ctx, target):
        if not ctx.can(c.ref.permission("select")):
            continue
        out.append(await _load(ctx, svc, target, c, str(record_id)))
    return out


async def _load(
    ctx: RequestContext, svc: RecordService, target: Target, c: Candidate, record_id: str
) -> RelatedList:
    sort = c.config.get("sort") or DEFAULT_SORT
    if not sortable(c.ref, sort):
        sort = DEFAULT_SORT
    query = ListQuery(
        filters={c.field.name: record_id}, sort=sort, size=c.config.get("limit") or DEFAULT_LIMIT
    )
    try:
        result = await svc.list(c.ref, query)
        rows, total, capped = result.rows, result.total, result.capped
    except ValidationFailed:
        rows, total, capped = [], 0, False
    # The reference back to this record would repeat the same value on every row.
    cols = [col for col in columns(c.ref, c.page) if col.name != c.field.name]
    child_target = Target(target.plugins, target.plugin, c.page, [], c.page_url, c.ref)
    labels = await reference_labels(svc, child_target, [col.spec for col in cols], rows)
    formats = [
        col.formatter(
            labels.get(col.name),
            record_link_base(ctx, child_target, col.spec.entity)
            if col.spec is not None and col.spec.type == "reference"
            else None,
        )
        for col in cols
    ]
    table = [
        table_row(
            row,
            [
                EMPTY if (v := row.get(col.name)) in (None, "") else fmt(v)
                for col, fmt in zip(cols, formats, strict=True)
            ],
            c.page_url,
            False,
            [col.numeric for col in cols],
        )
        for row in rows
    ]
    offered = actions(c.page)
    may_create = "create" in offered and ctx.can(c.ref.permission("insert"))
    permission = offered.get("create", {}).get("permission")
    if permission and not ctx.can(permission):
        may_create = False
    params = urlencode({c.field.name: record_id})
    more = total > len(rows) and _filters_on(c)
    return RelatedList(
        key=f"{c.ref.name}.{c.field.name}",
        label=c.config.get("label") or _default_label(c, target),
        entity_label=c.ref.spec.label,
        field=c.field,
        columns=cols,
        rows=table,
        total_text=count_text(total, capped),
        more_url=f"{c.page_url}?{params}" if more else None,
        new_url=f"{c.page_url}/new?{params}" if may_create else None,
    )


def _filters_on(c: Candidate) -> bool:
    """Whether the child's list page offers a filter on the reference (so a link can carry it)."""
    return any(f.name == c.field.name for f, _ in filter_fields(c.ref, c.page))


def _default_label(c: Candidate, target: Target) -> str:
    """The entity's label, and the field's when the child references this entity more than once."""
    refs = [f for f in c.ref.spec.fields if f.type == "reference" and f.entity == target.ref.name]
    if len(refs) == 1:
        return c.ref.spec.label
    entity, via = c.ref.spec.label, c.field.label
    return Label({lang: f"{pick_label(entity, lang)} ({pick_label(via, lang)})" for lang in LANGUAGE_NAMES})
