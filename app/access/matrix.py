"""The role–permission matrix: the registry as a grid of modules, entities and operations, with one role's
grants on it, and what the role grants beyond the grid (wildcards, codes without a checkbox here).

Language-neutral: labels are manifest `Label`s or English msgids (`N_`), descriptions may be `Msg`s whose
parameters are `Label`s; the web layer shows them in the reader's language.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import EXTENSIONS_ADMIN, WORKFLOW_ADMIN, pattern_matches
from app.access.registry import all_permissions
from app.core.i18n import N_
from app.core.models import Permission
from app.manifest import EntitySpec
from app.manifest.vocabulary import DB_OPERATIONS
from app.plugins.runtime import LoadedPlugin

OPERATIONS = DB_OPERATIONS  # the grid's columns: select, insert, update, delete

# The base's permissions, split by the base module they belong to (the registry calls them all "base").
BASE_GROUPS: tuple[tuple[str, str], ...] = (
    ("admin", N_("Administration")),
    ("plugins", N_("Plugins")),
    ("workflow", N_("Workflow")),
    ("extensions", N_("Extension points")),
)
# Base tables as rows, in the order an administrator thinks of them.
BASE_FAMILIES: dict[str, str] = {
    "tenants": N_("Tenants"),
    "users": N_("User accounts"),
    "tenant_users": N_("Members"),
    "roles": N_("Roles"),
    "role_permissions": N_("Role permissions"),
    "permissions": N_("Permission registry"),
    "audit_log": N_("Audit log"),
    "event_log": N_("Event log"),
}
# app.workflow.guard.set_permission: ui.workflow.set-<entity>-<field>, to set a field an approval decides.
WORKFLOW_SET = "ui.workflow.set-"
# A plugin entity's permissions, described from its (translated) label.
ENTITY_VERBS: dict[str, str] = {
    "select": N_("View %(entity)s records"),
    "insert": N_("Create %(entity)s records"),
    "update": N_("Edit %(entity)s records"),
    "delete": N_("Delete %(entity)s records"),
}


class Describer:
    """What a registered permission allows, as the reader's language can show it: a plugin entity's four
    from its manifest label, a plugin's ui permissions from its manifest description (both may be
    translated there), the base's from the catalog (their descriptions are msgids)."""

    def __init__(self, plugins: Sequence[LoadedPlugin]) -> None:
        self.labels: dict[str, Any] = dict(BASE_FAMILIES)
        self.ui_texts: dict[str, Any] = {}
        self.specs: dict[str, EntitySpec] = {}  # the plugin entities among `labels`
        for p in plugins:
            self.labels.update({e.name: e.label for e in p.manifest.entities})
            self.specs.update({e.name: e for e in p.manifest.entities})
            self.ui_texts.update({u.code: u.description for u in p.manifest.ui_permissions})

    def label(self, family: str) -> Any:
        return self.labels.get(family, family)

    def __call__(self, perm: Permission) -> Any:
        split = _split(perm.code)
        if perm.module != "base" and split is not None:
            return N_(ENTITY_VERBS[split[1]], entity=self.label(split[0]))
        if perm.code.startswith(WORKFLOW_SET):  # registered in English only (app.workflow.guard)
            entity, _, name = perm.code.removeprefix(WORKFLOW_SET).partition("-")
            spec = self.specs.get(entity)
            fields = {f.name: f for f in spec.fields} if spec else {}
            if spec is not None and name in fields:
                return N_(
                    "Set %(entity)s → %(field)s directly, although an approval process decides it",
                    entity=spec.label,
                    field=fields[name].label,
                )
        return self.ui_texts.get(perm.code, perm.description)


def visible(
    registry: Iterable[Permission], plugins: Sequence[LoadedPlugin], *, include_platform: bool
) -> list[Permission]:
    """The permissions a tenant's pages offer: the base's (platform ones only where they count) and those of
    the tenant's enabled `plugins`."""
    enabled = {p.id for p in plugins}
    return [
        p
        for p in registry
        if (p.module == "base" and (include_platform or p.scope != "platform")) or p.module in enabled
    ]


def base_group(code: str) -> str:
    if code.startswith("plugin:"):
        return "plugins"
    if code == WORKFLOW_ADMIN or code.startswith("ui.workflow."):
        return "workflow"
    if code == EXTENSIONS_ADMIN or code.startswith("ui.extensions."):
        return "extensions"
    return "admin"


@dataclass(frozen=True)
class Cell:
    code: str
    description: Any  # an English msgid, a Msg (its parameters may be Labels) or a Label
    granted: bool  # granted by exactly this code
    via: str | None  # a wildcard grant of the role that covers it


@dataclass(frozen=True)
class EntityRow:
    family: str  # the middle part of db.<family>.<op>
    label: Any  # Label or msgid
    cells: dict[str, Cell]  # by operation; an operation the registry lacks has no cell


@dataclass(frozen=True)
class OtherRow:
    """A permission that is not one of an entity's four operations (ui elements, plugin:*, …)."""

    cell: Cell


@dataclass(frozen=True)
class Group:
    key: str  # a base group ("admin", "plugins", "workflow", "extensions") or a plugin id
    title: Any
    plugin: bool
    entities: list[EntityRow] = field(default_factory=list)
    others: list[OtherRow] = field(default_factory=list)

    @property
    def cells(self) -> list[Cell]:
        return [c for r in self.entities for c in r.cells.values()] + [o.cell for o in self.others]


@dataclass(frozen=True)
class GrantNote:
    """A grant of the role that has no checkbox on the grid, and what it means here."""

    pattern: str
    kind: str  # "wildcard" | "unknown" (matches no registered permission) | "elsewhere" | "platform"
    matches: int  # registered permissions it covers
    module: str | None = None  # for "elsewhere": the plugin the code belongs to


@dataclass(frozen=True)
class RoleMatrix:
    groups: list[Group]
    extra: list[str]  # the grants without a checkbox, one per line of the form's text box
    notes: list[GrantNote]

    @property
    def shown(self) -> frozenset[str]:
        return frozenset(c.code for g in self.groups for c in g.cells)

    @property
    def warnings(self) -> list[GrantNote]:
        return [n for n in self.notes if n.kind == "unknown"]


def _split(code: str) -> tuple[str, str] | None:
    """(family, operation) of `db.<family>.<op>` for one of the grid's operations, else None."""
    parts = code.split(".")
    if len(parts) == 3 and parts[0] == "db" and parts[2] in OPERATIONS:
        return parts[1], parts[2]
    return None


def build_matrix(
    registry: Sequence[Permission],
    grants: Iterable[str],
    plugins: Sequence[LoadedPlugin],
    *,
    include_platform: bool,
) -> RoleMatrix:
    """The grid of the base's permissions and those of `plugins` (the tenant's enabled ones), with the
    state of `grants` (one role's) on it; platform permissions only where they can count (`include_platform`:
    the system tenant)."""
    granted = set(grants)
    wildcards = sorted(g for g in granted if g.endswith("*"))
    by_plugin = {p.id: p for p in plugins}
    describe = Describer(plugins)
    order = {name: i for i, name in enumerate(BASE_FAMILIES)}
    for p in plugins:
        order.update({e.name: i for i, e in enumerate(p.manifest.entities)})

    rows: dict[str, dict[str, dict[str, Cell]]] = {}  # group -> family -> op -> cell
    others: dict[str, list[OtherRow]] = {}
    # A plugin not enabled here has no rows: its grants are listed with the extra ones.
    for perm in visible(registry, plugins, include_platform=include_platform):
        key = base_group(perm.code) if perm.module == "base" else perm.module
        split = _split(perm.code)
        via = next((w for w in wildcards if pattern_matches(w, perm.code)), None)
        cell = Cell(perm.code, describe(perm), perm.code in granted, via)
        if split is None:
            others.setdefault(key, []).append(OtherRow(cell))
        else:
            rows.setdefault(key, {}).setdefault(split[0], {})[split[1]] = cell

    groups: list[Group] = []
    keys = [k for k, _ in BASE_GROUPS] + sorted(
        by_plugin, key=lambda i: str(by_plugin[i].manifest.plugin.name)
    )
    titles = dict(BASE_GROUPS)
    for key in keys:
        if key not in rows and key not in others:
            continue
        families = sorted(rows.get(key, {}).items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        groups.append(
            Group(
                key=key,
                title=titles.get(key) or by_plugin[key].manifest.plugin.name,
                plugin=key in by_plugin,
                entities=[EntityRow(f, describe.label(f), cells) for f, cells in families],
                others=sorted(others.get(key, []), key=lambda o: o.cell.code),
            )
        )
    matrix = RoleMatrix(groups, [], [])
    shown = matrix.shown
    extra = sorted(g for g in granted if g not in shown)
    return RoleMatrix(groups, extra, notes_for(extra, registry, by_plugin, include_platform))


def notes_for(
    patterns: Iterable[str],
    registry: Sequence[Permission],
    enabled: dict[str, LoadedPlugin] | None = None,
    include_platform: bool = True,
) -> list[GrantNote]:
    """What each grant without a checkbox means: a wildcard and how many known permissions it covers
    ("unknown" when none: a typo, or a plugin that is gone), a code nobody registered, a code of a plugin
    not enabled in this tenant, or a platform permission (which counts only in the system tenant)."""
    by_code = {p.code: p for p in registry}
    notes = []
    for pattern in patterns:
        if pattern.endswith("*"):  # platform permissions count only in the system tenant
            n = sum(
                1
                for p in registry
                if pattern_matches(pattern, p.code) and (include_platform or p.scope != "platform")
            )
            notes.append(GrantNote(pattern, "wildcard" if n else "unknown", n))
            continue
        perm = by_code.get(pattern)
        if perm is None:
            notes.append(GrantNote(pattern, "unknown", 0))
        elif perm.scope == "platform" and not include_platform:
            notes.append(GrantNote(pattern, "platform", 1))
        else:
            notes.append(GrantNote(pattern, "elsewhere", 1, perm.module))
    return notes


async def role_matrix(
    session: AsyncSession, grants: Iterable[str], plugins: Sequence[LoadedPlugin], *, include_platform: bool
) -> RoleMatrix:
    return build_matrix(await all_permissions(session), grants, plugins, include_platform=include_platform)
