"""What a list query may ask for, and what it means in SQL: the one owner of the sort and filter
whitelists, the "json/text cannot be sorted, filtered or grouped" rule, and the capped count.

`RecordService` (every path: pages, JSON API, WASM host) applies these; the generated pages use the
same functions to decide which headers are sortable and which filters to offer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.manifest import TEXT_FILTER_TYPES, FieldSpec
from app.records.values import FieldError, parse

if TYPE_CHECKING:
    from app.plugins.runtime import EntityRef

DEFAULT_SORT = "-created_at"
# A full COUNT on every page view is the classic cost of admin lists on big tables: count at most
# COUNT_CAP rows, or up to COUNT_LOOKAHEAD_PAGES pages past the one asked for, and show "N+" beyond.
COUNT_CAP = 1_000
COUNT_LOOKAHEAD_PAGES = 20
MAX_PAGE_SIZE = 200
SORTABLE_STANDARD = ("created_at", "updated_at")
# Pages may filter on the standard timestamps too (e.g. a "created_at" from/to filter).
STANDARD_FILTERS = {
    name: FieldSpec(name, "datetime", name.replace("_", " ").capitalize()) for name in SORTABLE_STANDARD
}
# Rows can be picked by id and by who wrote them (a guest's db.get, "my records" filters in the API).
STANDARD_FILTERS |= {
    name: FieldSpec(name, "uuid", label)
    for name, label in (("id", "Id"), ("created_by", "Created by"), ("updated_by", "Updated by"))
}


@dataclass
class ListQuery:
    q: str = ""
    filters: dict[str, str] = field(default_factory=dict)  # field, field__from, field__to
    sort: str = DEFAULT_SORT
    page: int = 1
    size: int = 25
    deleted: bool = False  # the "deleted" view lists soft-deleted rows (for restore)
    offset: int | None = None  # an explicit row offset (host API) instead of page * size
    # Text filters (by field name) that match a case-insensitive substring rather than the whole value:
    # the pages and the JSON API ask for it (`text_matches`), plugin code (the host API) matches exactly.
    contains: frozenset[str] = frozenset()

    def clamp(self) -> None:
        """Keep page and size in range (in place: the caller's pager reads them back)."""
        self.size = max(1, min(self.size, MAX_PAGE_SIZE))
        self.page = max(1, self.page)

    @property
    def row_offset(self) -> int:
        return (self.page - 1) * self.size if self.offset is None else max(0, self.offset)

    @property
    def count_cap(self) -> int:
        """How many rows the count may look at before it answers "N+"."""
        return max(COUNT_CAP, self.row_offset + self.size * COUNT_LOOKAHEAD_PAGES)


# --- the rule ------------------------------------------------------------------------------------


def comparable(spec: FieldSpec | None) -> bool:
    """Whether a field's values can be sorted, filtered on or grouped by (the rule is FieldSpec's)."""
    return spec is not None and spec.sortable


def declared(entity: EntityRef, name: str) -> FieldSpec | None:
    return entity.spec.field(name) if entity.spec.has_field(name) else None


def sortable(entity: EntityRef, sort: str) -> bool:
    """`sort` ("name" or "-name") names a standard timestamp or a comparable declared field."""
    name = sort.lstrip("-")
    return name in SORTABLE_STANDARD or comparable(declared(entity, name))


def filter_spec(entity: EntityRef, name: str) -> FieldSpec | None:
    """The field a filter key's name stands for (declared, or a standard one), filterable or not."""
    return declared(entity, name) or STANDARD_FILTERS.get(name)


def filterable(entity: EntityRef, name: str) -> FieldSpec | None:
    """The field behind a filter on `name`, if it may be filtered on."""
    spec = filter_spec(entity, name)
    return spec if comparable(spec) else None


def text_matches(entity: EntityRef, filters: tuple[Mapping[str, Any], ...] | None) -> frozenset[str]:
    """The string fields whose filters match "contains": all of them unless the page's filter says
    `match = "exact"` (`filters`: a crud page's declared filters, or None)."""
    exact = {f["field"] for f in filters or () if f.get("match") == "exact"}
    return frozenset(
        f.name for f in entity.spec.fields if f.type in TEXT_FILTER_TYPES and f.name not in exact
    )


# --- what it means in SQL ------------------------------------------------------------------------

LIKE_ESCAPE = "\\"
EMPTY_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def contains_pattern(text: str) -> str:
    """`%text%` for LIKE, lower-cased, with the wildcards the user typed matching themselves."""
    escaped = text.lower().replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_columns(entity: EntityRef) -> tuple[str, ...]:
    """The fields a list's free-text search looks in."""
    return tuple(f.name for f in entity.spec.searchable_fields)


def search_clause(t: sa.Table, columns: tuple[str, ...], needle: Any) -> sa.ColumnElement[bool]:
    """Any of `columns` contains `needle` (a `contains_pattern`, or a bind parameter standing for one)."""
    return sa.or_(*(sa.func.lower(t.c[c]).like(needle, escape=LIKE_ESCAPE) for c in columns))


def search_condition(entity: EntityRef, q: str) -> sa.ColumnElement[bool] | None:
    columns = search_columns(entity)
    if not q or not columns:
        return None
    return search_clause(entity.table, columns, contains_pattern(q))


@dataclass(frozen=True)
class Term:
    """One parsed filter: `op` on field `name` with `value` (None for the blank/filled tests). The
    statement's shape is (name, op) alone, so a list can keep one statement per shape (app.records.reads)."""

    name: str
    op: str
    value: Any = None


# op -> the comparison; "like" takes a contains_pattern; the blank tests take no value.
COMPARISONS: dict[str, Callable[[Any, Any], sa.ColumnElement[bool]]] = {
    "eq": lambda c, v: c == v,
    "ne": lambda c, v: c != v,
    "ge": lambda c, v: c >= v,
    "le": lambda c, v: c <= v,
    "gt": lambda c, v: c > v,
    "lt": lambda c, v: c < v,
    "like": lambda c, v: sa.func.lower(c).like(v, escape=LIKE_ESCAPE),
}
BLANK_TESTS = {"blank", "filled", "blank_text", "filled_text"}
# A filter key's suffix (`field__from`) -> its op; `to` on a datetime becomes "lt" the next minute.
BOUNDS = {"": "eq", "from": "ge", "to": "le", "gt": "gt", "lt": "lt", "ne": "ne"}


def term_condition(col: sa.ColumnElement[Any], op: str, value: Any = None) -> sa.ColumnElement[bool]:
    """The SQL of one Term on `col`; `value` may be a bind parameter."""
    if op in BLANK_TESTS:  # text fields count '' as empty too
        blank = col.is_(None) | (col == "") if op.endswith("_text") else col.is_(None)
        return blank if op.startswith("blank") else sa.not_(blank)
    return COMPARISONS[op](col, value)


def parse_filters(
    entity: EntityRef, filters: Mapping[str, Any], contains: frozenset[str] = frozenset()
) -> list[Term]:
    """`field`, `field__from|to|gt|lt|ne` = value (`field__empty` = true|false), parsed by the field's
    type (a `field` in `contains` matches a case-insensitive substring); ValidationFailed lists every bad
    key at once."""
    terms: list[Term] = []
    errors: dict[str, str] = {}
    for key, raw in filters.items():
        if raw in ("", None):
            continue
        name, _, bound = key.partition("__")
        spec = filter_spec(entity, name)
        if spec is None:
            errors[key] = N_("Unknown filter field %(name)s", name=repr(name))
            continue
        if not comparable(spec):
            errors[key] = N_("%(field)s cannot be filtered", field=spec.label)
            continue
        if bound == "empty":  # `field__empty=true`: no value (NULL, or '' for text); `false`: a value
            wanted = EMPTY_VALUES.get(str(raw).strip().lower())
            if wanted is None:
                errors[key] = N_("Use true or false")
                continue
            text = "_text" if spec.type in {"string", "text", "select"} else ""
            terms.append(Term(name, ("blank" if wanted else "filled") + text))
            continue
        if bound not in BOUNDS:
            errors[key] = N_("Unknown filter suffix %(suffix)s", suffix=repr(bound))
            continue
        try:
            value = parse(spec, raw)
        except FieldError as exc:
            errors[key] = exc.message
            continue
        if bound == "to" and spec.type == "datetime" and isinstance(value, dt.datetime):
            terms.append(Term(name, "lt", value + dt.timedelta(minutes=1)))  # the whole minute shown
        elif bound == "" and name in contains and isinstance(value, str):
            terms.append(Term(name, "like", contains_pattern(value)))
        else:
            terms.append(Term(name, BOUNDS[bound], value))
    if errors:
        raise ValidationFailed(errors)
    return terms


def filter_conditions(
    entity: EntityRef, filters: Mapping[str, Any], contains: frozenset[str] = frozenset()
) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of `filters` (see parse_filters), values inline."""
    t = entity.table
    return [term_condition(t.c[x.name], x.op, x.value) for x in parse_filters(entity, filters, contains)]


def order_by(entity: EntityRef, sort: str) -> list[Any]:
    """ORDER BY for `sort`, the id breaking ties (stable pages); ValidationFailed if not sortable."""
    if not sortable(entity, sort):
        raise ValidationFailed({"sort": N_("Cannot sort by %(field)s", field=repr(sort.lstrip("-")))})
    t = entity.table
    col = t.c[sort.lstrip("-")]
    if sort.startswith("-"):
        return [col.desc(), t.c.id.desc()]
    return [col.asc(), t.c.id.asc()]
