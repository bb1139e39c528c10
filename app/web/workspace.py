"""The home page as a workspace: what waits for this user here (open approval tasks, unread messages),
the records changed lately that they may see, shortcuts to their plugins' pages; for platform admins,
the tenants and the plugins' health at a glance.

Records are read through the record service (tenant, `db.<entity>.select`, data scope), one short
query per entity the user may see, newest first: a row they could not open is never listed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app import messages, workflow
from app.core.i18n import N_
from app.core.models import PluginPackage, Tenant
from app.plugins import runtime
from app.web.context import TenantContext
from app.web.menu import MenuItem, plugin_menu

RECENT = 8  # records listed
PER_ENTITY = 5
INBOX = 5  # tasks and messages listed
# A plugin package's states, as the platform glance shows them (translated there with `t`).
STATE_WORDS = (N_("uploaded"), N_("installed"), N_("error"))


@dataclass(frozen=True)
class RecentRecord:
    entity_label: Any  # a manifest Label
    title: str
    link: str
    updated_at: dt.datetime | None
    updated_by_me: bool


async def recent_records(ctx: TenantContext) -> list[RecentRecord]:
    svc = ctx.records()
    found: list[RecentRecord] = []
    plugins = await runtime.enabled_for(ctx.db, ctx.tenant_id)
    for plugin in plugins:
        pages = {p.entity: p.path for p in plugin.manifest.pages if p.type == "crud" and p.entity}
        for name, page_path in pages.items():
            entity = plugin.entities.get(name)
            if (
                entity is None
                or entity.spec.display_field == "id"
                or not ctx.can(entity.permission("select"))
            ):
                continue  # (an entity without a display field is a link table: nothing to name a row by)
            rows = await svc.recent(entity, PER_ENTITY)
            names: dict[Any, str] = {}
            spec = next((f for f in entity.spec.fields if f.name == entity.spec.display_field), None)
            is_ref = spec is not None and spec.type == "reference"
            if (
                spec is not None and is_ref
            ):  # (a link table named by its reference: show the row it points at)
                ref = runtime.find_entity(plugins, spec.entity or "")
                names = await svc.labels(ref, [r.get(spec.name) for r in rows]) if ref is not None else {}
            for row in rows:
                value = row.get(entity.spec.display_field)
                value = names.get(value, value) if is_ref else value
                found.append(
                    RecentRecord(
                        entity.spec.label,
                        str(value if value not in (None, "") else row["id"]),
                        f"/p/{plugin.id}{page_path}/{row['id']}",
                        row.get("updated_at"),
                        row.get("updated_by") == ctx.user.id,
                    )
                )
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)

    def when(r: RecentRecord) -> dt.datetime:
        stamp = r.updated_at or floor
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)

    return sorted(found, key=when, reverse=True)[:RECENT]


async def shortcuts(ctx: TenantContext) -> list[MenuItem]:
    """The plugin pages the user may open, in menu order."""
    items = [i for i in await plugin_menu(ctx) if i.permission is None or ctx.can(i.permission)]
    return sorted(items, key=lambda i: (i.group, i.order, i.label))


@dataclass(frozen=True)
class PlatformGlance:
    tenants_active: int
    tenants_inactive: int
    plugins: list[PluginPackage]

    @property
    def plugins_failing(self) -> list[PluginPackage]:
        return [p for p in self.plugins if p.status == "error" or p.error_message]


async def platform_glance(ctx: TenantContext) -> PlatformGlance:
    counts = dict(
        (bool(active), int(n))
        for active, n in (
            await ctx.db.execute(sa.select(Tenant.is_active, sa.func.count()).group_by(Tenant.is_active))
        ).all()
    )
    plugins = (
        await ctx.db.scalars(
            sa.select(PluginPackage).where(PluginPackage.deleted_at.is_(None)).order_by(PluginPackage.name)
        )
    ).all()
    return PlatformGlance(counts.get(True, 0), counts.get(False, 0), list(plugins))


async def workspace(ctx: TenantContext, platform_admin: bool) -> dict[str, Any]:
    """The home page's data (template: home.html)."""
    tasks, task_total = await workflow.tasks_for(ctx.db, ctx.tenant_id, ctx.user.id, limit=INBOX)
    inbox = await messages.list_for(ctx.db, ctx.tenant_id, ctx.user.id, unread_only=True, limit=INBOX)
    return {
        "tasks": tasks,
        "task_total": task_total,
        "inbox": inbox,
        "recent": await recent_records(ctx),
        "shortcuts": await shortcuts(ctx),
        "platform": await platform_glance(ctx) if platform_admin else None,
        # the header's badges, already known: not asked again (app.web.render._badges)
        "open_tasks": task_total,
        "unread_messages": inbox.unread,
    }


__all__ = ["RecentRecord", "platform_glance", "recent_records", "shortcuts", "workspace"]
