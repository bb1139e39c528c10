"""``board`` on a crud page: a board (kanban) of the entity's rows with one column per option of a
select field (and one for rows without a value), whose cards show some of the row's fields. Moving a
card to another column sets that field (app.web.records.board, through the record service)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.i18n import N_, phrase
from app.core.validation import ix, kind, one_of
from app.manifest.model import EntitySpec
from app.manifest.reader import ManifestReader
from app.manifest.vocabulary import BOARD_CARD_FIELDS, BOARD_KEYS, BOARD_LIMIT, STANDARD_FIELDS

DEFAULT_LIMIT = 20
DEFAULT_SORT = "-updated_at"
SORTABLE_STANDARD = ("created_at", "updated_at")
CARD_STANDARD = ("created_at", "updated_at")


def read_board(r: ManifestReader, value: Any, path: str, entity: EntitySpec) -> dict[str, Any] | None:
    """``{ field, card, limit, sort }``: the normalised board, or None (issues recorded)."""
    if not isinstance(value, Mapping):
        r.add(path, N_("expected a table {field, card, limit, sort}, got %(kind)s", kind=kind(value)))
        return None
    r.keys(value, BOARD_KEYS, path, required=("field",))
    name = r.text(value, "field", path)
    limit = r.integer(value, "limit", path, 1, BOARD_LIMIT)
    sort = r.text(value, "sort", path)
    card = _read_card(r, value, path, entity)
    selects = [f.name for f in entity.fields if f.type == "select"]
    field_ok = False
    if name is not None:
        if not entity.has_field(name):
            r.add(
                f"{path}.field",
                N_(
                    "unknown field '%(name)s' in entity '%(name2)s' (select fields: %(value)s)",
                    name=name,
                    name2=entity.name,
                    value=one_of(selects) or phrase(N_("none")),
                ),
            )
        elif entity.field(name).type != "select":
            r.add(
                f"{path}.field",
                N_(
                    "field '%(name)s' is %(type)s; a board's columns are the options of a select field (select fields: %(value)s)",
                    name=name,
                    type=entity.field(name).type,
                    value=one_of(selects) or phrase(N_("none")),
                ),
            )
        elif entity.field(name).computed:
            r.add(
                f"{path}.field",
                N_("field '%(name)s' is computed; a board moves cards by setting it", name=name),
            )
        else:
            field_ok = True
    if sort is not None and not _sortable(entity, sort.removeprefix("-")):
        r.add(
            f"{path}.sort",
            N_(
                "cannot sort by '%(removeprefix)s' (json, text or unknown)",
                removeprefix=sort.removeprefix("-"),
            ),
        )
        sort = None
    if not field_ok or name is None or card is None:
        return None
    return {
        "field": name,
        "card": card or (entity.display_field,),
        "limit": limit or DEFAULT_LIMIT,
        "sort": sort or DEFAULT_SORT,
    }


def _read_card(
    r: ManifestReader, value: Mapping[str, Any], path: str, entity: EntitySpec
) -> tuple[str, ...] | None:
    """The card's fields: declared ones (any but json) or created_at/updated_at; () when not given."""
    if "card" not in value:
        return ()
    items = value["card"]
    where = f"{path}.card"
    if not isinstance(items, list | tuple) or not items:
        r.add(where, N_("expected a non-empty array of field names, got %(kind)s", kind=kind(items)))
        return None
    if len(items) > BOARD_CARD_FIELDS:
        r.add(
            where,
            N_(
                "a card shows at most %(board_card_fields)s fields, got %(items_length)s",
                board_card_fields=BOARD_CARD_FIELDS,
                items_length=len(items),
            ),
        )
        return None
    out: list[str] = []
    ok = True
    for i, item in enumerate(items):
        item_path = ix(where, i)
        if not isinstance(item, str):
            r.add(item_path, N_("expected a field name, got %(kind)s", kind=kind(item)))
            ok = False
        elif item in CARD_STANDARD or (entity.has_field(item) and entity.field(item).type != "json"):
            if item in out:
                r.add(item_path, N_("field '%(item)s' is listed twice", item=item))
                ok = False
            out.append(item)
        else:
            hint = phrase(N_(" (json fields cannot be shown on a card)")) if entity.has_field(item) else ""
            standard = (
                phrase(N_(" (of the standard fields only created_at and updated_at)"))
                if item in STANDARD_FIELDS
                else ""
            )
            r.add(
                item_path,
                N_(
                    "unknown field '%(item)s' in entity '%(name)s'%(hint)s%(standard)s",
                    item=item,
                    name=entity.name,
                    hint=hint,
                    standard=standard,
                ),
            )
            ok = False
    return tuple(out) if ok else None


def _sortable(entity: EntitySpec, name: str) -> bool:
    if name in STANDARD_FIELDS:
        return name in SORTABLE_STANDARD
    return entity.has_field(name) and entity.field(name).sortable
