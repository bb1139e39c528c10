"""``[ui]``: ``[[ui.permissions]]`` and ``[[ui.pages]]`` with their columns, filters, actions and forms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.i18n import N_, phrase
from app.core.validation import ix, kind, one_of
from app.manifest.model import EntitySpec, PageSpec, UiPermission, default_label
from app.manifest.reader import ManifestReader
from app.manifest.sections.board import read_board
from app.manifest.sections.related import read_related
from app.manifest.vocabulary import (
    ACTION_KEYS,
    ACTION_NAME,
    BUILTIN_ACTIONS,
    COLUMN_KEYS,
    COLUMN_OPTION_KEYS,
    COLUMN_TYPES,
    DB_OPERATIONS,
    DB_PERMISSION,
    FILTER_KEYS,
    FILTER_MATCHES,
    FORM_FIELD_KEYS,
    FORM_GROUP_KEYS,
    FORM_KEYS,
    PAGE_KEYS,
    PAGE_PATH,
    PAGE_TYPES,
    STANDARD_FIELD_LABELS,
    STANDARD_FIELDS,
    TEXT_FILTER_TYPES,
    UI_KEYS,
    UI_PERMISSION,
    UI_PERMISSION_KEYS,
)


def read_ui(r: ManifestReader) -> tuple[tuple[PageSpec, ...], tuple[UiPermission, ...]]:
    """``[ui]``: the pages and the ``ui.*`` permissions (pages' actions may name the latter)."""
    ui = r.table(r.data, "ui", "") or {}
    r.keys(ui, UI_KEYS, "ui")
    ui_permissions = read_ui_permissions(r, ui)
    raw_permissions = ui.get("permissions")
    declared_codes = {
        item["code"]
        for item in (raw_permissions if isinstance(raw_permissions, list | tuple) else ())
        if isinstance(item, Mapping) and isinstance(item.get("code"), str)
    }
    return read_pages(r, ui, declared_codes), ui_permissions


def read_ui_permissions(r: ManifestReader, ui: Mapping[str, Any]) -> tuple[UiPermission, ...]:
    out: list[UiPermission] = []
    seen: set[str] = set()
    for i, item in enumerate(r.array(ui, "permissions", "ui")):
        path = ix("ui.permissions", i)
        if not isinstance(item, Mapping):
            r.add(path, N_("expected a table {code, description}, got %(kind)s", kind=kind(item)))
            continue
        r.keys(item, UI_PERMISSION_KEYS, path, required=("code", "description"))
        code = r.text(item, "code", path)
        description = r.label(item, "description", path)
        if code is None:
            continue
        if not UI_PERMISSION.match(code):
            r.add(
                f"{path}.code",
                N_(
                    "permission code '%(code)s' is not valid (ui.<plugin>.<element>, lowercase words joined by '-' or '_')",
                    code=code,
                ),
            )
            continue
        if r.plugin_id and code.split(".")[1] != r.plugin_id:
            r.add(
                f"{path}.code",
                N_(
                    "permission code '%(code)s' must start with 'ui.%(plugin_id)s.'",
                    code=code,
                    plugin_id=r.plugin_id,
                ),
            )
            continue
        if code in seen:
            r.add(f"{path}.code", N_("permission '%(code)s' is declared twice", code=code))
            continue
        seen.add(code)
        if description is not None:
            out.append(UiPermission(code, description))
    return tuple(out)


def read_pages(r: ManifestReader, ui: Mapping[str, Any], ui_codes: set[str]) -> tuple[PageSpec, ...]:
    out: list[PageSpec] = []
    paths: dict[str, int] = {}
    for i, item in enumerate(r.array(ui, "pages", "ui")):
        path = ix("ui.pages", i)
        if not isinstance(item, Mapping):
            r.add(path, N_("expected a table, got %(kind)s", kind=kind(item)))
            continue
        page = read_page(r, item, path, ui_codes)
        if page is None:
            continue
        if page.path in paths:
            r.add(
                f"{path}.path",
                N_(
                    "path '%(path)s' is already used by ui.pages[%(paths)s]",
                    path=page.path,
                    paths=paths[page.path],
                ),
            )
            continue
        paths[page.path] = i
        out.append(page)
    return tuple(out)


def check_page_path(r: ManifestReader, page_path: str, path: str) -> bool:
    """The rules for a page's URL path (mounted under the tenant's URL); ``path`` is the key's own path
    (``ui.pages[0].path``)."""
    if not PAGE_PATH.match(page_path):
        r.add(
            path,
            N_(
                "path '%(page_path)s' must start with '/' and use only URL-safe characters (letters, digits, '-', '_', '.', '~'; no empty, '.' or '..' segments)",
                page_path=page_path,
            ),
        )
        return False
    if any(seg.lower().startswith("api") for seg in page_path.split("/")):
        # Paths under /api/ are the JSON API's (token auth, no CSRF check): a page must never look like one.
        r.add(
            path,
            N_(
                "path '%(page_path)s' has a segment starting with 'api', which the portal keeps for its JSON API; choose another path",
                page_path=page_path,
            ),
        )
        return False
    return True


def read_page(r: ManifestReader, raw: Mapping[str, Any], path: str, ui_codes: set[str]) -> PageSpec | None:
    r.keys(raw, PAGE_KEYS, path, required=("name", "path", "type"))
    name = r.label(raw, "name", path) or ""
    page_path = r.text(raw, "path", path)
    if page_path is not None and not check_page_path(r, page_path, f"{path}.path"):
        page_path = None
    ptype = r.text(raw, "type", path)
    if ptype is not None and ptype not in PAGE_TYPES:
        r.add(
            f"{path}.type",
            N_(
                "unknown page type '%(ptype)s' (expected one of: %(choices)s)",
                ptype=ptype,
                choices=one_of(PAGE_TYPES),
            ),
        )
        ptype = None
    icon = r.text(raw, "icon", path)
    menu_group = r.label(raw, "menu_group", path)

    entity_name = r.text(raw, "entity", path)
    entity: EntitySpec | None = None
    if entity_name is not None:
        entity = r.entities.get(entity_name)
        if entity is None and ptype != "crud":
            entity = r.ctx.foreign_entity_specs.get(entity_name)
        if entity is None:
            known = (
                sorted(r.entities) if ptype == "crud" else sorted({*r.entities, *r.ctx.foreign_entity_specs})
            )
            r.add(
                f"{path}.entity",
                N_(
                    "unknown entity '%(entity_name)s' (this plugin's entities: %(value)s)",
                    entity_name=entity_name,
                    value=one_of(known) or phrase(N_("none")),
                )
                if ptype == "crud"
                else N_(
                    "unknown entity '%(entity_name)s' (known entities: %(value)s)",
                    entity_name=entity_name,
                    value=one_of(known) or phrase(N_("none")),
                ),
            )
    elif ptype == "crud":
        r.add(f"{path}.entity", N_("crud pages need an entity"))

    columns = filters = actions = None
    form = None
    related = board = None
    config_keys = [k for k in ("columns", "filters", "actions", "form", "related", "board") if k in raw]
    if ptype is not None and ptype != "crud":
        for key in config_keys:
            r.add(f"{path}.{key}", N_("'%(key)s' only applies to crud pages", key=key))
    elif entity is not None:
        if "columns" in raw:
            columns = read_columns(r, raw["columns"], f"{path}.columns", entity)
        if "filters" in raw:
            filters = read_filters(r, raw["filters"], f"{path}.filters", entity)
        if "actions" in raw:
            actions = read_actions(r, raw["actions"], f"{path}.actions", ui_codes)
        if "form" in raw:
            form = read_form(r, raw["form"], f"{path}.form", entity)
        if "related" in raw:
            related = read_related(r, raw["related"], f"{path}.related", entity)
        if "board" in raw:
            board = read_board(r, raw["board"], f"{path}.board", entity)

    if page_path is None or ptype is None:
        return None
    return PageSpec(
        name=name,
        path=page_path,
        type=ptype,
        entity=entity_name,
        icon=icon,
        menu_group=menu_group,
        columns=columns,
        filters=filters,
        actions=actions,
        form=form,
        related=related,
        board=board,
    )


def read_field_ref(
    r: ManifestReader, value: Any, path: str, entity: EntitySpec, *, standard: bool
) -> str | None:
    if not isinstance(value, str):
        r.add(path, N_("expected a field name, got %(kind)s", kind=kind(value)))
        return None
    if entity.has_field(value) or (standard and value in STANDARD_FIELDS):
        return value
    hint = phrase(N_(" (standard fields are not editable)")) if value in STANDARD_FIELDS else ""
    r.add(
        path,
        N_(
            "unknown field '%(value)s' in entity '%(name)s'%(hint)s", value=value, name=entity.name, hint=hint
        ),
    )
    return None


def field_label(r: ManifestReader, entity: EntitySpec, name: str) -> str:
    if entity.has_field(name):
        return entity.field(name).label
    return STANDARD_FIELD_LABELS.get(name) or default_label(name)


def read_columns(r: ManifestReader, value: Any, path: str, entity: EntitySpec) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list | tuple):
        r.add(path, N_("expected an array of columns, got %(kind)s", kind=kind(value)))
        return ()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        item_path = ix(path, i)
        if isinstance(item, Mapping):
            r.keys(item, COLUMN_KEYS, item_path, required=("field",))
            name = (
                read_field_ref(r, item.get("field"), f"{item_path}.field", entity, standard=True)
                if "field" in item
                else None
            )
            label = r.label(item, "label", item_path)
            ctype = r.text(item, "type", item_path)
            if ctype is not None and ctype not in COLUMN_TYPES:
                r.add(
                    f"{item_path}.type",
                    N_(
                        "unknown column type '%(ctype)s' (expected one of: %(choices)s)",
                        ctype=ctype,
                        choices=one_of(COLUMN_TYPES),
                    ),
                )
                ctype = None
            width = r.integer(item, "width", item_path, 1, 2000)
            sortable = r.flag(item, "sortable", item_path)
            hidden = r.flag(item, "hidden", item_path)
            options = read_column_options(r, item, item_path)
        else:
            name = read_field_ref(r, item, item_path, entity, standard=True)
            label = ctype = width = sortable = hidden = None
            options = ()
        if name is None:
            continue
        if name in seen:
            r.add(item_path, N_("column '%(name)s' is listed twice", name=name))
            continue
        seen.add(name)
        out.append(
            {
                "field": name,
                "label": label or field_label(r, entity, name),
                "type": ctype,
                "width": width,
                "sortable": True if sortable is None else sortable,
                "hidden": bool(hidden),
                "options": options,
            }
        )
    return tuple(out)


def read_column_options(
    r: ManifestReader, item: Mapping[str, Any], path: str
) -> tuple[dict[str, str | None], ...]:
    out: list[dict[str, str | None]] = []
    for i, option in enumerate(r.array(item, "options", path)):
        option_path = ix(f"{path}.options", i)
        if not isinstance(option, Mapping):
            r.add(option_path, N_("expected a table {value, label, color}, got %(kind)s", kind=kind(option)))
            continue
        r.keys(option, COLUMN_OPTION_KEYS, option_path, required=("value",))
        value = r.text(option, "value", option_path)
        if value is None:
            continue
        out.append(
            {
                "value": value,
                "label": r.label(option, "label", option_path) or value,
                "color": r.text(option, "color", option_path),
            }
        )
    return tuple(out)


def read_filters(r: ManifestReader, value: Any, path: str, entity: EntitySpec) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list | tuple):
        r.add(path, N_("expected an array of filters, got %(kind)s", kind=kind(value)))
        return ()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        item_path = ix(path, i)
        if isinstance(item, Mapping):
            r.keys(item, FILTER_KEYS, item_path, required=("field",))
            name = (
                read_field_ref(r, item.get("field"), f"{item_path}.field", entity, standard=True)
                if "field" in item
                else None
            )
            label = r.label(item, "label", item_path)
            match = item.get("match")
        else:
            name = read_field_ref(r, item, item_path, entity, standard=True)
            label = match = None
        if name is None:
            continue
        if match is not None:
            if match not in FILTER_MATCHES:
                r.add(
                    f"{item_path}.match",
                    N_(
                        "expected one of %(choices)s, got %(match)s",
                        choices=one_of(FILTER_MATCHES),
                        match=repr(match),
                    ),
                )
                continue
            if not (entity.has_field(name) and entity.field(name).type in TEXT_FILTER_TYPES):
                r.add(
                    f"{item_path}.match",
                    N_("only filters on %(choices)s fields have a match", choices=one_of(TEXT_FILTER_TYPES)),
                )
                continue
        if entity.has_field(name) and entity.field(name).type in ("json", "file", "image"):
            r.add(
                item_path,
                N_("%(type)s field '%(name)s' cannot be a filter", type=entity.field(name).type, name=name),
            )
            continue
        if name in seen:
            r.add(item_path, N_("filter '%(name)s' is listed twice", name=name))
            continue
        seen.add(name)
        out.append(
            {"field": name, "label": label or field_label(r, entity, name)}
            | ({"match": match} if match else {})
        )
    return tuple(out)


def read_actions(r: ManifestReader, value: Any, path: str, ui_codes: set[str]) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list | tuple):
        r.add(path, N_("expected an array of actions, got %(kind)s", kind=kind(value)))
        return ()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        item_path = ix(path, i)
        permission: str | None = None
        label: str | None = None
        if isinstance(item, str):
            name: str | None = item
            if item not in BUILTIN_ACTIONS:
                r.add(
                    item_path,
                    N_(
                        "unknown action '%(item)s' (built-in actions: %(choices)s; custom actions are tables {name, label, permission})",
                        item=item,
                        choices=one_of(BUILTIN_ACTIONS),
                    ),
                )
                continue
        elif isinstance(item, Mapping):
            r.keys(item, ACTION_KEYS, item_path, required=("name",))
            name = r.text(item, "name", item_path)
            if name is not None and not ACTION_NAME.match(name):
                r.add(
                    f"{item_path}.name",
                    N_(
                        "action name '%(name)s' is not valid (lowercase letters, digits, '-' and '_')",
                        name=name,
                    ),
                )
                name = None
            label = r.label(item, "label", item_path)
            permission = r.text(item, "permission", item_path)
            if permission is not None and not check_permission_ref(
                r, permission, f"{item_path}.permission", ui_codes
            ):
                permission = None
        else:
            r.add(
                item_path,
                N_(
                    "expected an action name or a table {name, label, permission}, got %(kind)s",
                    kind=kind(item),
                ),
            )
            continue
        if name is None:
            continue
        if name in seen:
            r.add(item_path, N_("action '%(name)s' is listed twice", name=name))
            continue
        seen.add(name)
        out.append({"name": name, "label": label or default_label(name), "permission": permission})
    return tuple(out)


def check_permission_ref(r: ManifestReader, code: str, path: str, ui_codes: set[str]) -> bool:
    if code.startswith("ui."):
        if code not in ui_codes:
            r.add(path, N_("permission '%(code)s' is not declared in [[ui.permissions]]", code=code))
            return False
        return True
    match = DB_PERMISSION.match(code)
    if match is None:
        r.add(
            path,
            N_(
                "permission '%(code)s' is neither a declared ui.* permission nor db.<entity>.<operation>",
                code=code,
            ),
        )
        return False
    entity, operation = match.groups()
    if entity not in r.entities and entity not in r.ctx.foreign_entity_specs:
        r.add(path, N_("permission '%(code)s' names unknown entity '%(entity)s'", code=code, entity=entity))
        return False
    if operation not in DB_OPERATIONS:
        r.add(
            path,
            N_(
                "permission '%(code)s': unknown operation '%(operation)s' (expected one of: %(choices)s)",
                code=code,
                operation=operation,
                choices=one_of(DB_OPERATIONS),
            ),
        )
        return False
    return True


def read_form(r: ManifestReader, value: Any, path: str, entity: EntitySpec) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        r.add(path, N_("expected a table {groups, fields}, got %(kind)s", kind=kind(value)))
        return None
    r.keys(value, FORM_KEYS, path)
    seen: dict[str, str] = {}
    groups: list[dict[str, Any]] = []
    for i, group in enumerate(r.array(value, "groups", path)):
        group_path = ix(f"{path}.groups", i)
        if not isinstance(group, Mapping):
            r.add(group_path, N_("expected a table {title, fields}, got %(kind)s", kind=kind(group)))
            continue
        r.keys(group, FORM_GROUP_KEYS, group_path, required=("fields",))
        title = r.label(group, "title", group_path)
        fields = (
            read_form_fields(r, group.get("fields"), f"{group_path}.fields", entity, seen)
            if "fields" in group
            else ()
        )
        groups.append({"title": title, "fields": fields})
    loose = read_form_fields(r, value["fields"], f"{path}.fields", entity, seen) if "fields" in value else ()
    if "groups" not in value and "fields" not in value:
        r.add(path, N_("a form needs 'fields' or 'groups'"))
    elif not seen and not _form_has_entries(value):
        r.add(path, N_("a form needs at least one field"))
    missing = [f.name for f in entity.fields if f.required and not f.has_default and f.name not in seen]
    if seen and missing:
        r.add(
            path,
            (
                N_(
                    "the form leaves out required fields %(choices)s (records could not be created)",
                    choices=one_of(repr(m) for m in missing),
                )
                if len(missing) > 1
                else N_(
                    "the form leaves out required field %(choices)s (records could not be created)",
                    choices=one_of(repr(m) for m in missing),
                )
            ),
        )
    return {"groups": tuple(groups), "fields": loose}


def read_form_fields(
    r: ManifestReader, value: Any, path: str, entity: EntitySpec, seen: dict[str, str]
) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list | tuple):
        r.add(path, N_("expected an array of field names, got %(kind)s", kind=kind(value)))
        return ()
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        item_path = ix(path, i)
        if isinstance(item, Mapping):
            r.keys(item, FORM_FIELD_KEYS, item_path, required=("field",))
            name = (
                read_field_ref(r, item.get("field"), f"{item_path}.field", entity, standard=False)
                if "field" in item
                else None
            )
            label = r.label(item, "label", item_path)
            help_text = r.label(item, "help", item_path)
            readonly = r.flag(item, "readonly", item_path)
        else:
            name = read_field_ref(r, item, item_path, entity, standard=False)
            label = help_text = None
            readonly = None
        if name is None:
            continue
        if name in seen:
            r.add(
                item_path,
                N_("field '%(name)s' is already in the form (at %(index)s)", name=name, index=seen[name]),
            )
            continue
        seen[name] = item_path
        spec = entity.field(name)
        out.append(
            {
                "field": name,
                "label": label or spec.label,
                "help": help_text if help_text is not None else spec.help,
                "readonly": bool(readonly),
            }
        )
    return tuple(out)


def _form_has_entries(form: Mapping[str, Any]) -> bool:
    """Whether a form lists any field at all (valid or not)."""
    loose = form.get("fields")
    if isinstance(loose, list | tuple) and loose:
        return True
    groups = form.get("groups")
    if not isinstance(groups, list | tuple):
        return False
    return any(
        isinstance(g, Mapping) and isinstance(g.get("fields"), list | tuple) and g["fields"] for g in groups
    )
