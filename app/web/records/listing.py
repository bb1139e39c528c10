"""The generated list page, built the way Django's ChangeList builds an admin list: the page's declared
options (`columns`, `filters`, `actions` in the manifest) plus the query string go into one `ListPage`,
which holds the parsed query (search, sort, filters, paging, the deleted view), the columns with their
cell formatters (prepared once per column, not per cell), the rows and the pager, and hands the
templates what they render.

The rows region (`records/_rows.html`, what an HTMX search keystroke or a pager link asks for) needs only
`fragment_context()`; the filter toolbar's widgets, whose reference filters query up to
FILTER_OPTIONS_LIMIT option rows each, are built by `filter_widgets()` for the whole page only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from litestar.datastructures import MultiDict
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from markupsafe import Markup, escape

from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.manifest import FieldSpec, PageSpec
from app.manifest.labels import pick_label
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.files import file_value
from app.records.query import (
    DEFAULT_SORT,
    ListQuery,
    comparable,
    declared,
    filterable,
    sortable,
    text_matches,
)
from app.records.values import display
from app.web.context import RequestContext
from app.web.i18n import localize
from app.web.records.display import STANDARD_LABELS, as_uuid, reference_labels, step, value_text
from app.web.records.saved import open_list, view_menu
from app.web.records.target import Target, allowed, common, record_link_base
from app.web.render import PAGE_SIZES, Pager, page, wants_fragment

DEFAULT_PAGE_SIZE = 25  # Pager's

DERIVED_COLUMNS = 7  # columns shown when the page declares none
DERIVED_FILTER_TYPES = {
    "select",
    "boolean",
    "reference",
    "date",
    "datetime",
}  # filters offered when none are declared
FILTER_OPTIONS_LIMIT = 200
BADGE_COLORS = {"green", "grey", "gray", "blue", "red", "orange", "purple", "yellow"}
RANGE_TYPES = {"date": "date", "datetime": "datetime-local", "integer": "number", "decimal": "number"}
LINK = re.compile(r"^https?://", re.I)
Params = MultiDict[Any]  # a list's query: repeated keys (`cols`) allowed
NUMERIC_TYPES = {"integer", "decimal", "number", "currency"}  # field or column types shown right-aligned
# The rows' texts (records/_rows.html, translated once per page by ListPage.rows_html).
SELECT_ROW, VIEW, EDIT, RESTORE = N_("Select %(record)s"), N_("View"), N_("Edit"), N_("Restore")


# --- columns and cells ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None = None
    badge: str | None = None  # a colour name for status badges
    muted: bool = False
    # File cells: paths under the record's URL (the cell formatter sees the value, not the row).
    file: str | None = None  # the first file's download
    thumb: str | None = None  # an image's re-encoded thumbnail, the only bytes shown inline


EMPTY = Cell("—", muted=True)
Formatter = Callable[[Any], Cell]


@dataclass
class Column:
    name: str
    label: str
    type: str | None  # the page's display type: status, select, date, link, number, currency, ...
    spec: FieldSpec | None
    sortable: bool
    options: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def numeric(self) -> bool:
        """Numbers line up on the right (the column's display type, else its field's type)."""
        kind = self.type or (self.spec.type if self.spec is not None else None)
        return kind in NUMERIC_TYPES

    def formatter(
        self, labels: Mapping[Any, str] | None = None, link_base: str | None = None, language: str = "en"
    ) -> Formatter:
        """How this column's (non-empty) values become cells, decided once for the whole column.
        `labels`: names of referenced rows; `link_base`: their record pages' URL prefix, if visible;
        `language`: the reader's, for the manifest's option labels."""
        spec = self.spec
        if spec is not None and spec.is_file:
            return file_cell
        if spec is not None and spec.type == "reference":
            return lambda v: Cell(value_text(spec, v, labels), href=f"{link_base}/{v}" if link_base else None)
        if self.type == "status" or (self.type == "select" and self.options):
            # The declared options' cells once for the column (cells are immutable), others per value.
            known = {
                value: Cell(pick_label(label, language), badge=color if color in BADGE_COLORS else "default")
                for value, (label, color) in self.options.items()
            }

            def badge(v: Any) -> Cell:
                found = known.get(str(v))
                return (
                    found
                    if found is not None
                    else Cell(pick_label(display(spec, v), language), badge="default")
                )

            return badge
        if self.type == "date":
            return lambda v: Cell(
                v.astimezone(dt.UTC).strftime("%Y-%m-%d") if isinstance(v, dt.datetime) else display(spec, v)
            )
        if self.type == "link":
            return lambda v: (
                Cell(v, href=v) if isinstance(v, str) and LINK.match(v) else Cell(display(spec, v))
            )
        if spec is not None and spec.type == "select":
            return lambda v: Cell(pick_label(display(spec, v), language))
        return lambda v: Cell(display(spec, v))


def file_cell(value: Any) -> Cell:
    """A file column: the files' names, the first one linked, an image's thumbnail shown."""
    items = file_value(value)
    if not items:
        return EMPTY
    first = items[0]
    names = ", ".join(str(v.get("name")) for v in items)
    path = f"files/{first.get('id')}"
    return Cell(names, file=path, thumb=f"{path}/thumbnail" if first.get("thumbnail") else None)


def columns(ref: EntityRef, spec: PageSpec) -> list[Column]:
    """The columns a list shows unless its reader chose others."""
    return [c for c, shown in all_columns(ref, spec) if shown]


def all_columns(ref: EntityRef, spec: PageSpec) -> list[tuple[Column, bool]]:
    """Every column the reader may show (the column chooser), with whether it is shown by default:
    the declared ones (`hidden` ones off), or the entity's comparable fields (the first few on)."""
    # Sorting by a reference would sort by the target's id, which means nothing to people.
    if spec.columns is None:
        fields = [f for f in ref.spec.fields if comparable(f)]
        return [
            (Column(f.name, f.label, None, f, f.type != "reference"), i < DERIVED_COLUMNS)
            for i, f in enumerate(fields)
        ]
    out = []
    for c in spec.columns:
        fspec = declared(ref, c["field"])
        sortable_kind = sortable(ref, c["field"]) and not (fspec is not None and fspec.type == "reference")
        options = {o["value"]: (o["label"] or o["value"], o.get("color")) for o in c.get("options") or ()}
        column = Column(
            c["field"],
            c["label"] or STANDARD_LABELS.get(c["field"], c["field"]),
            c.get("type"),
            fspec,
            bool(c.get("sortable", True)) and sortable_kind,
            options,
        )
        out.append((column, not c.get("hidden")))
    return out


def chosen_columns(available: list[tuple[Column, bool]], params: Params) -> list[Column] | None:
    """The columns named by `cols` (repeated, or comma-separated), in the page's order; None when the
    query chooses none that exist (then the defaults show)."""
    wanted = {name.strip() for value in params.getall("cols", []) for name in str(value).split(",")}
    chosen = [c for c, _ in available if c.name in wanted]
    return chosen or None


@dataclass(frozen=True)
class TableRow:
    row: Mapping[str, Any]
    cells: list[Cell]
    url: str  # the record's page
    html: Markup  # the cells' <td>s, escaped here rather than by the template (the list's hot loop)


def table_row(
    row: Mapping[str, Any], cells: list[Cell], page_url: str, deleted: bool, numeric: list[bool] | None = None
) -> TableRow:
    """One table row's cells as HTML (`numeric`: per column, right-aligned). Every text and URL is escaped
    here (tests/unit/test_record_listing.py)."""
    url = f"{page_url}/{row['id']}"
    out = []
    for i, cell in enumerate(cells):
        text = escape(cell.text)
        if i == 0 and not deleted:
            inner = f'<a href="{escape(url)}">{text}</a>'
        elif cell.thumb:
            inner = (
                f'<a href="{escape(url)}/{escape(cell.file)}"><img class="thumb" src="{escape(url)}/'
                f'{escape(cell.thumb)}" alt="{text}" loading="lazy" width="32" height="32"></a>'
            )
        elif cell.file:
            inner = f'<a href="{escape(url)}/{escape(cell.file)}">{text}</a>'
        elif cell.badge:
            inner = f'<span class="badge c-{escape(cell.badge)}">{text}</span>'
        elif cell.href:
            inner = f'<a href="{escape(cell.href)}">{text}</a>'
        elif cell.muted:
            inner = f'<span class="muted">{text}</span>'
        else:
            inner = str(text)
        out.append(f'<td class="num">{inner}</td>' if numeric and numeric[i] else f"<td>{inner}</td>")
    return TableRow(row, cells, url, Markup("\n      ".join(out)))


def rows_html(
    rows: list[TableRow],
    texts: Mapping[str, str],
    *,
    bulk: bool,
    deleted: bool,
    can_edit: bool,
    csrf_input: str,
) -> Markup:
    """The list page's table rows (records/_rows.html's tbody), each with its checkbox (`bulk`) and its
    actions (View and Edit, or Restore in the deleted view). Built here rather than by a template loop:
    dozens of escapes and lookups per row. `texts`: the translated SELECT_ROW, VIEW, EDIT and RESTORE,
    trusted like the template's `_()`; every value from the rows is escaped."""
    select = Markup(texts[SELECT_ROW])
    out = []
    for r in rows:
        url = escape(r.url)
        sel = (
            f'<td class="sel"><input type="checkbox" name="ids" value="{escape(r.row["id"])}" form="bulk"'
            f' aria-label="{select % {"record": r.cells[0].text}}"></td>'
            if bulk
            else ""
        )
        if deleted:
            actions = (
                f'\n          <form method="post" action="{url}/restore" class="inline" hx-boost="true">'
                f'\n            {csrf_input}<button class="secondary" type="submit">{texts[RESTORE]}</button>'
                "</form>\n        "
            )
        else:
            edit = f'<a href="{url}/edit">{texts[EDIT]}</a>' if can_edit else ""
            actions = f'\n          <a href="{url}">{texts[VIEW]}</a>\n          {edit}\n        '
        out.append(
            f'\n    <tr>\n      {sel}\n      {r.html}\n      <td class="row-actions">\n        {actions}'
            "\n      </td>\n    </tr>\n  "
        )
    return Markup("".join(out))


# --- filters -------------------------------------------------------------------------------------


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
    contains: bool = False  # a text filter matching part of the value (else the whole value)


def filter_fields(ref: EntityRef, spec: PageSpec) -> list[tuple[FieldSpec, str]]:
    """(field, label) of the page's filters: declared ones that may be filtered on, or a default set."""
    if spec.filters is None:
        return [(f, f.label) for f in ref.spec.fields if f.type in DERIVED_FILTER_TYPES]
    out = []
    for item in spec.filters:
        fspec = filterable(ref, item["field"])
        if fspec is not None:
            out.append((fspec, item["label"] or fspec.label))
    return out


def _keys(fspec: FieldSpec) -> list[str]:
    """The query keys of a filter; a select or reference filter also takes `<name>__empty=true` (rows
    without a value: where a board's column of them links to)."""
    if fspec.type in RANGE_TYPES:
        return [f"{fspec.name}__from", f"{fspec.name}__to"]
    return [fspec.name, f"{fspec.name}__empty"] if fspec.type in {"select", "reference"} else [fspec.name]


# --- the page ------------------------------------------------------------------------------------


def list_state(
    ref: EntityRef,
    spec: PageSpec,
    params: Params,
    *,
    fields: list[tuple[FieldSpec, str]] | None = None,
    available: list[tuple[Column, bool]] | None = None,
) -> dict[str, str | list[str]]:
    """The state of a list that a saved view keeps, from its query: search, the page's filters, sort,
    visible columns and page size, each only when it differs from the page's default (never the page
    number or the deleted view), so two queries showing the same list have the same state.
    `fields`, `available`: the page's `filter_fields` and `all_columns`, when already worked out."""
    out: dict[str, str | list[str]] = {}
    for fspec, _ in filter_fields(ref, spec) if fields is None else fields:
        for key in _keys(fspec):
            value = (params.get(key) or "").strip()[:200]
            if value:
                out[key] = value
    q = (params.get("q") or "").strip()[:200].replace("\x00", "")
    if q:
        out["q"] = q
    sort = (params.get("sort") or DEFAULT_SORT)[:80]
    if sort != DEFAULT_SORT and sortable(ref, sort):
        out["sort"] = sort
    size = str(params.get("size") or "")
    if size.isdigit() and int(size) in PAGE_SIZES and int(size) != DEFAULT_PAGE_SIZE:
        out["size"] = size
    if available is None:
        available = all_columns(ref, spec)
    chosen = chosen_columns(available, params)
    if chosen is not None and [c.name for c in chosen] != [c.name for c, shown in available if shown]:
        out["cols"] = [c.name for c in chosen]
    return out


class ListPage:
    """One crud list page for one request: parses on construction, `load()` fetches the rows."""

    def __init__(
        self, request: HTMXRequest, ctx: RequestContext, target: Target, params: Params | None = None
    ) -> None:
        """`params`: the list's state (a saved view's, app.web.records.saved), else the query string."""
        self.ctx, self.target, self.ref = ctx, target, target.ref
        self.svc = ctx.records()
        self.svc.require(self.ref, "select")
        self.allowed = allowed(ctx, target)
        if params is None:
            params = request.query_params
        self.params = params
        self.filter_fields = filter_fields(self.ref, target.spec)
        self.active = self._filter_values(params)
        self.pager = Pager(request, params=params)
        self.query = self._query(params)
        self.available = all_columns(self.ref, target.spec)
        self.default_columns = [c for c, shown in self.available if shown]
        chosen = chosen_columns(self.available, params)
        self.chosen = chosen is not None and [c.name for c in chosen] != [
            c.name for c in self.default_columns
        ]
        self.columns = chosen or self.default_columns
        self.rows: list[TableRow] = []
        self.total, self.capped = 0, False
        self.filter_errors: dict[str, str] = {}
        self._state: dict[str, str | list[str]] | None = None

    def _filter_values(self, params: Mapping[str, str]) -> dict[str, str]:
        """The service's filter dict from the query string: only the page's filters, bounded."""
        active: dict[str, str] = {}
        for fspec, _ in self.filter_fields:
            for key in _keys(fspec):
                value = (params.get(key) or "").strip()[:200]
                if value:
                    active[key] = value
        return active

    def _query(self, params: Mapping[str, str]) -> ListQuery:
        sort = (params.get("sort") or DEFAULT_SORT)[:80]
        if not sortable(self.ref, sort):
            sort = DEFAULT_SORT
        # The deleted view is for restoring: only for those who may restore.
        deleted = params.get("deleted") in {"1", "true", "on"} and self.allowed["restore"]
        p = self.pager
        p.q = p.q.replace("\x00", "")  # PostgreSQL text cannot hold NUL; nothing can match it anyway
        return ListQuery(
            q=p.q,
            filters=self.active,
            sort=sort,
            page=p.page,
            size=p.size,
            deleted=deleted,
            contains=text_matches(self.ref, self.target.spec.filters),
        )

    def _label_targets(self) -> dict[str, EntityRef]:
        """The shown reference columns' target entities: their labels come with the rows (one query)."""
        out: dict[str, EntityRef] = {}
        for c in self.columns:
            if c.spec is not None and c.spec.type == "reference":
                ref = runtime.find_entity(self.target.plugins, c.spec.entity or "")
                if ref is not None:
                    out[c.name] = ref
        return out

    async def load(self) -> None:
        """This page's rows, formatted; a filter the service refuses shows its message instead."""
        rows: list[dict[str, Any]] = []
        try:
            result = await self.svc.list(self.ref, self.query, labels=self._label_targets())
            rows, self.total, self.capped = result.rows, result.total, result.capped
            folded = result.labels
        except ValidationFailed as exc:
            self.filter_errors = exc.errors
            folded = {}
        query, p = self.query, self.pager
        p.total = self.total
        p.extra = {
            **self.active,
            "sort": "" if query.sort == DEFAULT_SORT else query.sort,
            "cols": ",".join(c.name for c in self.columns) if self.chosen else "",
            "deleted": "1" if query.deleted else "",
        }
        labels = folded | await reference_labels(
            self.svc, self.target, [c.spec for c in self.columns if c.name not in folded], rows
        )
        formats = [
            c.formatter(
                labels.get(c.name),
                record_link_base(self.ctx, self.target, c.spec.entity)
                if c.spec is not None and c.spec.type == "reference"
                else None,
                self.ctx.language,
            )
            for c in self.columns
        ]
        numeric = [c.numeric for c in self.columns]
        self.rows = [
            table_row(
                row,
                [
                    EMPTY if (v := row.get(c.name)) is None or v == "" else fmt(v)
                    for c, fmt in zip(self.columns, formats, strict=True)
                ],
                self.target.url,
                query.deleted,
                numeric,
            )
            for row in rows
        ]

    @property
    def has_next(self) -> bool:
        # Past the count cap the total is a lower bound: a full page means there may be more.
        return self.pager.page < self.pager.pages or (self.capped and len(self.rows) == self.pager.size)

    def state(self) -> dict[str, str | list[str]]:
        """What a saved view keeps of this list (see `list_state`), worked out once per request (the rows
        region and the view menu both ask)."""
        if self._state is None:
            self._state = self.state_of(self.params)
        return self._state

    def state_of(self, params: Params) -> dict[str, str | list[str]]:
        """`list_state` of other parameters of this page (a saved view's), with this page's fields."""
        return list_state(
            self.ref, self.target.spec, params, fields=self.filter_fields, available=self.available
        )

    def rows_html(self, csrf_input: str) -> Markup:
        """The table's rows (see `rows_html`), their texts translated once for the page."""
        return rows_html(
            self.rows,
            {text: localize(self.ctx, text) for text in (SELECT_ROW, VIEW, EDIT, RESTORE)},
            bulk=self.allowed["bulk_delete"] and not self.query.deleted,
            deleted=self.query.deleted,
            can_edit=self.allowed["edit"],
            csrf_input=str(csrf_input),
        )

    @property
    def export_url(self) -> str:
        """The CSV of this list as shown: its search, filters, sort and (when chosen) its columns."""
        params: dict[str, str] = {k: v for k, v in {"q": self.pager.q, **self.pager.extra}.items() if v}
        if self.chosen:
            params["cols"] = ",".join(c.name for c in self.columns)
        return self.target.url + "/export.csv" + ("?" + urlencode(params) if params else "")

    def fragment_context(self) -> dict[str, Any]:
        """What the rows region renders (records/_rows.html): no query beyond the rows' own."""
        return {
            **common(self.ctx, self.target, self.allowed),
            "p": self.pager,
            "rows": self.rows,
            "columns": self.columns,
            "filter_errors": self.filter_errors,
            "query": self.query,
            "total": self.total,
            "capped": self.capped,
            "total_text": count_text(self.total, self.capped),
            "filters_active": bool(self.active),
            "has_next": self.has_next,
            "default_sort": DEFAULT_SORT,
            "export_url": self.export_url,
            "out_of_range": not self.rows and self.total > 0 and self.pager.page > 1,
            "state_query": urlencode(self.state(), doseq=True),
            "visible_columns": {c.name for c in self.columns},
            "available_columns": [c for c, _ in self.available],
            "default_columns": [c.name for c in self.default_columns],
            "rows_html": self.rows_html,
        }

    async def filter_widgets(self) -> list[Filter]:
        """The toolbar's inputs; a reference filter lists the first FILTER_OPTIONS_LIMIT target rows."""
        widgets: list[Filter] = []
        for fspec, label in self.filter_fields:
            name = fspec.name
            if fspec.type in RANGE_TYPES:
                w = Filter(
                    name,
                    label,
                    "range",
                    RANGE_TYPES[fspec.type],
                    value_from=self.active.get(f"{name}__from", ""),
                    value_to=self.active.get(f"{name}__to", ""),
                )
                if fspec.type in {"integer", "decimal"}:
                    w.step = step(fspec)
            else:
                w = Filter(
                    name, label, "text", value=self.active.get(name, ""), contains=name in self.query.contains
                )
                if fspec.type == "select":
                    w.kind, w.options = "select", [(o.value, o.label) for o in fspec.options]
                elif fspec.type == "boolean":
                    w.kind, w.options = "select", [("true", "Yes"), ("false", "No")]
                elif fspec.type == "reference":
                    await self._reference_options(w, fspec)
            widgets.append(w)
        return widgets

    async def _reference_options(self, w: Filter, fspec: FieldSpec) -> None:
        ref = runtime.find_entity(self.target.plugins, fspec.entity or "")
        if ref is None or not self.ctx.can(ref.permission("select")):
            return  # no way to list the targets: an exact-value text filter
        w.kind = "select"
        w.options = [
            (str(i), label) for i, label in await self.svc.search_labels(ref, "", FILTER_OPTIONS_LIMIT)
        ]
        if w.value and w.value not in {v for v, _ in w.options}:
            known = await self.svc.labels(ref, [as_uuid(w.value)])
            w.options.insert(0, (w.value, next(iter(known.values()), w.value)))


def count_text(total: int, capped: bool) -> str:
    return f"{total:,}+" if capped else f"{total:,}"


async def list_page(request: HTMXRequest, ctx: RequestContext, target: Target) -> Template:
    fragment = wants_fragment(request)
    opened = await open_list(request, ctx, target, fragment)
    listing = ListPage(request, ctx, target, opened.params)
    await listing.load()
    # The rows region's work (rows, then the view menu) comes first on both; only the whole page goes
    # on with the filter widgets' option queries (tests/integration/test_record_list_queries.py).
    context = listing.fragment_context()
    context |= await view_menu(ctx, target, listing.state(), listing.state_of, opened, full=not fragment)
    if not fragment:
        context["filters"] = await listing.filter_widgets()
    response = await page(
        request, ctx, "records/list.html", fragment="records/_rows.html", oob=fragment, **context
    )
    if opened.push_url:
        response.headers["HX-Push-Url"] = opened.push_url
    return response
