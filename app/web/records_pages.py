"""Generated pages for the `[[ui.pages]]` of enabled plugins: crud lists, forms, detail, import/export,
dashboards and (placeholder) custom pages.

Every page lives under `/t/<tenant>/p/<plugin_id><page.path>`; a crud page's sub-pages hang below it:

    GET  <page>                 list (HTMX: only the rows region)      POST <page>            create
    GET  <page>/new             create form
    GET  <page>/<id>            detail + audit history                 POST <page>/<id>       update
    GET  <page>/<id>/edit       edit form                              POST <page>/<id>/delete   soft delete
    GET  <page>/export.csv      CSV of the filtered list               POST <page>/<id>/restore  restore
    GET  <page>/import          CSV upload                             POST <page>/import     preview / confirm
    GET  <page>/lookup          <option>s for a reference picker       POST <page>/bulk-delete

The routes only require a signed-in member (`opt={"auth": True}`); the `db.<entity>.<op>` permission is
checked by the record service, which also scopes every query to the request's tenant.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.exceptions import PermissionDeniedException
from litestar.response import Redirect, Stream, Template
from markupsafe import Markup, escape
from sqlalchemy import select

from app import workflow
from app.db.models import AuditEntry
from app.errors import Conflict, NotFound, ValidationFailed
from app.events import PENDING_KEY
from app.plugins import runtime
from app.plugins.manifest import BUILTIN_ACTIONS, FieldSpec, PageSpec, default_label
from app.plugins.runtime import EntityRef, LoadedPlugin
from app.records.service import SORTABLE_STANDARD, STANDARD_FILTERS, ListQuery, RecordService, StaleVersion
from app.records.values import TRUE, FieldError, default_for, display, parse, to_input, to_json
from app.web import guest_pages
from app.web.context import RequestContext
from app.web.render import PAGE_SIZES, Pager, page, redirect

PREFIX = "/t/{tenant:str}/p/{plugin_id:str}"
RULE = {"auth": True}  # db.<entity>.<op> is checked by the record service
DEFAULT_SORT = "-created_at"
DERIVED_COLUMNS = 7
LOOKUP_LIMIT = 20
PICKER_PRELOAD = 50
FILTER_OPTIONS_LIMIT = 200
MAX_BULK = 500
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 5_000
PREVIEW_ROWS = 200
STANDARD_COLUMNS = {"id", "tenant_id", "created_at", "updated_at", "created_by", "updated_by", "deleted_at", "version"}
STANDARD_LABELS = {"created_at": "Created", "updated_at": "Updated", "id": "Id", "version": "Version"}
BADGE_COLORS = {"green", "grey", "gray", "blue", "red", "orange", "purple", "yellow"}
# Which database operation each built-in action needs.
ACTION_OPS = {"create": "insert", "edit": "update", "delete": "delete", "restore": "delete",
              "bulk_delete": "delete", "import": "insert", "export": "select"}
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")
# "+1 555 0100" or "-12.5" cannot run as a formula: no guard apostrophe for plain numbers/phones.
PHONE_LIKE = re.compile(r"^[+-][0-9][0-9 ().-]*$")


# --- resolving a URL to a plugin page ------------------------------------------------------------

@dataclass
class Target:
    plugins: list[LoadedPlugin]
    plugin: LoadedPlugin
    spec: PageSpec
    rest: list[str]
    url: str  # this page's URL, /t/<slug>/p/<plugin><path>
    entity: EntityRef | None = None

    @property
    def ref(self) -> EntityRef:
        assert self.entity is not None
        return self.entity


async def _resolve(ctx: RequestContext, plugin_id: str, path: str) -> Target:
    plugins = await runtime.enabled_for(ctx.db, ctx.tenant_id)
    plugin = next((p for p in plugins if p.id == plugin_id), None)
    if plugin is None:
        raise NotFound(f"Plugin {plugin_id!r} is not enabled in this tenant")
    wanted = "/" + path.strip("/")
    best: PageSpec | None = None
    for spec in plugin.manifest.pages:
        if (wanted == spec.path or wanted.startswith(spec.path + "/")) and (best is None or len(spec.path) > len(best.path)):
            best = spec
    if best is None:
        raise NotFound(f"{plugin.manifest.plugin.name} has no page {wanted}")
    rest = [s for s in wanted[len(best.path):].split("/") if s]
    target = Target(plugins, plugin, best, rest, f"/t/{ctx.tenant.slug}/p/{plugin.id}{best.path}")  # type: ignore[union-attr]
    if best.type == "crud":
        target.entity = plugin.entities.get(best.entity or "")
        if target.entity is None:
            raise NotFound(f"Page {best.path} names an unknown entity")
    return target


def _page_url_for(ctx: RequestContext, plugins: list[LoadedPlugin], entity: str) -> str | None:
    """The crud page listing `entity` (for links from reference cells and dashboard cards)."""
    for plugin in plugins:
        for spec in plugin.manifest.pages:
            if spec.type == "crud" and spec.entity == entity:
                return f"/t/{ctx.tenant.slug}/p/{plugin.id}{spec.path}"  # type: ignore[union-attr]
    return None


# --- actions -------------------------------------------------------------------------------------

def _actions(spec: PageSpec) -> dict[str, dict[str, Any]]:
    """Built-in actions the page offers (all of them when the manifest does not say)."""
    if spec.actions is None:
        return {name: {"name": name, "label": default_label(name), "permission": None} for name in BUILTIN_ACTIONS}
    return {a["name"]: a for a in spec.actions if a["name"] in BUILTIN_ACTIONS}


def _allowed(ctx: RequestContext, target: Target) -> dict[str, bool]:
    """Which actions to show: offered by the page and permitted to this user."""
    offered = _actions(target.spec)
    out = {}
    for name, op in ACTION_OPS.items():
        action = offered.get(name)
        out[name] = bool(action) and ctx.can(target.ref.permission(op)) and (
            not action["permission"] or ctx.can(action["permission"]))  # type: ignore[index]
    return out


def _need_action(ctx: RequestContext, target: Target, name: str) -> None:
    """Refuse an action the page does not offer (404) or whose extra permission is missing (403).
    The db.<entity>.<op> permission itself is checked by the record service."""
    action = _actions(target.spec).get(name)
    if action is None:
        raise NotFound(f"The page {target.spec.name} has no {name.replace('_', ' ')} action")
    if action["permission"] and not ctx.can(action["permission"]):
        raise PermissionDeniedException(f"You need the permission {action['permission']} in this tenant")


# --- columns, cells and filters ------------------------------------------------------------------

@dataclass
class Column:
    name: str
    label: str
    type: str | None
    spec: FieldSpec | None
    sortable: bool
    options: dict[str, tuple[str, str | None]] = field(default_factory=dict)


@dataclass
class Cell:
    text: str
    href: str | None = None
    badge: str | None = None  # a colour name for status badges
    muted: bool = False


def _field(ref: EntityRef, name: str) -> FieldSpec | None:
    return ref.spec.field(name) if ref.spec.has_field(name) else None


def _columns(ref: EntityRef, spec: PageSpec) -> list[Column]:
    if spec.columns is None:
        fields = [f for f in ref.spec.fields if f.type not in {"text", "json"}][:DERIVED_COLUMNS]
        return [Column(f.name, f.label, None, f, f.type != "reference") for f in fields]
    out = []
    for c in spec.columns:
        if c.get("hidden"):
            continue
        fspec = _field(ref, c["field"])
        # Sorting by a reference would sort by the target's id, which means nothing to people.
        sortable_kind = c["field"] in SORTABLE_STANDARD or (
            fspec is not None and fspec.type not in {"json", "text", "reference"})
        options = {o["value"]: (o["label"] or o["value"], o.get("color")) for o in c.get("options") or ()}
        out.append(Column(c["field"], c["label"] or STANDARD_LABELS.get(c["field"], c["field"]), c.get("type"), fspec,
                          bool(c.get("sortable", True)) and sortable_kind, options))
    return out


async def _reference_labels(svc: RecordService, target: Target, specs: Iterable[FieldSpec | None],
                            rows: list[dict[str, Any]]) -> dict[str, dict[Any, str]]:
    """Display names of referenced rows, one query per reference field."""
    out: dict[str, dict[Any, str]] = {}
    for spec in specs:
        if spec is None or spec.type != "reference" or spec.name in out:
            continue
        ref = runtime.find_entity(target.plugins, spec.entity or "")
        out[spec.name] = await svc.labels(ref, [r.get(spec.name) for r in rows]) if ref is not None else {}
    return out


def _value_text(spec: FieldSpec | None, value: Any, labels: Mapping[Any, str] | None = None) -> str:
    if spec is not None and spec.type == "reference" and value is not None:
        return (labels or {}).get(value) or str(value)
    return display(spec, value)


def _cell(ctx: RequestContext, target: Target, col: Column, row: Mapping[str, Any],
          labels: dict[str, dict[Any, str]]) -> Cell:
    value = row.get(col.name)
    if value is None or value == "":
        return Cell("—", muted=True)
    spec = col.spec
    if spec is not None and spec.type == "reference":
        href = None
        url = _page_url_for(ctx, target.plugins, spec.entity or "")
        if url and ctx.can(f"db.{spec.entity}.select"):
            href = f"{url}/{value}"
        return Cell(_value_text(spec, value, labels.get(col.name)), href=href)
    if col.type == "status" or (col.type == "select" and col.options):
        label, color = col.options.get(str(value), (display(spec, value), None))
        return Cell(label, badge=color if color in BADGE_COLORS else "default")
    if col.type == "date" and isinstance(value, dt.datetime):
        return Cell(value.astimezone(dt.UTC).strftime("%Y-%m-%d"))
    if col.type == "link" and isinstance(value, str) and re.match(r"^https?://", value, re.I):
        return Cell(value, href=value)
    return Cell(display(spec, value))


@dataclass(frozen=True)
class TableRow:
    row: Mapping[str, Any]
    cells: list[Cell]
    url: str  # the record's page
    html: Markup  # the cells' <td>s, escaped here rather than by the template (the list's hot loop)


def _table_row(row: Mapping[str, Any], cells: list[Cell], page_url: str, deleted: bool) -> TableRow:
    url = f"{page_url}/{row['id']}"
    out = []
    for i, cell in enumerate(cells):
        text = escape(cell.text)
        if i == 0 and not deleted:
            inner = f'<a href="{escape(url)}">{text}</a>'
        elif cell.badge:
            inner = f'<span class="badge c-{escape(cell.badge)}">{text}</span>'
        elif cell.href:
            inner = f'<a href="{escape(cell.href)}">{text}</a>'
        elif cell.muted:
            inner = f'<span class="muted">{text}</span>'
        else:
            inner = str(text)
        out.append(f"<td>{inner}</td>")
    return TableRow(row, cells, url, Markup("\n      ".join(out)))


@dataclass
class Filter:
    name: str
    label: str
    kind: str  # select | range | text
    input_type: str = "text"
    options: list[tuple[str, str]] = field(default_factory=list)
    value: str = ""
    value_from: str = ""
    value_to: str = ""
    step: str | None = None


RANGE_TYPES = {"date": "date", "datetime": "datetime-local", "integer": "number", "decimal": "number"}


def _filter_specs(ref: EntityRef, spec: PageSpec) -> list[tuple[FieldSpec, str]]:
    if spec.filters is None:
        return [(f, f.label) for f in ref.spec.fields if f.type in {"select", "boolean", "reference", "date", "datetime"}]
    out = []
    for item in spec.filters:
        fspec = _field(ref, item["field"]) or STANDARD_FILTERS.get(item["field"])
        if fspec is not None and fspec.type not in {"json", "text"}:
            out.append((fspec, item["label"] or fspec.label))
    return out


def _filter_values(target: Target, params: Mapping[str, str]) -> dict[str, str]:
    """The service's filter dict from the query string: only the page's filters, bounded."""
    active: dict[str, str] = {}
    for fspec, _ in _filter_specs(target.ref, target.spec):
        keys = [f"{fspec.name}__from", f"{fspec.name}__to"] if fspec.type in RANGE_TYPES else [fspec.name]
        for key in keys:
            value = (params.get(key) or "").strip()[:200]
            if value:
                active[key] = value
    return active


async def _filter_widgets(svc: RecordService, ctx: RequestContext, target: Target,
                          active: Mapping[str, str]) -> list[Filter]:
    widgets: list[Filter] = []
    for fspec, label in _filter_specs(target.ref, target.spec):
        name = fspec.name
        if fspec.type in RANGE_TYPES:
            w = Filter(name, label, "range", RANGE_TYPES[fspec.type], value_from=active.get(f"{name}__from", ""),
                       value_to=active.get(f"{name}__to", ""))
            if fspec.type in {"integer", "decimal"}:
                w.step = _step(fspec)
        else:
            w = Filter(name, label, "text", value=active.get(name, ""))
            if fspec.type == "select":
                w.kind, w.options = "select", [(o.value, o.label) for o in fspec.options]
            elif fspec.type == "boolean":
                w.kind, w.options = "select", [("true", "Yes"), ("false", "No")]
            elif fspec.type == "reference":
                ref = runtime.find_entity(target.plugins, fspec.entity or "")
                if ref is not None and ctx.can(ref.permission("select")):
                    w.kind = "select"
                    w.options = [(str(i), label) for i, label in await svc.search_labels(ref, "", FILTER_OPTIONS_LIMIT)]
                    if w.value and w.value not in {v for v, _ in w.options}:
                        known = await svc.labels(ref, [_uuid(w.value)])
                        w.options.insert(0, (w.value, next(iter(known.values()), w.value)))
        widgets.append(w)
    return widgets


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _step(spec: FieldSpec) -> str:
    if spec.type == "integer":
        return "1"
    scale = spec.scale if spec.scale is not None else 2
    return "1" if scale == 0 else "0." + "0" * (scale - 1) + "1"


def _sortable(ref: EntityRef, sort: str) -> bool:
    name = sort.lstrip("-")
    return name in SORTABLE_STANDARD or (ref.spec.has_field(name) and ref.spec.field(name).type not in {"json", "text"})


def _list_query(request: Request, target: Target, filters: dict[str, str], p: Pager) -> ListQuery:
    params = request.query_params
    sort = (params.get("sort") or DEFAULT_SORT)[:80]
    if not _sortable(target.ref, sort):
        sort = DEFAULT_SORT
    deleted = params.get("deleted") in {"1", "true", "on"}
    p.q = p.q.replace("\x00", "")  # PostgreSQL text cannot hold NUL; nothing can match it anyway
    return ListQuery(q=p.q, filters=filters, sort=sort, page=p.page, size=p.size, deleted=deleted)


# --- rendering helpers ---------------------------------------------------------------------------

def _common(ctx: RequestContext, target: Target) -> dict[str, Any]:
    return {"target": target, "spec": target.spec, "entity": target.entity, "page_url": target.url,
            "plugin": target.plugin, "allowed": _allowed(ctx, target) if target.entity else {}}


def _atomic(ctx: RequestContext) -> Any:
    """A savepoint around one page action: when the action fails (a unique clash on PostgreSQL aborts
    the transaction), rolling back to it keeps the session usable for re-rendering the form."""
    return ctx.db.begin_nested()


# --- list ----------------------------------------------------------------------------------------

async def _list(request: Request, ctx: RequestContext, target: Target) -> Template:
    svc = ctx.records()
    ref = target.ref
    svc.require(ref, "select")
    p = Pager(request)
    active = _filter_values(target, request.query_params)
    widgets = await _filter_widgets(svc, ctx, target, active)
    query = _list_query(request, target, active, p)
    allowed = _allowed(ctx, target)
    if query.deleted and not allowed["restore"]:
        query.deleted = False
    filter_errors: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    total, capped = 0, False
    try:
        result = await svc.list(ref, query)
        rows, total, capped = result.rows, result.total, result.capped
    except ValidationFailed as exc:
        filter_errors = exc.errors
    p.total = total
    p.extra = {**active, "sort": "" if query.sort == DEFAULT_SORT else query.sort, "deleted": "1" if query.deleted else ""}
    columns = _columns(ref, target.spec)
    labels = await _reference_labels(svc, target, [c.spec for c in columns], rows)
    table = [_table_row(row, [_cell(ctx, target, c, row, labels) for c in columns], target.url, query.deleted)
             for row in rows]
    has_next = p.page < p.pages or (capped and len(rows) == p.size)
    export_params = {k: v for k, v in {"q": p.q, **p.extra}.items() if v}
    return await page(
        request, ctx, "records/list.html", fragment="records/_rows.html", **_common(ctx, target),
        p=p, rows=table, columns=columns, filters=widgets, filter_errors=filter_errors, query=query, total=total,
        capped=capped, total_text=_count_text(total, capped), filters_active=bool(active), has_next=has_next,
        sizes=PAGE_SIZES, default_sort=DEFAULT_SORT,
        export_url=target.url + "/export.csv" + ("?" + urlencode(export_params) if export_params else ""))


def _count_text(total: int, capped: bool) -> str:
    return f"{total:,}+" if capped else f"{total:,}"


# --- detail --------------------------------------------------------------------------------------

async def _detail(request: Request, ctx: RequestContext, target: Target, record_id: str) -> Template:
    svc = ctx.records()
    ref = target.ref
    row = await svc.get(ref, record_id)
    labels = await _reference_labels(svc, target, ref.spec.fields, [row])
    fields = []
    for fspec in ref.spec.fields:
        value = row.get(fspec.name)
        href = None
        if fspec.type == "reference" and value is not None:
            url = _page_url_for(ctx, target.plugins, fspec.entity or "")
            if url and ctx.can(f"db.{fspec.entity}.select"):
                href = f"{url}/{value}"
        text = _value_text(fspec, value, labels.get(fspec.name))
        fields.append((fspec, text, href, fspec.type in {"json", "text"}))
    history = (await ctx.db.scalars(
        select(AuditEntry).where(AuditEntry.tenant_id == ctx.tenant_id,
                                 AuditEntry.target_type == f"{ref.plugin_id}.{ref.name}",
                                 AuditEntry.target_id == str(row["id"]))
        .order_by(AuditEntry.created_at.desc()).limit(100))).all()
    history_rows = [(a, _changes(ref, a)) for a in history]
    await _label_history(svc, target, history_rows)
    meta = [("Created", display(None, row.get("created_at"))), ("Last changed", display(None, row.get("updated_at"))),
            ("Version", str(row.get("version"))), ("Id", str(row["id"]))]
    approvals = await workflow.instances_for_record(ctx.db, ctx.tenant_id, ref.plugin_id, ref.name, str(row["id"]))
    process = await workflow.process_for(ctx.db, ctx.tenant_id, ref.plugin_id, ref.name)
    busy = any(i.state in workflow.ACTIVE_STATES for i, _ in approvals)
    can_submit = process is not None and not busy and ctx.can(ref.permission("update"))
    return await page(request, ctx, "records/detail.html", **_common(ctx, target), row=row, fields=fields, meta=meta,
                      history=history_rows, title=_title(ref, row, labels), approvals=approvals, can_submit=can_submit)


async def _submit(ctx: RequestContext, target: Target, record_id: str) -> Redirect:
    """Submit for approval (the record page's button): the user must be able to edit the record."""
    from app.web.workflow_pages import submit_record

    instance = await submit_record(ctx, target.ref, record_id)
    text = {"stuck": f"Submitted, but the approval is stuck: {instance.error}",
            "approved": "Submitted: no step applied, so it is approved"}.get(instance.state, "Submitted for approval")
    return redirect(f"{target.url}/{instance.record_id}", text, "warning" if instance.state == "stuck" else "success")


def _title(ref: EntityRef, row: Mapping[str, Any], labels: dict[str, dict[Any, str]] | None = None) -> str:
    value = row.get(ref.spec.display_field)
    if value in (None, ""):
        return ref.spec.label
    return f"{ref.spec.label} {(labels or {}).get(ref.spec.display_field, {}).get(value, value)}"


@dataclass
class Change:
    label: str
    spec: FieldSpec | None
    before: Any
    after: Any
    before_text: str = ""
    after_text: str = ""


def _changes(ref: EntityRef, entry: AuditEntry) -> list[Change]:
    """The changed fields of an audit row (values still raw JSON; see _label_history)."""
    if entry.action == "record.create":
        return []
    before, after = entry.before or {}, entry.after or {}
    out = []
    for key in [*after, *(k for k in before if k not in after)]:
        if key in {"version", "updated_at", "updated_by"}:
            continue
        spec = _field(ref, key)
        out.append(Change(spec.label if spec else STANDARD_LABELS.get(key, key), spec, before.get(key), after.get(key)))
    return out


async def _label_history(svc: RecordService, target: Target, history: list[tuple[AuditEntry, list[Change]]]) -> None:
    """Audit values for people: option labels, Yes/No, names of referenced rows (one query per field)."""
    wanted: dict[str, set[uuid.UUID]] = {}
    specs: dict[str, FieldSpec] = {}
    for _, changes in history:
        for ch in changes:
            if ch.spec is not None and ch.spec.type == "reference":
                specs[ch.spec.name] = ch.spec
                wanted.setdefault(ch.spec.name, set()).update(
                    u for v in (ch.before, ch.after) if isinstance(v, str) and (u := _uuid(v)) is not None)
    labels: dict[str, dict[Any, str]] = {}
    for name, ids in wanted.items():
        ref = runtime.find_entity(target.plugins, specs[name].entity or "")
        labels[name] = await svc.labels(ref, ids) if ref is not None else {}
    for _, changes in history:
        for ch in changes:
            ch.before_text = _audit_text(ch.spec, ch.before, labels)
            ch.after_text = _audit_text(ch.spec, ch.after, labels)


def _audit_text(spec: FieldSpec | None, value: Any, labels: dict[str, dict[Any, str]]) -> str:
    if value is None or value == "":
        return "—"
    if spec is not None:
        if spec.type == "reference" and isinstance(value, str):
            return labels.get(spec.name, {}).get(_uuid(value), value)
        if spec.type in {"select", "boolean"}:
            return display(spec, value)
        if spec.type == "json":
            return display(spec, value)
    return str(value)[:200]


# --- forms ---------------------------------------------------------------------------------------

@dataclass
class FormField:
    spec: FieldSpec
    label: str
    help: str | None
    readonly: bool
    input: str  # text | textarea | number | checkbox | date | datetime-local | select | reference | json
    step: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    lookup: bool = False  # reference picker with search-as-you-type


@dataclass
class FormGroup:
    title: str | None
    fields: list[FormField]


INPUTS = {"string": "text", "uuid": "text", "text": "textarea", "json": "json", "integer": "number",
          "decimal": "number", "boolean": "checkbox", "date": "date", "datetime": "datetime-local",
          "select": "select", "reference": "reference"}


def _form_layout(ref: EntityRef, spec: PageSpec) -> list[FormGroup]:
    def make(item: Mapping[str, Any] | FieldSpec) -> FormField:
        if isinstance(item, FieldSpec):
            fspec, label, help_text, readonly = item, item.label, item.help, False
        else:
            fspec = ref.spec.field(item["field"])
            label, help_text, readonly = item["label"] or fspec.label, item.get("help"), bool(item.get("readonly"))
        ff = FormField(fspec, label, help_text, readonly, INPUTS.get(fspec.type, "text"))
        if fspec.type in {"integer", "decimal"}:
            ff.step = _step(fspec)
        if fspec.type == "select":
            ff.options = [(o.value, o.label) for o in fspec.options]
        return ff

    if spec.form is None:
        return [FormGroup(None, [make(f) for f in ref.spec.fields])]
    groups = [FormGroup(g.get("title"), [make(i) for i in g["fields"]]) for g in spec.form.get("groups") or ()]
    loose = [make(i) for i in spec.form.get("fields") or ()]
    if loose:
        groups.append(FormGroup(None, loose))
    return [g for g in groups if g.fields]


def _form_fields(groups: list[FormGroup]) -> list[FormField]:
    return [f for g in groups for f in g.fields]


async def _prepare_pickers(svc: RecordService, ctx: RequestContext, target: Target, groups: list[FormGroup],
                           values: Mapping[str, str]) -> None:
    """Options of the reference pickers: the current choice plus the first few target rows."""
    for ff in _form_fields(groups):
        if ff.spec.type != "reference":
            continue
        ref = runtime.find_entity(target.plugins, ff.spec.entity or "")
        if ref is None or not ctx.can(ref.permission("select")):
            ff.input = "text"  # no way to list the targets: type the id
            continue
        ff.lookup = True
        options = [(str(i), label) for i, label in await svc.search_labels(ref, "", PICKER_PRELOAD)]
        current = values.get(ff.spec.name) or ""
        if current and current not in {v for v, _ in options}:
            known = await svc.labels(ref, [_uuid(current)])
            options.insert(0, (current, next(iter(known.values()), current)))
        ff.options = options


def _values_from_form(groups: list[FormGroup], form: FormMultiDict) -> tuple[dict[str, str], dict[str, str]]:
    """(data for the service, raw values to show again) from a submitted record form."""
    data: dict[str, str] = {}
    for ff in _form_fields(groups):
        if ff.readonly:
            continue
        name = ff.spec.name
        if ff.spec.type == "boolean":
            data[name] = "true" if any(str(v).lower() in TRUE for v in form.getall(name, [])) else "false"
            continue
        if name not in form:
            continue
        raw = form.get(name)
        data[name] = raw[:100_000] if isinstance(raw, str) else ""
    return data, dict(data)


async def _form_page(request: Request, ctx: RequestContext, target: Target, *, row: dict[str, Any] | None,
                     values: dict[str, str], errors: dict[str, str] | None = None, version: Any = None,
                     status_code: int = 200, form_error: str | None = None) -> Template:
    svc = ctx.records()
    groups = _form_layout(target.ref, target.spec)
    await _prepare_pickers(svc, ctx, target, groups, values)
    errors = errors or {}
    known = {ff.spec.name for ff in _form_fields(groups)}
    stray = {k: v for k, v in errors.items() if k not in known}
    readonly = {}
    if row is not None:
        labels = await _reference_labels(svc, target, [ff.spec for ff in _form_fields(groups) if ff.readonly], [row])
        readonly = {ff.spec.name: _value_text(ff.spec, row.get(ff.spec.name), labels.get(ff.spec.name))
                    for ff in _form_fields(groups) if ff.readonly}
    # Posting to .../new keeps a refused create on the form's own URL (a reload shows the form).
    action = f"{target.url}/new" if row is None else f"{target.url}/{row['id']}"
    return await page(request, ctx, "records/form.html", status_code=status_code, **_common(ctx, target),
                      groups=groups, values=values, errors=errors, stray=stray, row=row, version=version,
                      action=action, readonly=readonly, form_error=form_error,
                      lookup_url=f"{target.url}/lookup",
                      title=(f"New {target.ref.spec.label}" if row is None else f"Edit {_title(target.ref, row)}"))


async def _new(request: Request, ctx: RequestContext, target: Target) -> Template:
    _need_action(ctx, target, "create")
    ctx.records().require(target.ref, "insert")
    values = {f.name: to_input(f, default_for(f)) for f in target.ref.spec.fields}
    return await _form_page(request, ctx, target, row=None, values=values)


async def _create(request: Request, ctx: RequestContext, target: Target) -> Response[Any]:
    _need_action(ctx, target, "create")
    svc = ctx.records()
    svc.require(target.ref, "insert")
    data, values = _values_from_form(_form_layout(target.ref, target.spec), await request.form())
    try:
        # No savepoint on the hot path: validation fails before any write, and a unique clash
        # (which aborts a PostgreSQL transaction) rolls the whole request back before re-rendering.
        row = await svc.insert(target.ref, data)
    except ValidationFailed as exc:
        return await _form_page(request, ctx, target, row=None, values=values, errors=exc.errors, status_code=422)
    except Conflict as exc:
        await ctx.db.rollback()
        return await _form_page(request, ctx, target, row=None, values=values, form_error=exc.detail, status_code=409)
    return redirect(f"{target.url}/{row['id']}", f"{_title(target.ref, row)} created")


async def _edit(request: Request, ctx: RequestContext, target: Target, record_id: str) -> Template:
    _need_action(ctx, target, "edit")
    svc = ctx.records()
    svc.require(target.ref, "update")
    row = await svc.get(target.ref, record_id)
    values = {f.name: to_input(f, row.get(f.name)) for f in target.ref.spec.fields}
    return await _form_page(request, ctx, target, row=row, values=values, version=row["version"])


async def _update(request: Request, ctx: RequestContext, target: Target, record_id: str) -> Response[Any]:
    _need_action(ctx, target, "edit")
    svc = ctx.records()
    svc.require(target.ref, "update")
    form = await request.form()
    groups = _form_layout(target.ref, target.spec)
    data, values = _values_from_form(groups, form)
    raw_version = form.get("version")
    version = int(raw_version) if isinstance(raw_version, str) and re.fullmatch(r"[0-9]{1,18}", raw_version) else None
    try:
        async with _atomic(ctx):
            row = await svc.update(target.ref, record_id, data, version)
    except StaleVersion as exc:
        return await _conflict(request, ctx, target, groups, exc.current, values)
    except ValidationFailed as exc:
        current = await svc.get(target.ref, record_id)
        return await _form_page(request, ctx, target, row=current, values=values, errors=exc.errors, version=version,
                                status_code=422)
    except Conflict as exc:
        current = await svc.get(target.ref, record_id)
        return await _form_page(request, ctx, target, row=current, values=values, version=version,
                                form_error=exc.detail, status_code=409)
    return redirect(f"{target.url}/{row['id']}", f"{_title(target.ref, row)} saved")


async def _conflict(request: Request, ctx: RequestContext, target: Target, groups: list[FormGroup],
                    current: dict[str, Any], mine: dict[str, str]) -> Template:
    """Someone saved first: show their values next to ours; the user decides, nothing is overwritten."""
    svc = ctx.records()
    fields = [ff for ff in _form_fields(groups) if not ff.readonly]
    labels = await _reference_labels(svc, target, [ff.spec for ff in fields], [current])
    mine_parsed: dict[str, Any] = {}
    for ff in fields:
        if ff.spec.name in mine:
            try:
                mine_parsed[ff.spec.name] = parse(ff.spec, mine[ff.spec.name])
            except FieldError:
                mine_parsed[ff.spec.name] = mine[ff.spec.name]
    ref_ids = {ff.spec.name: [v] for ff in fields if ff.spec.type == "reference"
               and isinstance(v := mine_parsed.get(ff.spec.name), uuid.UUID)}
    mine_labels = await _reference_labels(svc, target, [ff.spec for ff in fields if ff.spec.name in ref_ids],
                                          [{k: v[0] for k, v in ref_ids.items()}]) if ref_ids else {}
    rows = []
    for ff in fields:
        name = ff.spec.name
        theirs = current.get(name)
        if name not in mine:
            continue
        yours = mine_parsed.get(name)
        rows.append({"label": ff.label,
                     "theirs": _value_text(ff.spec, theirs, labels.get(name)),
                     "yours": _value_text(ff.spec, yours, mine_labels.get(name)),
                     "differs": to_json(theirs) != to_json(yours)})
    return await page(request, ctx, "records/conflict.html", status_code=409, **_common(ctx, target),
                      row=current, rows=rows, mine=mine, title=_title(target.ref, current),
                      action=f"{target.url}/{current['id']}")


# --- delete, restore, bulk delete ----------------------------------------------------------------

async def _delete(ctx: RequestContext, target: Target, record_id: str) -> Redirect:
    _need_action(ctx, target, "delete")
    async with _atomic(ctx):
        row = await ctx.records().delete(target.ref, record_id)
    return redirect(target.url, f"{_title(target.ref, row)} deleted")


async def _restore(ctx: RequestContext, target: Target, record_id: str) -> Redirect:
    _need_action(ctx, target, "restore")
    try:
        async with _atomic(ctx):
            row = await ctx.records().restore(target.ref, record_id)
    except Conflict as exc:  # a live record took its unique value meanwhile
        return redirect(f"{target.url}?deleted=1", exc.detail, "error")
    return redirect(f"{target.url}?deleted=1", f"{_title(target.ref, row)} restored")


async def _bulk_delete(request: Request, ctx: RequestContext, target: Target) -> Redirect:
    _need_action(ctx, target, "bulk_delete")
    form = await request.form()
    ids = [str(v) for v in form.getall("ids", []) if isinstance(v, str)][:MAX_BULK]
    if not ids:
        return redirect(target.url, "Nothing was selected", "info")
    async with _atomic(ctx):  # all or nothing: one foreign or unknown id refuses the whole action
        count = await ctx.records().bulk_delete(target.ref, dict.fromkeys(ids))
    noun = target.ref.spec.label if count == 1 else f"{target.ref.spec.label} records"
    return redirect(target.url, f"Deleted {count} {noun}")


# --- CSV export ----------------------------------------------------------------------------------

def _csv_cell(spec: FieldSpec | None, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = to_input(spec, value) if spec is not None and spec.type == "json" else str(to_json(value))
    if (spec is not None and spec.type in {"string", "text", "select", "json"} and text.startswith(CSV_FORMULA)
            and not PHONE_LIKE.match(text)):
        text = "'" + text  # keep spreadsheets from running it as a formula; import strips it again
    return text


async def _export(request: Request, ctx: RequestContext, target: Target) -> Stream:
    _need_action(ctx, target, "export")
    svc = ctx.records()
    ref = target.ref
    p = Pager(request)
    query = _list_query(request, target, _filter_values(target, request.query_params), p)
    if query.deleted and not _allowed(ctx, target)["restore"]:
        query.deleted = False
    await svc.list(ref, ListQuery(q=query.q, filters=query.filters, sort=query.sort, size=1, deleted=query.deleted))
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
                writer.writerow([_csv_cell(s, row.get(h)) for h, s in zip(header, specs, strict=True)])
                n += 1
                if n % 200 == 0:
                    yield flush()
        yield flush()

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    filename = f"{ref.name}-{stamp}.csv"
    return Stream(lines(), media_type="text/csv; charset=utf-8",
                  headers={"content-disposition": f'attachment; filename="{filename}"', "cache-control": "no-store"})


# --- CSV import ----------------------------------------------------------------------------------

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


def _read_csv(text: str, ref: EntityRef) -> tuple[list[str], list[dict[str, str]], list[str], list[str]]:
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
    ignored = [h for h in header if h in STANDARD_COLUMNS]
    unknown = [h for h in header if h and h not in STANDARD_COLUMNS and not ref.spec.has_field(h)]
    rows: list[dict[str, str]] = []
    for line in reader:
        if not any(cell.strip() for cell in line):
            continue
        if len(rows) >= MAX_IMPORT_ROWS:
            raise ValidationFailed({"file": f"Import at most {MAX_IMPORT_ROWS:,} rows at a time."})
        data: dict[str, str] = {}
        for i, name in enumerate(header):
            if not name or name in STANDARD_COLUMNS:
                continue
            cell = line[i] if i < len(line) else ""
            if len(cell) > 1 and cell[0] == "'" and cell[1] in CSV_FORMULA:
                cell = cell[1:]  # undo the export's formula guard
            if cell != "":  # an empty cell means "no value": the field's default applies
                data[name] = cell
        rows.append(data)
    return header, rows, ignored, unknown


async def _csv_text(form: FormMultiDict) -> str:
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


async def _validate_import(svc: RecordService, ctx: RequestContext, ref: EntityRef, text: str) -> ImportPreview:
    header, rows, ignored, unknown = _read_csv(text, ref)
    errors: dict[int, dict[str, str]] = {}
    if rows:
        # Run the real import inside a savepoint and roll it back: the same checks (types, required,
        # unique — also between rows of the file — and references) without writing anything.
        async with ctx.db.begin_nested() as savepoint:
            _, errors = await svc.import_rows(ref, rows)
            if savepoint.is_active:
                await savepoint.rollback()
        ctx.db.sync_session.info.pop(PENDING_KEY, None)  # no events for rows that were never kept
    columns = [h for h in header if h and h not in STANDARD_COLUMNS]
    shown = [(n, rows[n - 1], errors.get(n, {})) for n in range(1, len(rows) + 1)]
    # Rows with errors first (all of them, up to the preview size), then the clean ones.
    shown.sort(key=lambda r: (not r[2], r[0]))
    problem = "The file has no data rows." if not rows else None
    return ImportPreview(columns, ignored, unknown, shown[:PREVIEW_ROWS], len(rows), len(errors), text, problem)


async def _import_page(request: Request, ctx: RequestContext, target: Target, *, preview: ImportPreview | None = None,
                       errors: dict[str, str] | None = None, status_code: int = 200) -> Template:
    return await page(request, ctx, "records/import.html", status_code=status_code, **_common(ctx, target),
                      preview=preview, errors=errors or {}, field_labels={f.name: f.label for f in target.ref.spec.fields},
                      title=f"Import {target.spec.name}")


async def _import_form(request: Request, ctx: RequestContext, target: Target) -> Template:
    _need_action(ctx, target, "import")
    ctx.records().require(target.ref, "insert")
    return await _import_page(request, ctx, target)


async def _import_post(request: Request, ctx: RequestContext, target: Target) -> Response[Any]:
    _need_action(ctx, target, "import")
    svc = ctx.records()
    ref = target.ref
    svc.require(ref, "insert")
    form = await request.form()
    try:
        text = await _csv_text(form)
        if form.get("confirm") != "1":
            preview = await _validate_import(svc, ctx, ref, text)
            return await _import_page(request, ctx, target, preview=preview)
        _, rows, _, _ = _read_csv(text, ref)
        if not rows:
            raise ValidationFailed({"file": "The file has no data rows."})
        async with _atomic(ctx):
            inserted, row_errors = await svc.import_rows(ref, rows)
    except ValidationFailed as exc:
        return await _import_page(request, ctx, target, errors=exc.errors, status_code=422)
    if row_errors:  # changed since the preview: nothing was written; show why
        preview = await _validate_import(svc, ctx, ref, text)
        return await _import_page(request, ctx, target, preview=preview, status_code=422)
    noun = ref.spec.label if inserted == 1 else f"{ref.spec.label} records"
    return redirect(target.url, f"Imported {inserted} {noun}")


# --- reference lookup ----------------------------------------------------------------------------

async def _lookup(request: Request, ctx: RequestContext, target: Target) -> Template:
    params = request.query_params
    name = params.get("field") or ""
    fspec = _field(target.ref, name)
    wanted = params.get("entity")
    if fspec is None or fspec.type != "reference" or (wanted and wanted != fspec.entity):
        raise NotFound("No such reference field on this page")
    ref = runtime.find_entity(target.plugins, fspec.entity or "")
    if ref is None:
        raise NotFound(f"{fspec.entity} is not available in this tenant")
    svc = ctx.records()
    q = (params.get("q") or params.get("_q") or "").replace("\x00", "").strip()[:200]
    found = await svc.search_labels(ref, q, LOOKUP_LIMIT)
    options = [(str(i), label) for i, label in found]
    selected = params.get(name) or ""
    if q and options:
        selected = options[0][0]  # typing means choosing: preselect the best match (the old one stays listed)
    previous = params.get(name) or ""
    if previous and previous not in {v for v, _ in options} and _uuid(previous):
        known = await svc.labels(ref, [_uuid(previous)])
        if known:
            options.append((previous, next(iter(known.values()))))
    return Template(template_name="records/_options.html",
                    context={"options": options, "selected": selected, "required": fspec.required,
                             "empty": not found})


# --- dashboard and custom pages ------------------------------------------------------------------

async def _dashboard(request: Request, ctx: RequestContext, target: Target) -> Template:
    svc = ctx.records()
    cards = []
    for ref in target.plugin.entities.values():
        if not ctx.can(ref.permission("select")):
            continue
        result = await svc.list(ref, ListQuery(size=1))
        cards.append({"label": ref.spec.label, "name": ref.name, "total_text": _count_text(result.total, result.capped),
                      "url": _page_url_for(ctx, [target.plugin], ref.name)})
    return await page(request, ctx, "records/dashboard.html", **_common(ctx, target), cards=cards)


async def _custom(request: Request, ctx: RequestContext, target: Target) -> Template:
    return await guest_pages.render_page(request, ctx, target.plugin, target.spec, target.url, _common(ctx, target))


def _has_page_code(target: Target) -> bool:
    return target.spec.type in {"custom", "dashboard"} and bool(target.plugin.wasm_sha256)


# --- routes --------------------------------------------------------------------------------------

def _is_id(segment: str) -> bool:
    return _uuid(segment) is not None


@get(PREFIX + "/{path:path}", opt=RULE, include_in_schema=False)
async def plugin_page(request: Request, ctx: RequestContext, plugin_id: str, path: str) -> Response[Any]:
    target = await _resolve(ctx, plugin_id, path)
    rest = target.rest
    if target.spec.type == "dashboard" and not rest and not _has_page_code(target):
        return await _dashboard(request, ctx, target)
    if target.spec.type in {"custom", "dashboard"} and not rest:
        return await _custom(request, ctx, target)
    if target.spec.type == "crud":
        if not rest:
            return await _list(request, ctx, target)
        if rest == ["new"]:
            return await _new(request, ctx, target)
        if rest == ["export.csv"]:
            return await _export(request, ctx, target)
        if rest == ["import"]:
            return await _import_form(request, ctx, target)
        if rest == ["lookup"]:
            return await _lookup(request, ctx, target)
        if len(rest) == 1 and _is_id(rest[0]):
            return await _detail(request, ctx, target, rest[0])
        if len(rest) == 2 and _is_id(rest[0]) and rest[1] == "edit":
            return await _edit(request, ctx, target, rest[0])
    raise NotFound(f"{target.spec.name} has no page {'/'.join(rest)}")


@post(PREFIX + "/{path:path}", opt=RULE, include_in_schema=False, status_code=200)
async def plugin_page_post(request: Request, ctx: RequestContext, plugin_id: str, path: str) -> Response[Any]:
    target = await _resolve(ctx, plugin_id, path)
    rest = target.rest
    if _has_page_code(target) and len(rest) == 2 and rest[0] == "actions":
        return await guest_pages.post_action(request, ctx, target.plugin, target.spec, target.url, rest[1],
                                             _common(ctx, target))
    if target.spec.type == "crud":
        if rest in ([], ["new"]):
            return await _create(request, ctx, target)
        if rest == ["import"]:
            return await _import_post(request, ctx, target)
        if rest == ["bulk-delete"]:
            return await _bulk_delete(request, ctx, target)
        if rest and _is_id(rest[0]):
            if rest[1:] in ([], ["edit"]):
                return await _update(request, ctx, target, rest[0])
            if rest[1:] == ["delete"]:
                return await _delete(ctx, target, rest[0])
            if rest[1:] == ["restore"]:
                return await _restore(ctx, target, rest[0])
            if rest[1:] == ["submit"]:
                return await _submit(ctx, target, rest[0])
    raise NotFound(f"{target.spec.name} accepts no form at {'/'.join(rest) or 'this address'}")


ROUTES = [plugin_page, plugin_page_post]
