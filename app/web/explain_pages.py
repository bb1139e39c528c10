"""The explain page: "may this member do that here, and why?", answered in words with role names.

The member and the permission are picked by searching (name or email; a permission's words, in the
reader's language, or its code): as you type, htmx fills a list under each field from
`/admin/explain/choices/<field>`; without script the page itself lists the matches when what was sent
names no single member or permission, and each match is a link that asks again with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import get
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.access.explain import NOT_A_MEMBER, explain_permission, find_subject
from app.access.matrix import OPERATIONS, Describer, visible
from app.access.permissions import PERMISSION_RE
from app.access.registry import all_permissions
from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_
from app.identity import directory
from app.plugins import runtime
from app.web.context import TenantContext
from app.web.directory_pages import is_platform_admin
from app.web.forms import T
from app.web.i18n import localize
from app.web.render import page

CHOICES = "admin/_explain_choices.html"
MAX_MEMBERS = 8
MAX_PERMISSIONS = 12


@dataclass(frozen=True)
class Choice:
    value: str  # what the field gets: an email, a permission code
    title: str
    detail: str


async def member_choices(ctx: TenantContext, q: str) -> list[Choice]:
    """Members of the tenant whose name or email contains `q` (the first ones when it is empty)."""
    rows, _ = await directory.list_members(ctx.db, ctx.tenant_id, q.strip()[:100], 0, MAX_MEMBERS)
    return [Choice(r.user.email, r.user.display_name, f"{r.user.email} · {r.role.name}") for r in rows]


async def permission_choices(ctx: TenantContext, q: str) -> list[Choice]:
    """Permissions offered here (the base's and the enabled plugins') whose code or description, in the
    reader's language or in English, contains every word of `q`."""
    words = q.lower().split()
    if not words:
        return []
    plugins = await runtime.enabled_for(ctx.db, ctx.tenant_id)
    describe = Describer(plugins)
    found = []
    platform = ctx.tenant_id == directory.SYSTEM_UUID
    for perm in visible(await all_permissions(ctx.db), plugins, include_platform=platform):
        description = describe(perm)
        text = localize(ctx, description)
        haystack = f"{perm.code} {text} {description}".lower()
        if all(w in haystack for w in words):
            found.append((_rank(perm.code), Choice(perm.code, text, perm.code)))
    return [c for _, c in sorted(found, key=lambda rc: rc[0])[:MAX_PERMISSIONS]]


def _rank(code: str) -> tuple[int, str, int]:
    """Entities' operations first, in the grid's order, then the other permissions by code."""
    parts = code.split(".")
    if len(parts) == 3 and parts[0] == "db" and parts[2] in OPERATIONS:
        return 0, parts[1], OPERATIONS.index(parts[2])
    return 1, code, 0


@get(T("/admin/explain"), opt={"permission": "ui.admin.explain"}, include_in_schema=False)
async def explain_page(
    request: HTMXRequest, ctx: TenantContext, user: str = "", permission: str = ""
) -> Template:
    values = {"user": user.strip()[:254], "permission": permission.strip()[:200]}
    result = None
    errors: dict[str, str] = {}
    status = 200
    choices: dict[str, list[Choice]] = {}
    any_user = is_platform_admin(ctx)
    if values["user"] or values["permission"]:
        if values["permission"] and not PERMISSION_RE.match(values["permission"]):
            # Words, not a code: list the permissions they find, to pick one.
            choices["permission"] = await permission_choices(ctx, values["permission"])
            errors["permission"] = (
                N_("Pick a permission from the list below, or enter its code (such as db.roles.select).")
                if choices["permission"]
                else N_(
                    "No permission matches these words; try others, or enter a code such as db.roles.select."
                )
            )
        if not values["user"]:
            errors["user"] = N_("Enter the name or email of a member of this tenant.")
        try:
            if errors:
                if (
                    values["user"]
                    and await find_subject(ctx.db, ctx.tenant, values["user"], any_user) is None
                ):
                    raise NotFound(NOT_A_MEMBER)
            else:
                result = await explain_permission(
                    ctx.db, ctx.tenant, values["user"], values["permission"], any_user=any_user
                )
        except ValidationFailed as exc:
            errors.update(exc.errors)
        except NotFound as exc:  # the same answer whether or not an account has that email
            errors["user"], status = exc.detail, 404
            # Members whose name or email contains the text (never anyone else), to pick one.
            choices["user"] = await member_choices(ctx, values["user"])
            if choices["user"]:
                errors["user"], status = N_("Pick a member from the list below."), 200
    return await page(
        request,
        ctx,
        "admin/explain.html",
        result=result,
        errors=errors,
        status_code=status,
        values=values,
        choices=choices,
        system=ctx.tenant_id == directory.SYSTEM_UUID,
    )


@get(T("/admin/explain/choices/{field:str}"), opt={"permission": "ui.admin.explain"}, include_in_schema=False)
async def explain_choices(ctx: TenantContext, field: str, user: str = "", permission: str = "") -> Template:
    """The list under a field as you type (htmx): members for `user`, permissions for `permission`."""
    if field == "user":
        found = await member_choices(ctx, user)
    elif field == "permission":
        found = await permission_choices(ctx, permission[:200])
    else:
        raise NotFound(N_("No such field"))
    return Template(
        template_name=CHOICES,
        context={
            "ctx": ctx,
            "base": f"/t/{ctx.tenant.slug}",
            "field": field,
            "found": found,
            "values": {"user": user[:254], "permission": permission[:200]},
        },
        headers={"Cache-Control": "no-store"},
    )


ROUTES = [explain_page, explain_choices]
