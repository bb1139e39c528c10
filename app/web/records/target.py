"""Which plugin page a URL names (longest-prefix match over the tenant's enabled plugins), the built-in
actions that page offers and the gates around them, and the context every record page shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.exceptions import PermissionDeniedException

from app.core.errors import NotFound
from app.core.i18n import N_
from app.manifest import BUILTIN_ACTIONS, PageSpec, default_label
from app.plugins import runtime
from app.plugins.runtime import EntityRef, LoadedPlugin
from app.web.context import RequestContext

# Which database operation each built-in action needs.
ACTION_OPS = {
    "create": "insert",
    "edit": "update",
    "delete": "delete",
    "restore": "delete",
    "bulk_delete": "delete",
    "import": "insert",
    "export": "select",
}


@dataclass
class Target:
    plugins: list[LoadedPlugin]
    plugin: LoadedPlugin
    spec: PageSpec
    rest: list[str]
    url: str  # this page's URL, /t/<slug>/p/<plugin><path>
    entity: EntityRef | None = None

    @property
    def ref(self) -> EntityRef:
        assert self.entity is not None
        return self.entity

    @property
    def has_page_code(self) -> bool:
        """A custom or dashboard page rendered by the plugin's WebAssembly."""
        return self.spec.type in {"custom", "dashboard"} and bool(self.plugin.wasm_sha256)


async def resolve(ctx: RequestContext, plugin_id: str, path: str) -> Target:
    plugins = await runtime.enabled_for(ctx.db, ctx.tenant_id)
    plugin = next((p for p in plugins if p.id == plugin_id), None)
    if plugin is None:
        raise NotFound(N_("Plugin %(plugin_id)s is not enabled in this tenant", plugin_id=repr(plugin_id)))
    wanted = "/" + path.strip("/")
    best: PageSpec | None = None
    for spec in plugin.manifest.pages:
        if (wanted == spec.path or wanted.startswith(spec.path + "/")) and (
            best is None or len(spec.path) > len(best.path)
        ):
            best = spec
    if best is None:
        raise NotFound(N_("%(name)s has no page %(wanted)s", name=plugin.manifest.plugin.name, wanted=wanted))
    rest = [s for s in wanted[len(best.path) :].split("/") if s]
    target = Target(plugins, plugin, best, rest, f"/t/{ctx.tenant.slug}/p/{plugin.id}{best.path}")  # type: ignore[union-attr]
    if best.type == "crud":
        target.entity = plugin.entities.get(best.entity or "")
        if target.entity is None:
            raise NotFound(N_("Page %(path)s names an unknown entity", path=best.path))
    return target


def page_url_for(ctx: RequestContext, plugins: list[LoadedPlugin], entity: str) -> str | None:
    """The crud page listing `entity` (for links from reference cells and dashboard cards)."""
    for plugin in plugins:
        for spec in plugin.manifest.pages:
            if spec.type == "crud" and spec.entity == entity:
                return f"/t/{ctx.tenant.slug}/p/{plugin.id}{spec.path}"  # type: ignore[union-attr]
    return None


def record_link_base(ctx: RequestContext, target: Target, entity: str | None) -> str | None:
    """The URL prefix of `entity`'s record pages, when this user may see them (None: no link)."""
    url = page_url_for(ctx, target.plugins, entity or "")
    return url if url and ctx.can(f"db.{entity}.select") else None


# --- actions -------------------------------------------------------------------------------------


def actions(spec: PageSpec) -> dict[str, dict[str, Any]]:
    """Built-in actions the page offers (all of them when the manifest does not say)."""
    if spec.actions is None:
        return {
            name: {"name": name, "label": default_label(name), "permission": None} for name in BUILTIN_ACTIONS
        }
    return {a["name"]: a for a in spec.actions if a["name"] in BUILTIN_ACTIONS}


def allowed(ctx: RequestContext, target: Target) -> dict[str, bool]:
    """Which actions to show: offered by the page and permitted to this user."""
    offered = actions(target.spec)
    out = {}
    for name, op in ACTION_OPS.items():
        action = offered.get(name)
        out[name] = (
            bool(action)
            and ctx.can(target.ref.permission(op))
            and (not action["permission"] or ctx.can(action["permission"]))  # type: ignore[index]
        )
    return out


def need_action(ctx: RequestContext, target: Target, name: str) -> None:
    """Refuse an action the page does not offer (404) or whose extra permission is missing (403).
    The db.<entity>.<op> permission itself is checked by the record service."""
    action = actions(target.spec).get(name)
    if action is None:
        raise NotFound(
            N_(
                "The page %(name)s has no %(replace)s action",
                name=target.spec.name,
                replace=name.replace("_", " "),
            )
        )
    if action["permission"] and not ctx.can(action["permission"]):
        raise PermissionDeniedException(
            detail=N_("You need the permission %(perm)s in this tenant", perm=action["permission"])
        )


# --- shared by the page handlers -----------------------------------------------------------------


def common(
    ctx: RequestContext, target: Target, allowed_actions: dict[str, bool] | None = None
) -> dict[str, Any]:
    if allowed_actions is None:
        allowed_actions = allowed(ctx, target) if target.entity else {}
    return {
        "target": target,
        "spec": target.spec,
        "entity": target.entity,
        "page_url": target.url,
        "plugin": target.plugin,
        "allowed": allowed_actions,
    }


def atomic(ctx: RequestContext) -> Any:
    """A savepoint around one page action: when the action fails (a unique clash on PostgreSQL aborts
    the transaction), rolling back to it keeps the session usable for re-rendering the form."""
    return ctx.db.begin_nested()
