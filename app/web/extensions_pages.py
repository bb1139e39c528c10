"""Extension points on the web: the JSON API for tenant admins (/api/v1/extensions/...), the admin pages
(/t/{tenant}/admin/extensions) and the public auto-login route (/t/{tenant}/auto-login/{config_id})."""

from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa
from litestar import Request, delete, get, patch, post
from litestar.exceptions import PermissionDeniedException
from litestar.response import Redirect

from app import audit, extensions
from app.audit import Actor
from app.db import SQLITE_WRITE_LOCK
from app.db.models import Membership, User
from app.errors import Forbidden, NotFound, PortalError, ValidationFailed
from app.extensions import store
from app.identity import directory, sessions, throttle
from app.plugins.configs import secret_box
from app.plugins.manifest import EXTENSION_POINTS
from app.web.api import TENANT_HEADER
from app.web.auth_pages import safe_next
from app.web.context import RequestContext

ADMIN = {"permission": extensions.ADMIN_PERMISSION}


def _tenant(ctx: RequestContext) -> uuid.UUID:
    if ctx.tenant is None:
        raise PermissionDeniedException("Say which tenant with the X-Tenant header (slug or id)")
    return ctx.tenant.id


def impl_json(impl: extensions.Implementation) -> dict[str, Any]:
    return {"key": impl.key, "point": impl.point, "plugin": impl.plugin_id or None, "name": impl.name,
            "label": impl.label, "description": impl.description, "entities": list(impl.entities) or None,
            "config_fields": [{"key": f.key, "type": f.type, "label": f.label, "help": f.help, "required": f.required,
                               "secret": f.secret, "default": None if f.default is None else str(f.default)
                               if not isinstance(f.default, bool | int) else f.default,
                               "options": [o.value for o in f.options] or None} for f in impl.fields]}


async def _views(ctx: RequestContext, point: str | None = None) -> list[dict[str, Any]]:
    tenant_id = _tenant(ctx)
    available = {i.key: i for i in await extensions.implementations(ctx.db, tenant_id)}
    rows = await store.list_configs(ctx.db, tenant_id, point)
    return [store.view(r, available.get(f"{r.plugin_id or 'base'}:{r.implementation}")) for r in rows]


def _request(data: dict[str, Any], *, creating: bool) -> store.SaveRequest:
    if not isinstance(data, dict):
        raise ValidationFailed({"": "send a JSON object"})
    values = data.get("values")
    if values is not None and not isinstance(values, dict):
        raise ValidationFailed({"values": "must be an object of key -> value"})
    enabled = data.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ValidationFailed({"enabled": "true or false"})
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValidationFailed({"version": "the version number you read"})
    return store.SaveRequest(values=values if values is not None else ({} if creating else None),  # type: ignore[arg-type]
                             name=data.get("name"), implementation=data.get("implementation"), version=version,
                             enabled=enabled)


@get("/api/v1/extensions/points", opt=ADMIN, tags=["extensions"],
     summary="Extension point types and the implementations available in the tenant")
async def api_points(ctx: RequestContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    impls = await extensions.implementations(ctx.db, _tenant(ctx))
    return {"items": [{"point": p, "label": extensions.POINT_LABELS[p], "description": extensions.POINT_HELP[p],
                       "implementations": [impl_json(i) for i in impls if i.point == p]} for p in EXTENSION_POINTS]}


@get("/api/v1/extensions/configs", opt=ADMIN, tags=["extensions"], summary="The tenant's extension configurations")
async def api_configs(ctx: RequestContext, point: str | None = None, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    if point is not None and point not in EXTENSION_POINTS:
        raise ValidationFailed({"point": f"one of {', '.join(EXTENSION_POINTS)}"})
    return {"items": await _views(ctx, point)}


async def _one(ctx: RequestContext, config_id: str) -> dict[str, Any]:
    row = await store.get(ctx.db, _tenant(ctx), config_id)
    try:
        extensions_impl, _plugin = await extensions.implementation(ctx.db, row.tenant_id,
                                                                   f"{row.plugin_id or 'base'}:{row.implementation}")
    except NotFound:
        extensions_impl = None
    return store.view(row, extensions_impl)


@get("/api/v1/extensions/configs/{config_id:str}", opt=ADMIN, tags=["extensions"], summary="One configuration")
async def api_config(ctx: RequestContext, config_id: str, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    return await _one(ctx, config_id)


@post("/api/v1/extensions/configs", opt=ADMIN, tags=["extensions"], status_code=201,
      summary="Create a configuration: {implementation, name, values[, enabled]} (auto-login verifiers start disabled)")
async def api_create(ctx: RequestContext, data: dict[str, Any], x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    row = await store.create(ctx.db, ctx.actor, secret_box(ctx.settings.secret_key), _tenant(ctx),
                             _request(data, creating=True))
    return await _one(ctx, str(row.id))


@patch("/api/v1/extensions/configs/{config_id:str}", opt=ADMIN, tags=["extensions"],
       summary="Change name, values or enabled ({version} required; a secret sent as *** or left out is kept)")
async def api_update(ctx: RequestContext, config_id: str, data: dict[str, Any],
                     x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    row = await store.update(ctx.db, ctx.actor, secret_box(ctx.settings.secret_key), _tenant(ctx), config_id,
                             _request(data, creating=False))
    return await _one(ctx, str(row.id))


@delete("/api/v1/extensions/configs/{config_id:str}", opt=ADMIN, tags=["extensions"], status_code=204,
        summary="Delete a configuration (?version= checks it is unchanged)")
async def api_delete(ctx: RequestContext, config_id: str, version: int | None = None,
                     x_tenant: str | None = TENANT_HEADER) -> None:
    await store.delete(ctx.db, ctx.actor, _tenant(ctx), config_id, version)


API_ROUTES = [api_points, api_configs, api_config, api_create, api_update, api_delete]


# --- auto-login through an auth verifier ------------------------------------------------------------------

# Never handed to a verifier: the portal's own credentials and anti-forgery tokens.
WITHHELD_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization", "x-csrftoken", "x-tenant"})
MAX_HEADERS, MAX_VALUE = 50, 4096
REFUSED = "This sign-in link was not accepted. Ask for a new link, or sign in with your password."


def verifier_request(request: Request, tenant_slug: str) -> dict[str, Any]:
    """What a verifier sees of the link's request: its query, headers without the portal's credentials,
    the tenant and the time (guests have no clock of their own worth trusting, and no network)."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if name.lower() in WITHHELD_HEADERS or len(headers) >= MAX_HEADERS:
            continue
        headers[name.lower()] = value[:MAX_VALUE]
    query = {k: str(v)[:MAX_VALUE] for k, v in list(request.query_params.items())[:MAX_HEADERS]}
    return {"tenant": tenant_slug, "query": query, "headers": headers, "now": int(time.time())}


@get("/t/{tenant:str}/auto-login/{config_id:str}", opt={"public": True}, include_in_schema=False)
async def auto_login(request: Request, ctx: RequestContext, tenant: str, config_id: str,
                     next: str | None = None) -> Redirect:
    """Sign a member in from a link carrying a third-party token, checked by an enabled auth verifier."""
    if ctx.settings.is_sqlite:  # a GET that writes (session, throttle, audit): take the write lock up front
        await ctx.db.connection(execution_options={SQLITE_WRITE_LOCK: True})
    found = await directory.find_tenant(ctx.db, tenant)
    if found is None or not found.is_active:
        raise NotFound("No such sign-in link")
    try:  # a disabled, deleted or unavailable verifier is simply not there
        resolved = await extensions.resolve(ctx.db, found.id, config_id, extensions.AUTH_VERIFIER)
    except NotFound:
        raise NotFound("No such sign-in link") from None
    key = f"auto-login:{resolved.config.id}"
    anonymous = Actor(None, "auto-login", ctx.ip)
    if await throttle.retry_after(ctx.db, ctx.settings, key, ctx.ip):
        await audit.record(ctx.db, anonymous, "auth.auto_login.refused", "extension_config", resolved.config.id,
                           tenant_id=found.id, summary=f"Auto-login through {resolved.config.name!r} refused: "
                                                       "too many refused links from this address")
        await ctx.db.commit()
        raise TooManyAttempts("Too many sign-in links were refused. Try again later.")
    reason = ""
    user: User | None = None
    try:
        identity = await extensions.verify_auth(ctx.db, found.id, resolved.config.id,
                                                verifier_request(request, found.slug))
        if identity.user_id is not None:
            user = await ctx.db.get(User, identity.user_id)
        elif identity.email:
            user = await directory.find_user(ctx.db, identity.email)
        if user is None or not user.is_active:
            reason = f"{identity.email or identity.user_id} is not an active user"
        elif await ctx.db.scalar(sa.select(Membership.id).where(Membership.tenant_id == found.id,
                                                                Membership.user_id == user.id)) is None:
            reason = f"{user.email} is not a member of this tenant"
    except extensions.Refused as exc:
        reason = f"the verifier refused the link: {exc}"
    except extensions.ExtensionFailed as exc:
        reason = f"the verifier failed: {exc.detail}"
    if reason or user is None:
        await throttle.note(ctx.db, key, ctx.ip, succeeded=False)
        await audit.record(ctx.db, anonymous, "auth.auto_login.refused", "extension_config", resolved.config.id,
                           tenant_id=found.id, summary=f"Auto-login through {resolved.config.name!r} refused: "
                                                       f"{reason}"[:500])
        await ctx.db.commit()
        raise Forbidden(REFUSED)
    await throttle.note(ctx.db, key, ctx.ip, succeeded=True)
    token = await sessions.start(ctx.db, ctx.settings, user, old_token=request.cookies.get(sessions.COOKIE),
                                 ip=ctx.ip, user_agent=request.headers.get("user-agent", ""))
    await audit.record(ctx.db, Actor(user.id, user.email, ctx.ip), "auth.auto_login", "extension_config",
                       resolved.config.id, tenant_id=found.id,
                       summary=f"{user.email} signed in through the auto-login verifier {resolved.config.name!r}")
    target = safe_next(next) if next else f"/t/{found.slug}/"
    response = Redirect(target, status_code=303)
    response.set_cookie(sessions.COOKIE, token, httponly=True, samesite="lax", secure=ctx.settings.secure_cookies,
                        max_age=ctx.settings.session_absolute_seconds)
    return response


class TooManyAttempts(PortalError):
    status_code = 429
    title = "Too many attempts"


ROUTES: list[Any] = [*API_ROUTES, auto_login]
