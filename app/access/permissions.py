"""Permission strings, the base registry entries, and the compiled per-user permission set."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.core.i18n import N_
from app.core.models import Permission

log = logging.getLogger("portal.access")

PERMISSION_RE = re.compile(r"^(db|ui)\.[a-z0-9_-]+\.[a-z0-9_*-]+$|^plugin:[a-z]+$")
GRANT_RE = re.compile(
    r"^\*$|^(db|ui)\.\*$|^(db|ui)\.[a-z0-9_-]+\.\*$|^(db|ui)\.[a-z0-9_-]+\.[a-z0-9_-]+$|^plugin:\*$|^plugin:[a-z]+$"
)


@dataclass(frozen=True)
class PermissionDef:
    code: str
    description: str
    module: str = "base"
    scope: str = "tenant"  # 'platform': only a grant in the system tenant counts


def _crud(table: str, descriptions: tuple[str, str, str, str], scope: str = "tenant") -> list[PermissionDef]:
    """The four permissions of a base table; `descriptions` for select, insert, update, delete."""
    verbs = ("select", "insert", "update", "delete")
    return [
        PermissionDef(f"db.{table}.{v}", d, "base", scope) for v, d in zip(verbs, descriptions, strict=True)
    ]


# Descriptions in English, marked for the catalog: the role editor shows them in the reader's language.
BASE_PERMISSIONS: list[PermissionDef] = [
    *_crud(
        "tenants",
        (
            N_("View tenants (organizations) of the platform"),
            N_("Create tenants (organizations) of the platform"),
            N_("Edit tenants (organizations) of the platform"),
            N_("Delete tenants (organizations) of the platform"),
        ),
        scope="platform",
    ),
    *_crud(
        "users",
        (
            N_("View user accounts"),
            N_("Create user accounts"),
            N_("Edit user accounts"),
            N_("Delete user accounts"),
        ),
    ),
    *_crud(
        "tenant_users",
        (
            N_("View members of the tenant and their role"),
            N_("Create members of the tenant and their role"),
            N_("Edit members of the tenant and their role"),
            N_("Delete members of the tenant and their role"),
        ),
    ),
    *_crud(
        "roles",
        (
            N_("View roles of the tenant"),
            N_("Create roles of the tenant"),
            N_("Edit roles of the tenant"),
            N_("Delete roles of the tenant"),
        ),
    ),
    PermissionDef("db.role_permissions.select", N_("View which permissions each role grants")),
    PermissionDef("db.role_permissions.insert", N_("Grant permissions to roles")),
    PermissionDef("db.role_permissions.delete", N_("Revoke permissions from roles")),
    PermissionDef("db.permissions.select", N_("View the permission registry")),
    PermissionDef("db.audit_log.select", N_("View the audit log")),
    PermissionDef("db.event_log.select", N_("View the event log and each event's deliveries to plugins")),
    PermissionDef("ui.admin.explain", N_("Use the permission explain tool")),
]
# The admin permissions of base modules above this one (workflow, extensions): defined here so that the
# names the base reserves (app.installs.reserved) are known without importing those modules.
WORKFLOW_ADMIN = "ui.workflow.admin"
EXTENSIONS_ADMIN = "ui.extensions.admin"
# Saved views of generated list pages (app.records.views): anyone who may see a list keeps private views
# of it; sharing one with roles, and managing the views others shared, need these.
VIEWS_SHARE = "ui.views.share"
VIEWS_ADMIN = "ui.views.admin"
WORKFLOW_PERMISSIONS = [
    PermissionDef(
        WORKFLOW_ADMIN, N_("Approval processes: define them, reassign tasks, retry stuck approvals")
    )
]
EXTENSION_PERMISSIONS = [
    PermissionDef(
        EXTENSIONS_ADMIN,
        N_(
            "Extension points: configure conditions, approver rules, record validators and auto-login verifiers"
        ),
    )
]


VIEW_PERMISSIONS = [
    PermissionDef(VIEWS_SHARE, N_("Saved list views: share your views with roles of the tenant")),
    PermissionDef(VIEWS_ADMIN, N_("Saved list views: rename, re-share and delete the views others shared")),
]


def is_valid_grant(pattern: str) -> bool:
    return bool(GRANT_RE.match(pattern))


def pattern_matches(pattern: str, permission: str) -> bool:
    """Casbin keyMatch restricted to trailing wildcards, the only form grants may take."""
    if pattern.endswith("*"):
        return permission.startswith(pattern[:-1])
    return pattern == permission


@dataclass(frozen=True)
class Grant:
    pattern: str
    role_id: str
    role_name: str
    tenant_id: str


@dataclass
class PermissionSet:
    """A user's grants in one tenant, compiled for O(1)-ish checks.

    `tenant_grants` come from the user's role in the tenant, `system_grants` from their role in the
    system tenant; platform-scoped permissions only count from the latter.
    """

    tenant_grants: tuple[Grant, ...] = ()
    system_grants: tuple[Grant, ...] = ()
    platform_codes: frozenset[str] = frozenset()
    _exact: frozenset[str] = field(init=False, default=frozenset())
    _prefixes: tuple[str, ...] = field(init=False, default=())
    _sys_exact: frozenset[str] = field(init=False, default=frozenset())
    _sys_prefixes: tuple[str, ...] = field(init=False, default=())
    _memo: dict[str, bool] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        def split(grants: Iterable[Grant]) -> tuple[frozenset[str], tuple[str, ...]]:
            pats = [g.pattern for g in grants]
            return (
                frozenset(p for p in pats if not p.endswith("*")),
                tuple(sorted({p[:-1] for p in pats if p.endswith("*")})),
            )

        self._exact, self._prefixes = split(self.tenant_grants)
        self._sys_exact, self._sys_prefixes = split(self.system_grants)

    def allows(self, permission: str) -> bool:
        hit = self._memo.get(permission)
        if hit is not None:
            return hit
        result = permission in self._sys_exact or permission.startswith(self._sys_prefixes)
        if not result and permission not in self.platform_codes:
            result = permission in self._exact or permission.startswith(self._prefixes)
        self._memo[permission] = result
        return result

    def effective(self, registry: Iterable[str]) -> list[str]:
        return sorted(code for code in registry if self.allows(code))


class PermissionTaken(Conflict):
    """A code is registered for another module or scope: a code's owner and scope never change."""


async def register_permissions(
    session: AsyncSession, defs: Iterable[PermissionDef], *, authoritative: bool = False
) -> None:
    """Insert new registry rows and refresh descriptions (idempotent; runs at start-up and plugin install).

    A permission code belongs to one module, with one scope, for ever: re-registering it for another
    module or scope is refused (a plugin entity `tenants` once turned the platform-only `db.tenants.*`
    into tenant permissions that every tenant Admin held). Only the base's own definitions at start-up
    are `authoritative`: they take back a code a database lost before this rule existed."""
    wanted: dict[str, PermissionDef] = {}
    for d in defs:
        first = wanted.setdefault(d.code, d)
        if (first.module, first.scope) != (d.module, d.scope):
            raise PermissionTaken(f"Permission {d.code} is declared for both {_owner(first)} and {_owner(d)}")
    existing = {
        p.code: p
        for p in (await session.scalars(select(Permission).where(Permission.code.in_(list(wanted))))).all()
    }
    for d in wanted.values():
        row = existing.get(d.code)
        if row is not None and (row.module, row.scope) != (d.module, d.scope) and not authoritative:
            raise PermissionTaken(
                f"Permission {d.code} belongs to {_owner(row)}; it cannot be registered for {_owner(d)}"
            )
    for d in wanted.values():
        row = existing.get(d.code)
        if row is None:
            session.add(Permission(code=d.code, description=d.description, module=d.module, scope=d.scope))
        else:
            if (row.module, row.scope) != (d.module, d.scope):
                log.warning(
                    "Permission %s was registered for %s; restored to %s", d.code, _owner(row), _owner(d)
                )
            row.description, row.module, row.scope = d.description, d.module, d.scope
    await session.flush()


def _owner(p: PermissionDef | Permission) -> str:
    return f"module '{p.module}' ({p.scope} scope)"


async def platform_codes(session: AsyncSession) -> frozenset[str]:
    rows = await session.scalars(select(Permission.code).where(Permission.scope == "platform"))
    return frozenset(rows.all())
