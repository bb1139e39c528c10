"""Builders for the UI-instruction vocabulary, version 1 (docs/ui-instructions.md).

Guest-side code: runs inside the plugin component. It imports no bindings, so the host's unit tests
can import it directly.

Every builder returns a plain ``dict`` ready for JSON; optional keys whose value is ``None`` are left
out. Every block builder takes the keywords ``permission=`` (the host shows the block, children
included, only to users holding that ``ui.*``/``db.*`` permission) and ``id=`` (a DOM id, unique in
the document). Documents (``page``, ``result``) have neither: who may open a page is the manifest's
business.

The builders check structure (a block is a block, one chart value per label); the host validates
the values (levels, tones, styles, lengths) and replaces an invalid block with an error notice, so
the vocabulary has one definition: app/ui/ui-instructions.v1.schema.json.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "VERSION",
    "Block",
    "alert",
    "button",
    "card",
    "cell_link",
    "chart",
    "columns",
    "field",
    "form",
    "heading",
    "item_list",
    "link",
    "page",
    "redirect",
    "result",
    "stat",
    "table",
    "text",
    "toast",
]

VERSION = 1

Block = dict[str, Any]
#: What a block list accepts: blocks, strings (shorthand for ``text(...)``), ``None`` (skipped, for
#: conditional blocks) and lists/tuples of those (flattened).
BlockLike = Block | str | None | Sequence[Any]


def _compact(d: dict[str, Any], permission: str | None = None, id: str | None = None) -> dict[str, Any]:
    if id is not None:
        d["id"] = id
    if permission is not None:
        d["permission"] = permission
    return {k: v for k, v in d.items() if v is not None}


def _blocks(items: Iterable[BlockLike], where: str) -> list[Block]:
    out: list[Block] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            out.append(text(item))
        elif isinstance(item, Mapping):
            if "type" not in item:
                raise ValueError(
                    f"{where}: {dict(item)!r} is not a block (build blocks with the portal_guest functions)"
                )
            out.append(dict(item))
        elif isinstance(item, list | tuple):
            out.extend(_blocks(item, where))
        else:
            raise ValueError(f"{where}: expected a block, got {type(item).__name__}")
    return out


def _toast(value: str | Mapping[str, Any]) -> dict[str, Any]:
    return toast(value) if isinstance(value, str) else dict(value)


# --------------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------------


def page(title: str, *blocks: BlockLike) -> dict[str, Any]:
    """A page document ``{"version": 1, "title": ..., "blocks": [...]}``: what a page handler returns."""
    return {"version": VERSION, "title": title, "blocks": _blocks(blocks, "page")}


def toast(text: str, level: str = "success") -> dict[str, Any]:
    """A transient notice ``{"level", "text"}`` for ``result(toast=...)`` (level: success, info, warning, error)."""
    return {"level": level, "text": text}


def result(
    *blocks: BlockLike,
    title: str | None = None,
    redirect: str | None = None,
    toast: str | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An action result: blocks replacing the page's content, optionally a redirect (a same-origin
    URL such as ``"?tab=2"`` or ``"/t/acme/..."``) and a toast (a string is a success toast)."""
    return _compact(
        {
            "version": VERSION,
            "title": title,
            "blocks": _blocks(blocks, "result"),
            "redirect": redirect,
            "toast": _toast(toast) if toast is not None else None,
        }
    )


def redirect(url: str, *, toast: str | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An action result that sends the browser to ``url`` (optionally with a toast)."""
    return result(redirect=url, toast=toast)


# --------------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------------


def heading(text: str, level: int = 2, *, permission: str | None = None, id: str | None = None) -> Block:
    """A heading; level 1 to 4."""
    return _compact({"type": "heading", "text": text, "level": level}, permission, id)


def text(text: str, muted: bool = False, *, permission: str | None = None, id: str | None = None) -> Block:
    """A paragraph; ``muted`` for secondary information."""
    return _compact({"type": "text", "text": text, "muted": muted}, permission, id)


def alert(
    text: str,
    level: str = "info",
    title: str | None = None,
    *,
    permission: str | None = None,
    id: str | None = None,
) -> Block:
    """A notice box; level info, success, warning or error."""
    return _compact({"type": "alert", "level": level, "text": text, "title": title}, permission, id)


def stat(
    label: str,
    value: Any,
    hint: str | None = None,
    tone: str = "neutral",
    *,
    permission: str | None = None,
    id: str | None = None,
) -> Block:
    """One figure with a label, e.g. ``stat("Below threshold", 3, tone="bad")``; tone neutral, good,
    bad or warning."""
    return _compact(
        {"type": "stat", "label": label, "value": value, "hint": hint, "tone": tone}, permission, id
    )


def card(
    *blocks: BlockLike, title: str | None = None, permission: str | None = None, id: str | None = None
) -> Block:
    """A box grouping blocks under an optional title."""
    return _compact({"type": "card", "title": title, "blocks": _blocks(blocks, "card")}, permission, id)


def _label(key: Any) -> str:
    return str(key).replace("_", " ").strip().capitalize()


def _column(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"key": spec, "label": _label(spec)}
    if isinstance(spec, Mapping):
        if "key" not in spec:
            raise ValueError(f"table column {dict(spec)!r} has no 'key'")
        col = {
            "key": spec["key"],
            "label": spec.get("label") or _label(spec["key"]),
            "align": spec.get("align"),
        }
        return {k: v for k, v in col.items() if v is not None}
    if isinstance(spec, list | tuple) and len(spec) in (2, 3):
        col = {"key": spec[0], "label": spec[1], "align": spec[2] if len(spec) == 3 else None}
        return {k: v for k, v in col.items() if v is not None}
    raise ValueError(f"a table column is a key, (key, label), (key, label, align) or a dict; got {spec!r}")


def cell_link(text: str, href: str) -> dict[str, str]:
    """A table cell that is a link (``rows=[{"name": cell_link("Bolt", "/t/acme/...")}]``)."""
    return {"text": text, "href": href}


def table(
    columns: Sequence[Any],
    rows: Iterable[Mapping[str, Any]],
    empty: str | None = None,
    *,
    permission: str | None = None,
    id: str | None = None,
) -> Block:
    """A table. ``columns``: keys, ``(key, label)``, ``(key, label, align)`` or ``{"key", "label", "align"}``
    (align left, right or center). ``rows``: mappings of column key to cell (text, number, boolean,
    None or :func:`cell_link`); only the columns' keys are kept, because rows from ``db.query`` carry
    every field and the document counts against the plugin's output limit. ``empty`` is shown when
    there are no rows."""
    cols = [_column(c) for c in columns]
    keys = [c["key"] for c in cols]
    out_rows: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(
                f"table row {i} must be a mapping of column key to cell, got {type(row).__name__}"
            )
        out_rows.append({k: row.get(k) for k in keys})
    return _compact({"type": "table", "columns": cols, "rows": out_rows, "empty": empty}, permission, id)


def _options(options: Iterable[Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for opt in options:
        if isinstance(opt, Mapping):
            value = str(opt["value"])
            out.append({"value": value, "label": str(opt.get("label", value))})
        elif isinstance(opt, list | tuple) and len(opt) == 2:
            out.append({"value": str(opt[0]), "label": str(opt[1])})
        else:
            out.append({"value": str(opt), "label": str(opt)})
    return out


def field(
    name: str,
    label: str,
    type: str = "string",
    value: Any = None,
    required: bool = False,
    options: Iterable[Any] | None = None,
    help: str | None = None,
    error: str | None = None,
    placeholder: str | None = None,
    min: float | str | None = None,
    max: float | str | None = None,
) -> dict[str, Any]:
    """A form field; type string, text, integer, decimal, boolean, date, datetime, select or hidden.
    ``options`` (selects only): values, ``(value, label)`` pairs or ``{"value", "label"}`` dicts."""
    return _compact(
        {
            "name": name,
            "label": label,
            "type": type,
            "value": value,
            "required": required,
            "options": _options(options) if options is not None else None,
            "help": help,
            "error": error,
            "placeholder": placeholder,
            "min": min,
            "max": max,
        }
    )


def form(
    action: str,
    fields: Sequence[Mapping[str, Any]],
    submit: str = "Save",
    errors: str | Sequence[str] | Mapping[str, str] | None = None,
    *,
    permission: str | None = None,
    id: str | None = None,
) -> Block:
    """A form posting its fields to the page's ``action`` (see ``@plugin.action``).

    ``errors`` are form-level messages (a string or a list). A mapping of field name to message is
    also accepted: each message becomes that field's ``error``; other names stay form-level.
    """
    out_fields = [dict(f) for f in fields]
    form_errors: list[str] | None = None
    if isinstance(errors, str):
        form_errors = [errors]
    elif isinstance(errors, Mapping):
        by_name = {f.get("name"): f for f in out_fields}
        form_errors = []
        for name, message in errors.items():
            if name in by_name:
                by_name[name]["error"] = message
            else:
                form_errors.append(f"{name}: {message}" if name else str(message))
        form_errors = form_errors or None
    elif errors is not None:
        form_errors = [str(e) for e in errors]
    return _compact(
        {"type": "form", "action": action, "fields": out_fields, "submit": submit, "errors": form_errors},
        permission,
        id,
    )


def button(
    label: str,
    action: str,
    data: Mapping[str, Any] | None = None,
    style: str = "secondary",
    confirm: str | None = None,
    *,
    permission: str | None = None,
    id: str | None = None,
) -> Block:
    """A button posting ``data`` to the page's ``action``; style primary, secondary or danger;
    ``confirm`` asks the user first."""
    return _compact(
        {
            "type": "button",
            "label": label,
            "action": action,
            "data": dict(data) if data is not None else None,
            "style": style,
            "confirm": confirm,
        },
        permission,
        id,
    )


def link(text: str, href: str, *, permission: str | None = None, id: str | None = None) -> Block:
    """A link to a same-origin URL (``/...``, ``?...`` or ``#...``)."""
    return _compact({"type": "link", "text": text, "href": href}, permission, id)


def item_list(
    items: Iterable[Any], ordered: bool = False, *, permission: str | None = None, id: str | None = None
) -> Block:
    """The ``list`` block: bulleted (numbered with ``ordered=True``). Items are strings or
    ``{"text", "href"}`` dicts."""
    out = [dict(i) if isinstance(i, Mapping) else str(i) for i in items]
    return _compact({"type": "list", "items": out, "ordered": ordered}, permission, id)


def columns(*cols: BlockLike, permission: str | None = None, id: str | None = None) -> Block:
    """Side-by-side columns (1 to 4); each argument is one column: a block or a list of blocks."""
    return _compact({"type": "columns", "columns": [_blocks([c], "columns") for c in cols]}, permission, id)


def _number(value: Any, series: str) -> float | int | None:
    if value is None or isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"chart series '{series}': {value!r} is not a number") from None


def chart(
    kind: str,
    labels: Sequence[Any],
    series: Mapping[str, Sequence[float | None]],
    title: str | None = None,
    unit: str | None = None,
    *,
    permission: str | None = None,
    id: str | None = None,
) -> Block:
    """A bar or line chart: ``series`` maps a series name to one value per label (``None`` leaves a
    gap), e.g. ``chart("bar", ["Jan", "Feb"], {"Orders": [3, 5]}, unit="pcs")``."""
    label_list = [str(label) for label in labels]
    out_series: list[dict[str, Any]] = []
    for name, values in series.items():
        # Sums of decimal fields arrive from the host as strings; a chart needs numbers.
        value_list = [_number(v, name) for v in values]
        if len(value_list) != len(label_list):
            raise ValueError(
                f"chart series '{name}' has {len(value_list)} values for {len(label_list)} labels"
            )
        out_series.append({"name": str(name), "values": value_list})
    return _compact(
        {
            "type": "chart",
            "kind": kind,
            "title": title,
            "labels": label_list,
            "series": out_series,
            "unit": unit,
        },
        permission,
        id,
    )
