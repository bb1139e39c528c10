"""Inline child rows on a record form: each child set of the page's entity (its `children` in the
manifest, e.g. a purchase order's lines) is a table of rows inside the parent's form, saved with the
parent in one transaction by app.records.children.

The form carries, per set, a marker (`lines-present`), the rows' keys in order (`lines` = key, repeated)
and per row `lines-<key>-<field>`, `-id`, `-version` and the `-remove` checkbox. A row's key is its id,
or `n<hex>` for a row not saved yet. Without script the "Add" and move buttons submit the form to
itself, which draws it again with a new row or the order changed (nothing saved); with htmx "Add" asks
for one row (`<page>/inline/<set>`) and the move buttons move the row in the page (static/portal.js).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from litestar.datastructures import FormMultiDict
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from app.core.errors import NotFound
from app.core.i18n import N_
from app.manifest import CHILD_ROWS_MAX, ChildSpec
from app.plugins.runtime import EntityRef
from app.records import children
from app.records.values import TRUE, default_for, to_input
from app.web.context import RequestContext
from app.web.records.display import reference_labels, value_text
from app.web.records.form_fields import MAX_VALUE_LENGTH, FormField, form_field, prepare_picker
from app.web.records.target import Target

KEY = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
ERROR_KEY = re.compile(r"^([a-z][a-z0-9_]*)(?:\[(\d+)\])?(?:\.(\w+))?$")
ADD, MOVE = "_add", "_move"


@dataclass
class InlineRow:
    key: str
    id: str | None = None
    version: str | None = None
    values: dict[str, str] = field(default_factory=dict)  # typed input by field
    shown: dict[str, str] = field(default_factory=dict)  # text of read-only cells
    errors: dict[str, Any] = field(default_factory=dict)  # by field; "" for the whole row
    removed: bool = False
    editable: bool = True  # a new row, or a saved one the user may update


@dataclass
class InlineSet:
    spec: ChildSpec
    ref: EntityRef
    fields: list[FormField]
    can_insert: bool
    can_update: bool
    can_delete: bool
    rows: list[InlineRow] = field(default_factory=list)
    error: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def prefix(self, row: InlineRow) -> str:
        return f"{self.name}-{row.key}-"

    def new_row(self) -> InlineRow:
        values = {
            ff.spec.name: to_input(ff.spec, default_for(ff.spec)) for ff in self.fields if not ff.readonly
        }
        return InlineRow("n" + secrets.token_hex(4), values=values)


async def sets_for(ctx: RequestContext, target: Target) -> list[InlineSet]:
    """The page entity's child sets this user may read, with their row fields (no rows yet)."""
    out = []
    for cs in (await children.child_sets(ctx.records(), target.ref)).values():
        if not ctx.can(cs.ref.permission("select")):
            continue  # rows they cannot read are neither shown nor replaced
        fields = [
            form_field(cs.ref.spec.field(f), cs.ref.spec.field(f).label, None, False) for f in cs.spec.fields
        ]
        can = {op: ctx.can(cs.ref.permission(op)) for op in ("insert", "update", "delete")}
        out.append(InlineSet(cs.spec, cs.ref, fields, can["insert"], can["update"], can["delete"]))
    return out


async def load_rows(
    ctx: RequestContext, target: Target, sets: list[InlineSet], row: Mapping[str, Any]
) -> None:
    """The saved child rows of `row`, as an edit form starts with them."""
    if not sets:
        return
    holder = [dict(row)]
    await children.expand(ctx.records(), target.ref, holder, [s.name for s in sets])
    for s in sets:
        s.rows = [
            InlineRow(
                str(c["id"]),
                id=str(c["id"]),
                version=str(c["version"]),
                values={
                    ff.spec.name: to_input(ff.spec, c.get(ff.spec.name)) for ff in s.fields if not ff.readonly
                },
                editable=s.can_update,
            )
            for c in holder[0][s.name]
        ]


def from_form(sets: list[InlineSet], form: FormMultiDict) -> None:
    """The rows as the user left them (typed text, removals, order) for the sets the form carried."""
    for s in sets:
        s.rows = []
        seen: set[str] = set()
        for key in form.getall(s.name, [])[:CHILD_ROWS_MAX]:
            if not isinstance(key, str) or not KEY.match(key) or key in seen:
                continue
            seen.add(key)
            p = f"{s.name}-{key}-"
            rid, version = _text(form, p + "id"), _text(form, p + "version")
            row = InlineRow(
                key, id=rid or None, version=version or None, removed=bool(_text(form, p + "remove"))
            )
            row.editable = s.can_insert if row.id is None else s.can_update
            for ff in s.fields:
                name = p + ff.spec.name
                if ff.readonly:
                    continue
                if ff.spec.type == "boolean":
                    if row.editable:  # an unticked box sends nothing: only where the box was drawn
                        ticked = any(str(v).lower() in TRUE for v in form.getall(name, []))
                        row.values[ff.spec.name] = "true" if ticked else "false"
                elif name in form:
                    row.values[ff.spec.name] = _text(form, name)
            s.rows.append(row)


def _text(form: FormMultiDict, name: str) -> str:
    raw = form.get(name)
    return raw[:MAX_VALUE_LENGTH] if isinstance(raw, str) else ""


def carried(sets: list[InlineSet], form: FormMultiDict) -> list[tuple[str, str]]:
    """The form's inline inputs as (name, value) pairs, for a page that posts them again unchanged."""
    names = {s.name for s in sets if form.get(f"{s.name}-present")}
    return [
        (k, v)
        for k, v in form.multi_items()
        if isinstance(v, str) and (k in names or any(k.startswith(f"{n}-") for n in names))
    ]


def posted(sets: list[InlineSet], form: FormMultiDict) -> list[InlineSet]:
    """The sets the submitted form drew (its marker is there): only those are replaced by the save, so
    a form from before a set existed, or a crafted post, never empties one by leaving it out."""
    return [s for s in sets if form.get(f"{s.name}-present")]


def press(sets: list[InlineSet], form: FormMultiDict) -> bool:
    """Apply a pressed "Add" or move button of a form sent without script; True when one was pressed."""
    add, move = form.get(ADD), form.get(MOVE)
    if isinstance(add, str) and add:
        for s in sets:
            if s.name == add and s.can_insert and len(s.rows) < CHILD_ROWS_MAX:
                s.rows.append(s.new_row())
        return True
    if isinstance(move, str) and move:
        name, _, rest = move.partition(":")
        key, _, direction = rest.partition(":")
        for s in sets:
            keys = [r.key for r in s.rows]
            if s.name == name and key in keys:
                i = keys.index(key)
                j = i - 1 if direction == "up" else i + 1
                if 0 <= j < len(s.rows):
                    s.rows[i], s.rows[j] = s.rows[j], s.rows[i]
        return True
    return False


def payload(sets: list[InlineSet]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
    """What the record service saves (per set, the rows kept, in order) and each saved row's key by its
    position, to put the service's `lines[2].quantity` errors back on the right row."""
    rows: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, list[str]] = {}
    for s in sets:
        rows[s.name], keys[s.name] = [], []
        for row in s.rows:
            if row.removed:
                continue  # a saved row left out is deleted; a new one is simply not added
            item: dict[str, Any] = dict(row.values)
            if row.id is not None:
                item |= {"id": row.id, "version": row.version}
            rows[s.name].append(item)
            keys[s.name].append(row.key)
    return rows, keys


def place_errors(
    sets: list[InlineSet], errors: Mapping[str, str], keys: Mapping[str, list[str]]
) -> dict[str, str]:
    """Put each `lines[2].quantity` error on its row and field; returns the parent's own errors."""
    by_name = {s.name: s for s in sets}
    parent: dict[str, str] = {}
    for path, message in errors.items():
        m = ERROR_KEY.match(path)
        s = by_name.get(m.group(1)) if m else None
        if m is None or s is None:
            parent[path] = message
            continue
        if m.group(2) is None:
            s.error = message
            continue
        index, name = int(m.group(2)), m.group(3) or ""
        row = _row(s, keys.get(s.name, []), index)
        if row is None:
            s.error = message
            continue
        shown = {ff.spec.name for ff in s.fields if not ff.readonly} if row.editable else set()
        if name in ("id", "version") or (name and name not in shown):
            name = ""  # not a cell of this row: say it for the whole row
            message = f"{_field_label(s, m.group(3))}: {message}" if m.group(3) else message
        row.errors[name] = message
    return parent


def _field_label(s: InlineSet, name: str) -> str:
    return s.ref.spec.field(name).label if s.ref.spec.has_field(name) else name


def _row(s: InlineSet, keys: list[str], index: int) -> InlineRow | None:
    if index >= len(keys):
        return None
    return next((r for r in s.rows if r.key == keys[index]), None)


def stale(sets: list[InlineSet], exc: children.ChildStale, keys: Mapping[str, list[str]]) -> None:
    """A row someone else saved meanwhile: say so on it, with their values, and take their version, so
    that saving again deliberately replaces their values with the ones typed here."""
    m = ERROR_KEY.match(exc.path)
    s = next((s for s in sets if m and s.name == m.group(1)), None)
    if m is None or s is None or m.group(2) is None:
        return
    row = _row(s, keys.get(s.name, []), int(m.group(2)))
    if row is None:
        return
    theirs = " · ".join(
        f"{ff.label}: {value_text(ff.spec, exc.current.get(ff.spec.name))}" for ff in s.fields
    )
    row.errors[""] = N_(
        "Someone else changed this row after you opened the form (theirs: %(values)s). Nothing was "
        "saved; save again to replace it with yours.",
        values=theirs,
    )
    row.version = str(exc.current["version"])


async def prepare(ctx: RequestContext, target: Target, sets: list[InlineSet]) -> None:
    """Picker options (shared by a set's rows) and the text of read-only cells (from the saved rows)."""
    if not sets:
        return
    svc = ctx.records()
    for s in sets:
        for ff in s.fields:
            if ff.spec.type == "reference" and not ff.readonly:
                await prepare_picker(svc, ctx, target, ff, [r.values.get(ff.spec.name) or "" for r in s.rows])
        current = await _saved_rows(ctx, s)
        labels = await reference_labels(svc, target, [ff.spec for ff in s.fields], list(current.values()))
        for row in s.rows:
            db_row = current.get(row.id or "")
            for ff in s.fields:
                if ff.readonly or not row.editable:
                    value = db_row.get(ff.spec.name) if db_row is not None else None
                    row.shown[ff.spec.name] = value_text(ff.spec, value, labels.get(ff.spec.name))


async def _saved_rows(ctx: RequestContext, s: InlineSet) -> dict[str, dict[str, Any]]:
    ids = [r.id for r in s.rows if r.id]
    if not ids:
        return {}
    svc = ctx.records()
    rows = await children.rows_by_id(svc, s.ref, ids)
    return {str(r["id"]): r for r in rows}


async def add_row(
    request: HTMXRequest, ctx: RequestContext, target: Target, name: str
) -> Template | Redirect:
    """One empty row of a set, for htmx to append to the form (the "Add" button); opened as a page, the
    address leads to the record form (rows are added there by its own "Add")."""
    if not request.htmx:
        return Redirect(f"{target.url}/new", status_code=303)
    s = next((s for s in await sets_for(ctx, target) if s.name == name), None)
    if s is None:
        raise NotFound(
            N_("%(label)s has no inline rows called %(name)s", label=target.ref.spec.label, name=repr(name))
        )
    ctx.records().require(s.ref, "insert")
    row = s.new_row()
    s.rows = [row]
    await prepare(ctx, target, [s])
    return Template(
        template_name="records/_inline_row.html",
        context={"s": s, "row": row, "lookup_url": f"{target.url}/lookup", "ctx": ctx},
        headers={"Cache-Control": "no-store", "Vary": "HX-Request"},
    )
