"""The navigation menu: the base items (a constant, held by each app's AppServices.menu) and the pages of
the tenant's plugins, each shown only when `can()` allows it."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.i18n import N_
from app.web.context import RequestContext


@dataclass(frozen=True)
class MenuItem:
    group: str
    label: str
    path: str  # relative to /t/<tenant>
    permission: str | None = None  # None: any member
    icon: str = ""
    order: int = 100


# Labels in English, marked for the catalog: the menu shows them in the reader's language.
BASE_MENU: tuple[MenuItem, ...] = (
    MenuItem("", N_("Home"), "/", order=0),
    MenuItem(N_("Administration"), N_("Members"), "/admin/members", "db.tenant_users.select", order=10),
    MenuItem(N_("Administration"), N_("Roles"), "/admin/roles", "db.roles.select", order=20),
    MenuItem(N_("Administration"), N_("Permissions explain"), "/admin/explain", "ui.admin.explain", order=30),
    MenuItem(N_("Administration"), N_("Audit log"), "/admin/audit", "db.audit_log.select", order=40),
    MenuItem(N_("Administration"), N_("Event log"), "/admin/events", "db.event_log.select", order=45),
    MenuItem(N_("Administration"), N_("Plugins"), "/admin/plugins", "plugin:view", order=50),
    MenuItem(
        N_("Administration"), N_("Approval processes"), "/admin/workflow", "ui.workflow.admin", order=55
    ),
    MenuItem(
        N_("Administration"), N_("Extension points"), "/admin/extensions", "ui.extensions.admin", order=57
    ),
    MenuItem(N_("Platform"), N_("Tenants"), "/admin/tenants", "db.tenants.select", order=10),
    MenuItem(N_("Account"), N_("Messages"), "/messages", None, order=1),
    MenuItem(N_("Account"), N_("Approval tasks"), "/tasks", None, order=2),
    MenuItem(N_("Account"), N_("Profile"), "/account", None, order=5),
    MenuItem(N_("Account"), N_("API tokens"), "/account/tokens", None, order=10),
)


@dataclass(frozen=True)
class Menu:
    """An app's base navigation items (AppServices.menu)."""

    items: tuple[MenuItem, ...] = BASE_MENU


async def plugin_menu(ctx: RequestContext) -> list[MenuItem]:
    """Pages of the plugins enabled in this tenant, grouped by their menu_group."""
    from app.plugins import runtime

    if ctx.user is None or ctx.tenant is None:
        return []
    items = []
    for plugin in await runtime.enabled_for(ctx.db, ctx.tenant.id):
        for order, spec in enumerate(plugin.manifest.pages):
            perm = f"db.{spec.entity}.select" if spec.entity else None
            items.append(
                MenuItem(
                    spec.menu_group or plugin.manifest.plugin.name,
                    spec.name,
                    f"/p/{plugin.id}{spec.path}",
                    perm,
                    spec.icon or "",
                    order,
                )
            )
    return items


def build_menu(ctx: RequestContext, extra: list[MenuItem] | None = None) -> list[tuple[str, list[MenuItem]]]:
    if ctx.user is None or ctx.tenant is None:
        return []
    groups: dict[str, list[MenuItem]] = {}
    base = ctx.services.menu.items if ctx.services is not None else BASE_MENU
    for item in sorted([*base, *(extra or [])], key=lambda i: (i.group != "", i.group, i.order, i.label)):
        if item.permission is None or ctx.can(item.permission):
            groups.setdefault(item.group, []).append(item)
    order = [
        "",
        *sorted(g for g in groups if g not in {"", "Administration", "Platform", "Account"}),
        "Administration",
        "Platform",
        "Account",
    ]
    return [(g, groups[g]) for g in order if g in groups]
