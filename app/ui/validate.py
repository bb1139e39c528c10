"""Validation and normalization of a plugin's UI instructions (version 1).

A plugin is untrusted. This module turns its JSON into plain dicts of checked values that the host's
own templates render with autoescaping; URLs must be same-origin relative ones. Nothing here raises
on bad input: each problem is recorded with its JSON path (`blocks[2].rows[0].qty`; `$` is the
document itself) in an `app.core.validation.Issues` collector, and an invalid block is replaced in place by
an `_error` block. The checks of single values (each returns the normalized value, or `INVALID` after
recording its problem) live in app.ui.checks; this module holds the vocabulary, the blocks and the document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from app.core.i18n import N_
from app.core.nesting import TextRejected, loads_json
from app.core.validation import INVALID, Issue, Issues, member, or_default
from app.ui.charts import format_number, render_chart
from app.ui.checks import (
    Errs,
    Obj,
    c_action,
    c_bool,
    c_chart_value,
    c_enum,
    c_id,
    c_int,
    c_list,
    c_name,
    c_number,
    c_permission,
    c_scalar,
    c_str,
    c_url,
    is_number,
)

log = logging.getLogger("portal.ui")

UI_VERSION = 1
MAX_DEPTH = 8
MAX_JSON_DEPTH = 64  # arrays/objects in the text, checked before parsing (blocks at MAX_DEPTH need ~20)
MAX_BLOCKS = 2000
MAX_ROWS = 1000
MAX_COLUMNS = 30
MAX_LABELS = 200
MAX_SERIES = 10
MAX_ITEMS = 1000  # list items and select options
MAX_FIELDS = 200
MAX_DATA = 50  # button data entries
MAX_ERRORS = 50  # form-level errors

LEVELS = ("info", "success", "warning", "error")
TONES = ("neutral", "good", "bad", "warning")
ALIGNS = ("left", "right", "center")
STYLES = ("primary", "secondary", "danger")
KINDS = ("bar", "line")
FIELD_INPUTS = {
    "string": "text",
    "text": "textarea",
    "integer": "number",
    "decimal": "number",
    "boolean": "checkbox",
    "date": "date",
    "datetime": "datetime-local",
    "select": "select",
    "hidden": "hidden",
}

_COMMON = frozenset({"type", "id", "permission"})
BLOCK_PROPERTIES: dict[str, frozenset[str]] = {
    "heading": _COMMON | {"text", "level"},
    "text": _COMMON | {"text", "muted"},
    "alert": _COMMON | {"level", "title", "text"},
    "stat": _COMMON | {"label", "value", "hint", "tone"},
    "card": _COMMON | {"title", "blocks"},
    "table": _COMMON | {"columns", "rows", "empty"},
    "form": _COMMON | {"action", "fields", "submit", "errors"},
    "button": _COMMON | {"label", "action", "data", "style", "confirm"},
    "link": _COMMON | {"text", "href"},
    "list": _COMMON | {"items", "ordered"},
    "columns": _COMMON | {"columns"},
    "grid": _COMMON | {"columns"},  # alias of columns
    "chart": _COMMON | {"kind", "title", "labels", "series", "unit"},
}
ALIASES = {"grid": "columns"}
# The other objects of the vocabulary, named as in the JSON Schema's $defs.
PART_PROPERTIES: dict[str, frozenset[str]] = {
    "document": frozenset({"version", "title", "blocks", "redirect", "toast"}),
    "toast": frozenset({"level", "text"}),
    "tableColumn": frozenset({"key", "label", "align"}),
    "cellLink": frozenset({"text", "href"}),
    "formField": frozenset(
        {
            "name",
            "label",
            "type",
            "value",
            "required",
            "options",
            "help",
            "error",
            "placeholder",
            "min",
            "max",
        }
    ),
    "selectOption": frozenset({"value", "label"}),
    "listItem": frozenset({"text", "href"}),
    "chartSeries": frozenset({"name", "values"}),
}

#: One problem of a document: `path` (`blocks[2].rows[0].qty`, `$`) and `message`.
UIProblem = Issue


@dataclass
class UIView:
    title: str | None
    blocks: list[dict[str, Any]]
    problems: list[UIProblem]
    redirect: str | None
    toast: dict[str, str] | None
    fatal: bool

    @property
    def document_problems(self) -> list[UIProblem]:
        """Problems not already shown in place of a block: the region lists them in one panel."""
        return (
            list(self.problems)
            if self.fatal
            else [p for p in self.problems if not p.path.startswith("blocks[")]
        )

    def render_chart(self, block: dict[str, Any]) -> Markup:
        """The SVG of a validated chart block (a method, so the template needs no extra Jinja global)."""
        return render_chart(
            uid=block["uid"],
            kind=block["kind"],
            title=block["title"],
            labels=block["labels"],
            series=[(s["name"], s["values"]) for s in block["series"]],
            unit=block["unit"],
        )


def _part(raw: Any, path: str, errs: Errs, part: str) -> Obj | None:
    """The object at `path` read as the vocabulary's `part`, or None after recording that it is not one."""
    return Obj.of(raw, path, errs, PART_PROPERTIES[part])


# --- blocks ----------------------------------------------------------------------------------------


class _Fatal(Exception):
    def __init__(self, problem: UIProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass
class _State:
    can: Callable[[str], bool]
    problems: Issues = field(default_factory=Issues)
    count: int = 0
    ids: set[str] = field(default_factory=set)


def _plain(value: Any) -> str:
    """A scalar as form/table text: no thousands separators (ids, years), booleans as true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _block_list(items: list[Any], path: str, st: _State, depth: int) -> list[dict[str, Any]]:
    out = [_block(raw, f"{path}[{i}]", st, depth) for i, raw in enumerate(items)]
    return [b for b in out if b is not None]


def _error(st: _State, errs: Iterable[Issue]) -> dict[str, Any]:
    found = list(errs)
    st.problems.extend(found)
    return {"type": "_error", "path": found[0].path, "message": found[0].message, "more": len(found) - 1}


def _block(raw: Any, path: str, st: _State, depth: int) -> dict[str, Any] | None:
    st.count += 1
    if st.count > MAX_BLOCKS:
        raise _Fatal(
            UIProblem("$", N_("more than %(max_blocks)s blocks", max_blocks=format(MAX_BLOCKS, ",")))
        )
    errs = Issues()
    if not isinstance(raw, dict):
        return _error(st, [UIProblem(path, N_('expected a block: an object with a "type"'))])
    if depth > MAX_DEPTH:
        return _error(
            st, [UIProblem(path, N_("blocks nested more than %(max_depth)s deep", max_depth=MAX_DEPTH))]
        )
    if "permission" in raw:
        permission = c_permission(raw["permission"], member(path, "permission"), errs)
        if permission is INVALID:
            return _error(st, errs)
        if not st.can(permission):
            return None  # hidden from this user, children included
    kind = raw.get("type")
    if kind is None:
        return _error(st, [UIProblem(member(path, "type"), N_("required"))])
    if not isinstance(kind, str) or kind not in BLOCK_PROPERTIES:
        shown = json.dumps(kind[:40]) if isinstance(kind, str) else "a " + type(kind).__name__
        return _error(
            st,
            [
                UIProblem(
                    member(path, "type"),
                    N_(
                        "unknown block type %(shown)s; expected one of: %(choices)s",
                        shown=shown,
                        choices=", ".join(BLOCK_PROPERTIES),
                    ),
                )
            ],
        )
    kind = ALIASES.get(kind, kind)
    o = Obj(raw, path, errs, BLOCK_PROPERTIES[kind])
    block_id = o.get("id", c_id)
    if block_id is not None:
        if block_id in st.ids:
            errs.add(o.at("id"), N_("duplicate id"))
        st.ids.add(block_id)
    # `uid` prefixes the DOM ids this block renders; plugin ids render as "ui-<id>", so they cannot collide.
    out: dict[str, Any] = {"type": kind, "id": block_id, "uid": f"uib{st.count}"}
    out.update(_BUILDERS[kind](o, st, depth, out["uid"]))
    return _error(st, errs) if errs else out


def _heading(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    return {"text": o.get("text", c_str, "", required=True), "level": o.get("level", c_int(1, 4), 2)}


def _text(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    return {"text": o.get("text", c_str, "", required=True), "muted": o.get("muted", c_bool, False)}


def _alert(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    return {
        "level": o.get("level", c_enum(*LEVELS), "info"),
        "title": o.get("title", c_str),
        "text": o.get("text", c_str, "", required=True),
    }


def _stat(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    value = o.get(
        "value",
        lambda v, p, e: (
            v
            if is_number(v)
            else c_str(v, p, e)
            if isinstance(v, str)
            else e.fail(p, N_("expected a string or a number"))
        ),
        "",
        required=True,
    )
    return {
        "label": o.get("label", c_str, "", required=True),
        "value": format_number(value) if is_number(value) else value,
        "hint": o.get("hint", c_str),
        "tone": o.get("tone", c_enum(*TONES), "neutral"),
    }


def _card(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    title = o.get("title", c_str)
    children = o.get("blocks", c_list(MAX_BLOCKS), [])
    # Children are checked only for a sound parent, so an _error parent does not also report its children.
    return {"title": title, "blocks": [] if o.errs else _block_list(children, o.at("blocks"), st, depth + 1)}


def _cell(value: Any, path: str, errs: Errs) -> dict[str, Any]:
    if isinstance(value, dict):
        link = Obj(value, path, errs, PART_PROPERTIES["cellLink"])
        return {
            "text": link.get("text", c_str, "", required=True),
            "href": link.get("href", c_url, required=True),
        }
    if value is None or isinstance(value, bool) or is_number(value):
        return {
            "text": ""
            if value is None
            else "Yes"
            if value is True
            else "No"
            if value is False
            else _plain(value),
            "href": None,
        }
    if isinstance(value, str):
        return {"text": c_str(value, path, errs) or "", "href": None}
    errs.add(path, N_("expected a string, number, boolean or null"))
    return {"text": "", "href": None}


def _table(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    columns = []
    for i, raw in enumerate(o.get("columns", c_list(MAX_COLUMNS, 1), [], required=True)):
        if c := _part(raw, f"{o.at('columns')}[{i}]", o.errs, "tableColumn"):
            key = c.get("key", c_str, "", required=True)
            columns.append(
                {
                    "key": key,
                    "label": c.get("label", c_str, key),
                    "align": c.get("align", c_enum(*ALIGNS), "left"),
                }
            )
    rows = []
    for r, row in enumerate(o.get("rows", c_list(MAX_ROWS), [])):
        path = f"{o.at('rows')}[{r}]"
        if not isinstance(row, dict):
            o.errs.add(path, N_("expected an object mapping column keys to cells"))
            continue
        # Keys without a column are ignored: plugins may pass whole records.
        rows.append([_cell(row.get(c["key"]), member(path, c["key"]), o.errs) for c in columns])
    return {"columns": columns, "rows": rows, "empty": o.get("empty", c_str)}


def _field(f: Obj, uid: str, seen: set[str]) -> dict[str, Any]:
    name = f.get("name", c_name, "", required=True)
    if name in seen:
        f.errs.add(f.at("name"), N_("duplicate field name"))
    seen.add(name)
    kind = f.get("type", c_enum(*FIELD_INPUTS), "string")
    value = f.get("value", c_scalar)
    options: list[tuple[str, str]] = []
    if kind == "select":
        for i, raw in enumerate(f.get("options", c_list(MAX_ITEMS), [], required=True)):
            path = f"{f.at('options')}[{i}]"
            if isinstance(raw, str):
                text = c_str(raw, path, f.errs) or ""
                options.append((text, text))
            elif opt := _part(raw, path, f.errs, "selectOption"):
                v = opt.get("value", c_str, "", required=True)
                options.append((v, opt.get("label", c_str, v)))
    elif "options" in f.raw:
        f.errs.add(f.at("options"), N_("only select fields have options"))
    bounds: dict[str, Any] = {}
    for key in ("min", "max"):
        if key not in f.raw:
            bounds[key] = None
        elif kind in ("integer", "decimal"):
            bounds[key] = _plain(f.get(key, c_number))
        elif kind in ("date", "datetime"):
            bounds[key] = f.get(key, c_str)
        else:
            f.errs.add(f.at(key), N_("only integer, decimal, date and datetime fields have min and max"))
            bounds[key] = None
    return {
        "name": name,
        "id": f"{uid}-{name}",
        "type": kind,
        "input": FIELD_INPUTS[kind],
        "label": f.get("label", c_str, name),
        "value": _plain(value),
        "checked": value is True or (isinstance(value, str) and value.lower() in ("true", "1", "on", "yes")),
        "required": f.get("required", c_bool, False),
        "options": options,
        "help": f.get("help", c_str),
        "error": f.get("error", c_str),
        "placeholder": f.get("placeholder", c_str),
        "step": "1" if kind == "integer" else "any" if kind == "decimal" else None,
        **bounds,
    }


def _form(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    fields: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(o.get("fields", c_list(MAX_FIELDS), [])):
        if f := _part(raw, f"{o.at('fields')}[{i}]", o.errs, "formField"):
            fields.append(_field(f, uid, seen))
    errors = [
        c_str(e, f"{o.at('errors')}[{i}]", o.errs) or ""
        for i, e in enumerate(o.get("errors", c_list(MAX_ERRORS), []))
    ]
    return {
        "action": o.get("action", c_action, "", required=True),
        "fields": fields,
        "submit": o.get("submit", c_str, "Save"),
        "errors": errors,
    }


def _button(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    data: list[tuple[str, str]] = []
    raw = o.get("data", lambda v, p, e: v if isinstance(v, dict) else e.fail(p, N_("expected an object")), {})
    if len(raw) > MAX_DATA:
        o.errs.add(o.at("data"), N_("more than %(max_data)s entries", max_data=MAX_DATA))
    for key, value in list(raw.items())[:MAX_DATA]:
        path = member(o.at("data"), key)
        if c_name(key, path, o.errs) is not INVALID:
            data.append((key, _plain(or_default(c_scalar(value, path, o.errs), None))))
    return {
        "label": o.get("label", c_str, "", required=True),
        "action": o.get("action", c_action, "", required=True),
        "data": data,
        "style": o.get("style", c_enum(*STYLES), "secondary"),
        "confirm": o.get("confirm", c_str),
    }


def _link(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    return {"text": o.get("text", c_str, "", required=True), "href": o.get("href", c_url, required=True)}


def _list(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    items = []
    for i, raw in enumerate(o.get("items", c_list(MAX_ITEMS), [], required=True)):
        path = f"{o.at('items')}[{i}]"
        if isinstance(raw, str):
            items.append({"text": c_str(raw, path, o.errs) or "", "href": None})
        elif item := _part(raw, path, o.errs, "listItem"):
            items.append(
                {"text": item.get("text", c_str, "", required=True), "href": item.get("href", c_url)}
            )
    return {"items": items, "ordered": o.get("ordered", c_bool, False)}


def _columns(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    cols = o.get("columns", c_list(4, 1), [], required=True)
    for i, col in enumerate(cols):
        if not isinstance(col, list):
            o.errs.add(f"{o.at('columns')}[{i}]", N_("expected a list of blocks"))
    if o.errs:
        return {"columns": []}
    return {
        "columns": [_block_list(col, f"{o.at('columns')}[{i}]", st, depth + 1) for i, col in enumerate(cols)]
    }


def _chart(o: Obj, st: _State, depth: int, uid: str) -> dict[str, Any]:
    labels = [
        c_str(v, f"{o.at('labels')}[{i}]", o.errs) or ""
        for i, v in enumerate(o.get("labels", c_list(MAX_LABELS), [], required=True))
    ]
    series = []
    for j, raw in enumerate(o.get("series", c_list(MAX_SERIES, 1), [], required=True)):
        if s := _part(raw, f"{o.at('series')}[{j}]", o.errs, "chartSeries"):
            values = s.get("values", c_list(MAX_LABELS), [], required=True)
            if "values" in s.raw and isinstance(s.raw["values"], list) and len(values) != len(labels):
                o.errs.add(
                    s.at("values"),
                    N_(
                        "expected %(labels_length)s values (one per label), got %(values_length)s",
                        labels_length=len(labels),
                        values_length=len(values),
                    ),
                )
            series.append(
                {
                    "name": s.get("name", c_str, "", required=True),
                    "values": [
                        or_default(c_chart_value(v, f"{s.at('values')}[{i}]", o.errs), None)
                        for i, v in enumerate(values)
                    ],
                }
            )
    # Rows of the accessible data table rendered under the SVG.
    rows = [
        [
            label,
            *(
                format_number(s["values"][i]) if i < len(s["values"]) and s["values"][i] is not None else ""
                for s in series
            ),
        ]
        for i, label in enumerate(labels)
    ]
    return {
        "kind": o.get("kind", c_enum(*KINDS), "bar"),
        "title": o.get("title", c_str),
        "labels": labels,
        "series": series,
        "unit": o.get("unit", c_str),
        "rows": rows,
    }


_BUILDERS: dict[str, Callable[[Obj, _State, int, str], dict[str, Any]]] = {
    "heading": _heading,
    "text": _text,
    "alert": _alert,
    "stat": _stat,
    "card": _card,
    "table": _table,
    "form": _form,
    "button": _button,
    "link": _link,
    "list": _list,
    "columns": _columns,
    "chart": _chart,
}


# --- the document ----------------------------------------------------------------------------------


def _fatal(path: str, message: str) -> UIView:
    return UIView(
        title=None, blocks=[], problems=[UIProblem(path, message)], redirect=None, toast=None, fatal=True
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(text: str, can: Callable[[str], bool], max_bytes: int) -> UIView:
    if not isinstance(text, str):
        return _fatal("$", N_("expected JSON text"))
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return _fatal(
            "$",
            N_(
                "the document is %(size)s bytes; the limit is %(max_bytes)s",
                size=format(size, ","),
                max_bytes=format(max_bytes, ","),
            ),
        )
    try:
        doc = loads_json(text, max_depth=MAX_JSON_DEPTH, max_bytes=max_bytes, parse_constant=_reject_constant)
    except TextRejected as exc:
        return _fatal("$", N_("the document is %(exc)s", exc=exc))
    except ValueError as exc:
        return _fatal("$", N_("not valid JSON: %(exc)s", exc=exc))
    if not isinstance(doc, dict):
        return _fatal("$", N_('expected a JSON object such as {"version": 1, "blocks": [...]}'))
    version = doc.get("version", UI_VERSION)
    if type(version) is not int or version != UI_VERSION:
        return _fatal(
            "version",
            N_("unsupported version; this portal understands version %(ui_version)s", ui_version=UI_VERSION),
        )
    st = _State(can)
    o = Obj(doc, "", st.problems, PART_PROPERTIES["document"])
    toast = None
    before = len(st.problems)
    if "toast" in doc and (t := _part(doc["toast"], "toast", st.problems, "toast")):
        toast = {
            "level": t.get("level", c_enum(*LEVELS), "info"),
            "text": t.get("text", c_str, "", required=True),
        }
        toast = toast if len(st.problems) == before else None
    title = o.get("title", c_str)
    redirect = o.get("redirect", c_url)
    blocks = _block_list(o.get("blocks", c_list(10**9), []), "blocks", st, 1)
    return UIView(
        title=title, blocks=blocks, problems=st.problems.items, redirect=redirect, toast=toast, fatal=False
    )


def parse_ui(text: str, *, can: Callable[[str], bool], max_bytes: int = 1_000_000) -> UIView:
    """Validate a plugin's UI-instruction JSON; never raises on bad input (see the module docstring)."""
    try:
        return _parse(text, can, max_bytes)
    except _Fatal as exc:
        return _fatal(exc.problem.path, exc.problem.message)
    except Exception:  # a validator bug must not turn a plugin page into a server error
        log.exception("UI instructions could not be validated")
        return _fatal("$", N_("the portal could not check this document"))
