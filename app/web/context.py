"""Who is asking, in which tenant, with which permissions — resolved once per request.

`access_guard` runs for every route. A handler declares exactly one of:
  opt={"public": True}          no login needed (login page, static files, health)
  opt={"auth": True}            any signed-in user
  opt={"permission": "db.x.y"}  signed-in user holding that permission in the request's tenant
Anything else is refused: deny by default. The tenant comes from the `/t/{tenant}` path segment
(HTML) or the `X-Tenant` header (API, defaulting to the user's only tenant).

Once the guard has proved the user, the tenant and the access there, the request's context becomes a
`TenantContext`, whose `user`, `tenant` and `access` are not optional. A handler that needs them declares
`ctx: TenantContext` (instead of `ctx: RequestContext`); the guard refuses such a handler any request
that has no tenant (403), so the type is a promise the handler can rely on. Public handlers get no
TenantContext (nothing is proved for them); the route-guard test checks that none asks for one.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from typing import Any

import sqlalchemy as sa
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.access.cache import Access, PermissionCache
from app.access.policy import DIRECTORY_CHANGED_KEY
from app.access.scopes import DataScope, ScopeCache, scope_version
from app.audit import Actor
from app.core.db import SQLITE_WRITE_LOCK, read_without_transaction
from app.core.errors import Forbidden, NotFound
from app.core.i18n import DEFAULT_LANGUAGE, LANGUAGE_COOKIE, N_, negotiate
from app.core.models import ApiToken, Tenant, User
from app.core.settings import SYSTEM_TENANT_ID, Settings
from app.events import EventBus
from app.identity import directory, sessions, tokens
from app.plugins import runtime
from app.records.service import NO_HOOKS, RecordService

SYSTEM_UUID = uuid.UUID(SYSTEM_TENANT_ID)


class MissingPermission(PermissionDeniedException):
    """A 403 for want of one permission: API clients read the code, people get it in words
    (app.web.error_pages)."""

    def __init__(self, permission: str) -> None:
        super().__init__(f"You need the permission {permission} in this tenant")
        self.permission = permission


STATE_KEY = "portal_ctx"


@dataclass(frozen=True)
class _PlatformRole:
    name: str = "platform"


PLATFORM_ROLE = _PlatformRole()


@dataclass(frozen=True)
class SwitcherTenant:
    """A tenant as the switcher (and /api/me) shows it: plain values, safe to keep across sessions."""

    id: uuid.UUID
    slug: str
    name: str
    is_active: bool


@dataclass(frozen=True)
class SwitcherRole:
    name: str


Switcher = list[tuple[SwitcherTenant, SwitcherRole]]


class SwitcherCache:
    """Per worker: each user's switcher entries under the system tenant's `directory_version`, which
    every tenant request reads with its tenant and which every change of a tenant, a membership or a
    role name bumps (app.access.policy.bump_directory_version), so a change made through any worker
    shows on the next request everywhere."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[uuid.UUID, tuple[int, Switcher]] = OrderedDict()
        self._max = max_entries
        self.rebuilds = 0

    def get(self, user_id: uuid.UUID, version: int) -> Switcher | None:
        hit = self._entries.get(user_id)
        if hit is None or hit[0] != version:
            return None
        self._entries.move_to_end(user_id)
        return hit[1]

    def put(self, user_id: uuid.UUID, version: int, entries: Switcher) -> None:
        self.rebuilds += 1
        self._entries[user_id] = (version, entries)
        self._entries.move_to_end(user_id)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)


@dataclass
class RequestContext:
    settings: Settings
    db: AsyncSession
    ip: str
    is_api: bool
    user: User | None = None
    auth_method: str = ""
    api_token: ApiToken | None = None  # the bearer token of an API request, when it authenticated one
    session_token: str | None = None
    tenant: Tenant | None = None
    access: Access | None = None
    bus: EventBus | None = None
    sandbox: Any = None  # app.sandbox.Sandbox (typed loosely: the sandbox imports the web-free layers only)
    scope_cache: ScopeCache | None = None
    switcher_cache: SwitcherCache | None = None
    directory_version: int | None = None  # the system tenant's, read with the request's tenant
    # The app's app.services.AppServices (app.state.services); typed loosely like `sandbox`: Litestar
    # resolves this dataclass's annotations, and AppServices names its members for type checkers only.
    services: Any = None
    # The request's language (app.core.i18n.negotiate) and its catalog (a babel NullTranslations).
    language: str = DEFAULT_LANGUAGE
    translations: Any = None
    _memberships: Switcher | None = field(default=None, repr=False)
    _prefetched: tuple[str, TenantPair] | None = field(default=None, repr=False)  # read with the session

    def gettext(self, message: str, **params: Any) -> str:
        """`message` in the request's language, `%(name)s` placeholders filled from `params`."""
        text = self.translations.gettext(message) if self.translations is not None else message
        return text % params if params else text

    @property
    def actor(self) -> Actor:
        return Actor(
            self.user.id if self.user else None, self.user.email if self.user else "anonymous", self.ip
        )

    @property
    def tenant_id(self) -> uuid.UUID:
        if self.tenant is None:
            raise NotFound(N_("This request has no tenant"))
        return self.tenant.id

    def can(self, permission: str) -> bool:
        return self.access is not None and self.access.permissions.allows(permission)

    def can_any(self, permissions: list[str]) -> bool:
        return any(self.can(p) for p in permissions)

    def can_all(self, permissions: list[str]) -> bool:
        return all(self.can(p) for p in permissions)

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise MissingPermission(permission)

    def data_scope(self) -> DataScope:
        """Which rows this user may see here (their role's data scopes; admins bypass).

        Keyed by the tenant row's hierarchy and policy versions, loaded with this request, so moves
        and role changes made through any worker apply at once.
        """
        assert self.tenant is not None and self.user is not None and self.scope_cache is not None
        bypass = self.access is None or self.access.bypasses_scopes
        return DataScope(
            self.scope_cache, self.tenant.id, self.user.id, scope_version(self.tenant), bypass=bypass
        )

    def records(self) -> RecordService:
        """The record service bound to this request's tenant, user, permissions and data scope."""
        return RecordService(
            self.db,
            self.tenant_id,
            self.actor,
            self.can,
            scope=self.data_scope(),
            hooks=self.services.record_hooks if self.services is not None else NO_HOOKS,
        )

    async def memberships(self) -> Switcher:
        """Tenants the user may switch to (their memberships; all tenants for platform admins)."""
        if self._memberships is None:
            assert self.user is not None
            cache, version = self.switcher_cache, self.directory_version
            if self.db.info.get(DIRECTORY_CHANGED_KEY):
                cache = None  # this request changed the directory: neither trust nor fill the cache
            if cache is not None and version is not None:
                self._memberships = cache.get(self.user.id, version)
            if self._memberships is None:
                self._memberships = await self._query_memberships()
                if cache is not None and version is not None:
                    cache.put(self.user.id, version, self._memberships)
        return self._memberships

    async def _query_memberships(self) -> Switcher:
        assert self.user is not None
        own = await directory.memberships_of(self.db, self.user.id)
        found = [(t, r.name) for t, r in own if t.is_active or t.id == SYSTEM_UUID]
        if any(t.id == SYSTEM_UUID for t, _ in own):
            # Platform members reach every tenant through their system role.
            seen = {t.id for t, _ in own}
            tenants = await directory.active_tenants(self.db, limit=200)
            found += [(t, PLATFORM_ROLE.name) for t in tenants if t.id not in seen]
        return [(SwitcherTenant(t.id, t.slug, t.name, t.is_active), SwitcherRole(name)) for t, name in found]


@dataclass(kw_only=True)
class TenantContext(RequestContext):
    """A request's context after the guard proved who is asking, in which tenant, with which access."""

    user: User
    tenant: Tenant
    access: Access

    @classmethod
    def of(cls, ctx: RequestContext) -> TenantContext:
        """The same request (same session, same caches) with its user, tenant and access proved."""
        if ctx.user is None or ctx.tenant is None or ctx.access is None:
            raise PermissionDeniedException(
                detail=N_("Say which tenant with the X-Tenant header (slug or id)")
            )
        return cls(**{f.name: getattr(ctx, f.name) for f in fields(ctx)})

    @property
    def actor(self) -> Actor:
        return Actor(self.user.id, self.user.email, self.ip)

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.tenant.id


def _db(connection: ASGIConnection) -> AsyncSession:
    config = connection.app.state.alchemy
    return config.provide_session(connection.app.state, connection.scope)


def _tenant_cond(entity: Any, ref: str) -> Any:
    ref = ref.strip().lower()
    try:
        return entity.id == uuid.UUID(ref)
    except ValueError:
        return entity.slug == ref


TenantPair = tuple[Tenant | None, int, int]


async def _tenant_pair(db: AsyncSession, ref: str) -> TenantPair:
    """The tenant named by `ref` and the system tenant's policy and directory versions, in one query."""
    ref = ref.strip().lower()
    cond = _tenant_cond(Tenant, ref)
    rows = (await db.scalars(select(Tenant).where(cond | (Tenant.id == SYSTEM_UUID)))).all()
    system = next((t for t in rows if t.id == SYSTEM_UUID), None)
    match = [t for t in rows if t.id != SYSTEM_UUID or (ref in (SYSTEM_TENANT_ID, t.slug))]
    return (
        (match[0] if match else None),
        (system.policy_version if system else 0),
        (system.directory_version if system else 0),
    )


async def resolve_context(connection: ASGIConnection) -> RequestContext:
    cached = connection.scope.get("state", {}).get(STATE_KEY)
    if cached is not None:
        return cached
    settings: Settings = connection.app.state.settings
    is_api = connection.scope["path"].startswith("/api/")
    ctx = RequestContext(
        settings=settings,
        db=_db(connection),
        ip=connection.client.host if connection.client else "",
        is_api=is_api,
        bus=connection.app.state.bus,
        sandbox=connection.app.state.sandbox,
        scope_cache=connection.app.state.scope_cache,
        switcher_cache=connection.app.state.get("switcher_cache"),
        services=connection.app.state.get("services"),
    )
    connection.state[STATE_KEY] = ctx
    if settings.is_sqlite and connection.scope.get("method") not in ("GET", "HEAD", "OPTIONS"):
        # A write request takes SQLite's write lock up front: it then waits for a background writer
        # (event delivery) instead of failing when that one commits between its reads and its writes.
        await ctx.db.connection(execution_options={SQLITE_WRITE_LOCK: True})
    elif _reads_only(connection):
        # A read-only route (opt {"reads": True}): no BEGIN/COMMIT round trips (app.core.db.READS_ONLY).
        await read_without_transaction(ctx.db, settings.is_sqlite)
    if is_api:
        header = connection.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() == "bearer" and secret:
            found = await tokens.resolve(
                ctx.db, secret.strip()
            )  # an expired token raises: 401 with the reason
            if found:
                ctx.user, ctx.auth_method, ctx.api_token = found[1], "token", found[0]
                method = str(connection.scope.get("method", "GET"))
                if not tokens.allows(found[0], method):
                    # Enforced here, for every route, rather than per handler: a read-only token can change nothing.
                    raise Forbidden(
                        N_(
                            "This API token is read-only: it may only GET and HEAD, not %(method)s.",
                            method=method,
                        )
                    )
    else:
        token = connection.cookies.get(sessions.COOKIE)
        if token:
            ref = connection.path_params.get("tenant") if "path_params" in connection.scope else None
            found_s = await _session_and_tenant(ctx, token, ref)
            if found_s:
                ctx.user, ctx.auth_method, ctx.session_token = found_s[1], "session", token
    set_language(ctx, connection)
    return ctx


def _reads_only(connection: ASGIConnection) -> bool:
    if connection.scope.get("method") not in ("GET", "HEAD"):
        return False
    handler = connection.scope.get("route_handler")
    return handler is not None and bool(handler.opt.get("reads"))


def set_language(ctx: RequestContext, connection: ASGIConnection) -> None:
    """The request's language: the user's preference, else the switch's cookie, else Accept-Language."""
    ctx.language = negotiate(
        ctx.user.language if ctx.user is not None else None,
        connection.cookies.get(LANGUAGE_COOKIE),
        connection.headers.get("accept-language"),
    )
    catalogs = getattr(ctx.services, "catalogs", None)
    ctx.translations = catalogs.get(ctx.language) if catalogs is not None else None


def _session_and_tenant_stmt(by_id: bool) -> Any:
    tenant = aliased(Tenant)
    column = tenant.id if by_id else tenant.slug
    system = (
        select(Tenant.policy_version, Tenant.directory_version).where(Tenant.id == SYSTEM_UUID).subquery()
    )
    return (
        sessions.lookup()
        .add_columns(tenant, system.c.policy_version, system.c.directory_version)
        .outerjoin(tenant, column == sa.bindparam("ref", type_=column.type))
        .outerjoin(system, sa.true())
    )


# Built once: a statement object reused with parameters skips construction and cache-key generation.
_SESSION_AND_TENANT_BY_ID = _session_and_tenant_stmt(by_id=True)
_SESSION_AND_TENANT_BY_SLUG = _session_and_tenant_stmt(by_id=False)


async def _session_and_tenant(ctx: RequestContext, token: str, ref: str | None) -> tuple[Any, User] | None:
    """The browser session and, for a /t/<tenant> URL, the tenant row and the system tenant's versions
    in the same statement (one round trip fewer on every page); _attach_tenant takes them from here."""
    if ref is None:
        return await sessions.resolve(ctx.db, ctx.settings, token)
    key = ref.strip().lower()
    try:
        value: Any = uuid.UUID(key)
        stmt = _SESSION_AND_TENANT_BY_ID
    except ValueError:
        value, stmt = key, _SESSION_AND_TENANT_BY_SLUG
    row = (await ctx.db.execute(stmt, {"token_hash": sessions.token_hash(token), "ref": value})).first()
    if row is None:
        return None
    ws, user, found, policy_version, directory_version = row
    found_s = await sessions.check(ctx.db, ctx.settings, ws, user)
    if found_s is not None:
        ctx._prefetched = (ref, (found, policy_version or 0, directory_version or 0))
    return found_s


async def _attach_tenant(connection: ASGIConnection, ctx: RequestContext) -> None:
    assert ctx.user is not None
    ref = connection.path_params.get("tenant") if not ctx.is_api else connection.headers.get("x-tenant")
    if ref is None:
        if not ctx.is_api:
            return
        own = await ctx.memberships()
        if len(own) != 1:
            if not own:
                return
            # Several tenants: the API needs X-Tenant to know which one is meant.
            ctx.tenant = None
            return
        ref = str(own[0][0].id)
    prefetched = ctx._prefetched
    if prefetched is not None and prefetched[0] == ref:
        tenant, system_version, ctx.directory_version = prefetched[1]
    else:
        tenant, system_version, ctx.directory_version = await _tenant_pair(ctx.db, str(ref))
    if tenant is None:
        raise (
            PermissionDeniedException(detail=N_("Unknown tenant %(ref)s", ref=repr(ref)))
            if ctx.is_api
            else NotFound(N_("No tenant %(ref)s", ref=repr(ref)))
        )
    cache: PermissionCache = connection.app.state.permission_cache
    access = await cache.access(ctx.db, ctx.user.id, tenant.id, (tenant.policy_version, system_version))
    if not access.is_member and not access.is_platform_member:
        raise PermissionDeniedException(
            detail=N_("You are not a member of tenant %(slug)s", slug=tenant.slug)
        )
    if not tenant.is_active and not access.is_platform_member:
        raise PermissionDeniedException(detail=N_("Tenant %(slug)s is deactivated", slug=tenant.slug))
    ctx.tenant, ctx.access = tenant, access
    runtime.note_versions(ctx.db, tenant.id, (tenant.policy_version, system_version))


async def access_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    opt = handler.opt
    if b"%00" in connection.scope.get("query_string", b"") or "\x00" in connection.scope["path"]:
        raise ValidationException(detail=N_("NUL characters are not allowed in URLs"))
    if opt.get("sessionless"):
        return  # public and takes no context (GET /health): no cookie or token lookup
    ctx = await resolve_context(connection)
    if opt.get("public"):
        return
    if ctx.user is None:
        raise NotAuthorizedException(
            "Sign in first" if not ctx.is_api else "A valid bearer token is required"
        )
    await _attach_tenant(connection, ctx)
    if wants_tenant(handler):
        # The handler is given the request's context as a TenantContext (a 403 when there is no tenant);
        # it replaces the RequestContext for the rest of the request, so there is one context object.
        connection.state[STATE_KEY] = TenantContext.of(ctx)
    permission = opt.get("permission")
    if permission:
        if ctx.tenant is None:
            raise PermissionDeniedException(
                detail=N_("Say which tenant with the X-Tenant header (slug or id)")
            )
        ctx.require(permission)
        return
    if not opt.get("auth"):
        raise PermissionDeniedException(
            detail=N_("This route declares no access rule and is therefore closed")
        )


def wants_tenant(handler: BaseRouteHandler) -> bool:
    """Whether the handler declares `ctx: TenantContext` (it then runs only with a tenant)."""
    declared = handler.parsed_fn_signature.parameters.get("ctx")
    return declared is not None and declared.annotation is TenantContext


async def provide_ctx(request: Any) -> RequestContext:
    """The context the guard resolved: a TenantContext for handlers that declare one (the guard made
    it), the RequestContext itself for the others (Litestar checks the exact declared type)."""
    return await resolve_context(request)
