"""Names the portal's base owns, which no plugin may claim.

An entity `tenants` once re-registered `db.tenants.*` as a tenant permission, so every tenant Admin
could manage all tenants. The names are derived from the base's own definitions, the SQLAlchemy
metadata of `app.core.models` and the base permission definitions, never from a list kept by hand: a
base table or permission added later is reserved the moment it exists.
"""

from __future__ import annotations

from functools import cache

from app.access.permissions import (
    BASE_PERMISSIONS,
    EXTENSION_PERMISSIONS,
    VIEW_PERMISSIONS,
    WORKFLOW_PERMISSIONS,
    PermissionDef,
)
from app.core.i18n import N_


def base_permissions() -> list[PermissionDef]:
    """Every permission the base registers at start-up."""
    from app.installs.lifecycle import PLATFORM_PERMISSIONS  # lifecycle imports this module

    return [
        *BASE_PERMISSIONS,
        *PLATFORM_PERMISSIONS,
        *WORKFLOW_PERMISSIONS,
        *EXTENSION_PERMISSIONS,
        *VIEW_PERMISSIONS,
    ]


@cache
def base_tables() -> frozenset[str]:
    from app.core.models import Tenant

    return frozenset(Tenant.metadata.tables)


def _families(prefix: str) -> frozenset[str]:
    """`<family>` of the base's `<prefix>.<family>.<...>` permission codes."""
    return frozenset(p.code.split(".")[1] for p in base_permissions() if p.code.startswith(prefix + "."))


@cache
def base_db_families() -> frozenset[str]:
    """Names X whose `db.X.*` permissions are the base's (tables, and guarded things such as role_permissions)."""
    return _families("db")


@cache
def base_ui_families() -> frozenset[str]:
    """Names X whose `ui.X.*` permissions are the base's: a plugin with id X would share that namespace."""
    return _families("ui")


@cache
def base_modules() -> frozenset[str]:
    return frozenset(p.module for p in base_permissions())


def entity_name_clash(name: str) -> str | None:
    """Why a plugin entity may not be called `name` (its `db.<name>.*` codes would be the base's)."""
    if name in base_tables():
        return N_("'%(name)s' is a base table of the portal; choose another name", name=name)
    if name in base_db_families():
        return N_(
            "'%(name)s' names base permissions of the portal (db.%(name)s.*); choose another name", name=name
        )
    return None


def plugin_id_clash(plugin_id: str) -> str | None:
    """Why a plugin may not have the id `plugin_id` (its module name or ui.<id>.* codes are the base's)."""
    if plugin_id in base_modules():
        return N_(
            "plugin id '%(plugin_id)s' is a module name of the portal's base; choose another id",
            plugin_id=plugin_id,
        )
    if plugin_id in base_ui_families():
        return N_(
            "plugin id '%(plugin_id)s' names base permissions of the portal (ui.%(plugin_id)s.*); choose another id",
            plugin_id=plugin_id,
        )
    return None
