"""Saved views of generated list pages: a name for one state of a list (search, filters, sort, visible
columns, page size — the page's own query parameters), kept by its owner, optionally shared with roles
of the tenant, and each user's default view per page.

Who may do what (the web layer has already checked that the user may see the list itself):
- anyone keeps private views, renames and deletes their own, and picks as default any view they see
  (their own and those shared with their role);
- sharing a view with roles needs `ui.views.share`;
- renaming, re-sharing and deleting a view someone else shared needs `ui.views.admin` (tenant Admins).
Every change is in the audit log. Rows are the tenant's (TenantScoped) and read through
app.core.tenancy, so another tenant's view id is "not found", like another user's private one.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from litestar.exceptions import PermissionDeniedException
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access.permissions import VIEWS_ADMIN, VIEWS_SHARE
from app.audit import Actor
from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.identifiers import text_problem
from app.core.models import Role, SavedView, SavedViewDefault, SavedViewShare, Tenant, User
from app.core.tenancy import in_tenant, tenant_is

MAX_PARAMS_CHARS = 4000  # a view's stored query, as JSON
MAX_VIEWS_PER_PAGE = 100  # a user's own views of one page
Params = dict[str, str | list[str]]


@dataclass(frozen=True)
class Page:
    """The list page a view belongs to: its plugin and its manifest path."""

    plugin_id: str
    path: str


@dataclass(frozen=True)
class ViewInfo:
    """A view as the page's menu and the views page show it."""

    id: uuid.UUID
    name: str
    params: Params
    owner_id: uuid.UUID
    owner_name: str
    role_ids: tuple[uuid.UUID, ...]
    role_names: tuple[str, ...]
    mine: bool
    is_default: bool
    manageable: bool  # this user may rename, re-share and delete it

    @property
    def shared(self) -> bool:
        return bool(self.role_ids)


def clean_params(raw: Mapping[str, Any]) -> Params:
    """Only string values (or lists of them), bounded: what a view may keep."""
    out: Params = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            out[key] = [str(v) for v in value]
    if len(json.dumps(out, ensure_ascii=False)) > MAX_PARAMS_CHARS:
        raise ValidationFailed({"params": N_("This view has too many settings to be saved.")})
    return out


@dataclass(frozen=True)
class StoredView:
    """A saved view as the cache keeps it: plain values, safe to share between requests."""

    id: uuid.UUID
    name: str
    params: Params
    owner_id: uuid.UUID
    owner_name: str
    roles: tuple[tuple[uuid.UUID, str], ...]  # (role id, role name) it is shared with, by name


@dataclass(frozen=True)
class PageViews:
    """Every saved view of one list page in one tenant (by name), and each user's default there."""

    views: tuple[StoredView, ...]
    defaults: Mapping[uuid.UUID, uuid.UUID]


CacheKey = tuple[Any, ...]


class ViewCache:
    """Per worker: a tenant's saved views per list page (and its roles for the share form) under version
    counters the request already read with its tenant — `views_version`, bumped by every view write
    (ViewService._bump), and `policy_version`, bumped by every change of a role — so a change made
    through any worker shows on the next request everywhere, and a list page reads no views at all."""

    def __init__(self, max_entries: int = 5_000) -> None:
        self._entries: OrderedDict[CacheKey, tuple[Any, Any]] = OrderedDict()
        self._max = max_entries
        self.loads = 0

    def get(self, key: CacheKey, version: Any) -> Any:
        hit = self._entries.get(key)
        if hit is None or hit[0] != version:
            return None
        self._entries.move_to_end(key)
        return hit[1]

    def put(self, key: CacheKey, version: Any, value: Any) -> None:
        self.loads += 1
        self._entries[key] = (version, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)


_PAGE_VIEWS = (
    sa.select(SavedView.id, SavedView.name, SavedView.params, SavedView.owner_id, User.display_name)
    .join(User, User.id == SavedView.owner_id)
    .where(
        SavedView.tenant_id == sa.bindparam("tenant_id"),
        SavedView.plugin_id == sa.bindparam("plugin_id"),
        SavedView.page_path == sa.bindparam("page_path"),
    )
    .order_by(SavedView.name, SavedView.id)
)
_PAGE_SHARES = (
    sa.select(SavedViewShare.view_id, Role.id, Role.name)
    .join(Role, Role.id == SavedViewShare.role_id)
    .join(SavedView, SavedView.id == SavedViewShare.view_id)
    .where(
        SavedViewShare.tenant_id == sa.bindparam("tenant_id"),
        SavedView.tenant_id == sa.bindparam("tenant_id"),
        SavedView.plugin_id == sa.bindparam("plugin_id"),
        SavedView.page_path == sa.bindparam("page_path"),
    )
    .order_by(Role.name)
)
_PAGE_DEFAULTS = sa.select(SavedViewDefault.user_id, SavedViewDefault.view_id).where(
    SavedViewDefault.tenant_id == sa.bindparam("tenant_id"),
    SavedViewDefault.plugin_id == sa.bindparam("plugin_id"),
    SavedViewDefault.page_path == sa.bindparam("page_path"),
)


async def load_page_views(session: AsyncSession, tenant_id: uuid.UUID, page: Page) -> PageViews:
    params = {"tenant_id": tenant_id, "plugin_id": page.plugin_id, "page_path": page.path}
    shares: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {}
    for view_id, role_id, role_name in (await session.execute(_PAGE_SHARES, params)).all():
        shares.setdefault(view_id, []).append((role_id, str(role_name)))
    views = tuple(
        StoredView(vid, name, clean_params(raw or {}), owner, str(owner_name), tuple(shares.get(vid, ())))
        for vid, name, raw, owner, owner_name in (await session.execute(_PAGE_VIEWS, params)).all()
    )
    defaults = dict((await session.execute(_PAGE_DEFAULTS, params)).tuples().all())
    return PageViews(views, defaults)


class ViewService:
    """Saved views for one user in one tenant (their role decides which shared views they see)."""

    def __init__(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        actor: Actor,
        role_id: uuid.UUID | None,
        can: Callable[[str], bool],
        *,
        cache: ViewCache | None = None,
        version: Any = None,  # the tenant's (views_version, policy_version): the cache's key
    ) -> None:
        assert actor.user_id is not None, "saved views belong to a user"
        self.cache = cache if version is not None else None
        self.version = version
        self.db = session
        self.tenant_id = tenant_id
        self.actor = actor
        self.user_id: uuid.UUID = actor.user_id
        self.role_id = role_id
        self.can = can
        self._defaults: dict[Page, uuid.UUID | None] = {}  # read once per page (a list page asks twice)
        # The views a list page shows, read once per request (its default view and its view menu); a
        # write through this service forgets them.
        self._visible: dict[Page, list[ViewInfo]] = {}

    # -- reading ---------------------------------------------------------------------------------

    def _of_page(self, page: Page) -> sa.Select[tuple[SavedView]]:
        return in_tenant(SavedView, self.tenant_id).where(
            SavedView.plugin_id == page.plugin_id, SavedView.page_path == page.path
        )

    async def _page_views(self, page: Page) -> PageViews:
        key = ("views", self.tenant_id, page)
        found: PageViews | None = self.cache.get(key, self.version) if self.cache is not None else None
        if found is None:
            found = await load_page_views(self.db, self.tenant_id, page)
            if self.cache is not None:
                self.cache.put(key, self.version, found)
        return found

    async def visible(self, page: Page, *, managing: bool = False) -> list[ViewInfo]:
        """The views of `page` this user sees, their own first, then by name. `managing`: also every
        shared view of the page when they may manage those (the views page of a tenant admin)."""
        if not managing and page in self._visible:
            return self._visible[page]
        every_shared = managing and self.can(VIEWS_ADMIN)
        stored = await self._page_views(page)
        default = stored.defaults.get(self.user_id)
        self._defaults[page] = default
        seen = [
            v
            for v in stored.views
            if v.owner_id == self.user_id
            or (every_shared and v.roles)
            or (self.role_id is not None and any(r == self.role_id for r, _ in v.roles))
        ]
        seen.sort(key=lambda v: v.owner_id != self.user_id)  # stable: by name within each group
        infos = [
            ViewInfo(
                id=v.id,
                name=v.name,
                params=v.params,
                owner_id=v.owner_id,
                owner_name=v.owner_name,
                role_ids=tuple(r for r, _ in v.roles),
                role_names=tuple(n for _, n in v.roles),
                mine=v.owner_id == self.user_id,
                is_default=v.id == default,
                manageable=v.owner_id == self.user_id or (bool(v.roles) and self.can(VIEWS_ADMIN)),
            )
            for v in seen
        ]
        if not managing:
            self._visible[page] = infos
        return infos

    async def get(self, page: Page, view_id: uuid.UUID | str, *, managing: bool = False) -> ViewInfo:
        """One view this user sees (NotFound for another tenant's, another page's or someone's private
        view: they are all "no such view")."""
        wanted = _as_uuid(view_id)
        for info in await self.visible(page, managing=managing):
            if info.id == wanted:
                return info
        raise NotFound(N_("No such saved view"))

    async def default(self, page: Page) -> ViewInfo | None:
        """The user's default view of `page`, while they still see it (a view unshared from their role
        stops being anyone's default but its owner's)."""
        return next((info for info in await self.visible(page) if info.is_default), None)

    def _forget(self, page: Page) -> None:
        """After a write: the page's views and default are read again when asked (from the database:
        the cache is for the requests after this one, which read the bumped version)."""
        self._visible.pop(page, None)
        self._defaults.pop(page, None)
        self.cache = None

    async def _bump(self, page: Page) -> None:
        """Every write: the tenant's views_version moves on, in the same transaction as the write."""
        await self.db.execute(
            sa.update(Tenant)
            .where(Tenant.id == self.tenant_id)
            .values(views_version=Tenant.views_version + 1)
            .execution_options(synchronize_session=False)
        )
        self._forget(page)

    # -- writing ---------------------------------------------------------------------------------

    async def _check_name(self, page: Page, name: str, owner_id: uuid.UUID, exclude: uuid.UUID | None) -> str:
        name = name.strip()
        problem = text_problem(name, "view name", 100)
        if problem:
            raise ValidationFailed({"name": problem})
        stmt = self._of_page(page).where(SavedView.owner_id == owner_id, SavedView.name == name)
        if exclude is not None:
            stmt = stmt.where(SavedView.id != exclude)
        if await self.db.scalar(stmt.with_only_columns(SavedView.id).limit(1)):
            raise ValidationFailed({"name": N_("There is already a view called %(name)s.", name=name)})
        return name

    async def _roles(self, role_ids: Iterable[uuid.UUID | str]) -> list[Role]:
        wanted = {_as_uuid(r, field="roles") for r in role_ids}
        if not wanted:
            return []
        if not self.can(VIEWS_SHARE) and not self.can(VIEWS_ADMIN):
            raise PermissionDeniedException(
                detail=N_("You need the permission %(views_share)s in this tenant", views_share=VIEWS_SHARE)
            )
        roles = list(
            (await self.db.scalars(in_tenant(Role, self.tenant_id).where(Role.id.in_(wanted)))).all()
        )
        if len(roles) != len(wanted):
            raise ValidationFailed({"roles": N_("Choose roles of this tenant.")})
        return sorted(roles, key=lambda r: r.name)

    async def _set_shares(self, view: SavedView, roles: list[Role]) -> None:
        await self.db.execute(
            sa.delete(SavedViewShare).where(
                tenant_is(SavedViewShare, self.tenant_id), SavedViewShare.view_id == view.id
            )
        )
        self.db.add_all(
            [SavedViewShare(tenant_id=self.tenant_id, view_id=view.id, role_id=r.id) for r in roles]
        )

    async def create(
        self, page: Page, name: str, params: Mapping[str, Any], role_ids: Iterable[uuid.UUID | str] = ()
    ) -> SavedView:
        """A new view of `page` owned by this user (shared with `role_ids`, which needs ui.views.share)."""
        clean = clean_params(params)
        name = await self._check_name(page, name, self.user_id, None)
        roles = await self._roles(role_ids)
        if roles and not self.can(VIEWS_SHARE):
            raise PermissionDeniedException(
                detail=N_("You need the permission %(views_share)s in this tenant", views_share=VIEWS_SHARE)
            )
        count = await self.db.scalar(
            self._of_page(page).with_only_columns(sa.func.count()).where(SavedView.owner_id == self.user_id)
        )
        if (count or 0) >= MAX_VIEWS_PER_PAGE:
            raise ValidationFailed(
                {"name": N_("You have %(count)s views of this page; delete one first.", count=count)}
            )
        view = SavedView(
            tenant_id=self.tenant_id,
            owner_id=self.user_id,
            plugin_id=page.plugin_id,
            page_path=page.path,
            name=name,
            params=clean,
        )
        self.db.add(view)
        try:
            async with self.db.begin_nested():
                await self.db.flush()
        except IntegrityError as exc:  # the same name saved twice at once
            raise ValidationFailed(
                {"name": N_("There is already a view called %(name)s.", name=name)}
            ) from exc
        await self._set_shares(view, roles)
        await self._audit("view.create", view, None, _facts(view, roles), f"Saved the view {name}")
        await self._bump(page)
        return view

    async def _own_or_managed(self, page: Page, view_id: uuid.UUID | str) -> tuple[SavedView, ViewInfo]:
        info = await self.get(page, view_id, managing=True)
        if not info.manageable:
            raise PermissionDeniedException(
                detail=N_(
                    "Only its owner or a holder of %(views_admin)s may change the view %(name)s",
                    views_admin=VIEWS_ADMIN,
                    name=info.name,
                )
            )
        view = await self.db.scalar(self._of_page(page).where(SavedView.id == info.id))
        if view is None:
            raise NotFound(N_("No such saved view"))
        return view, info

    async def update(
        self,
        page: Page,
        view_id: uuid.UUID | str,
        *,
        name: str | None = None,
        role_ids: Iterable[uuid.UUID | str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> SavedView:
        """Rename, re-share or replace the settings of a view this user may manage."""
        view, info = await self._own_or_managed(page, view_id)
        before = {"name": view.name, "roles": sorted(info.role_names), "params": view.params}
        if name is not None:
            view.name = await self._check_name(page, name, view.owner_id, view.id)
        roles: list[Role] | None = None
        if role_ids is not None:
            roles = await self._roles(role_ids)
            changed = {r.id for r in roles} != set(info.role_ids)
            # Re-sharing is for those who may share; an admin may also withdraw others' shares.
            if changed and not (self.can(VIEWS_SHARE) or (not info.mine and self.can(VIEWS_ADMIN))):
                raise PermissionDeniedException(
                    detail=N_(
                        "You need the permission %(views_share)s in this tenant", views_share=VIEWS_SHARE
                    )
                )
            await self._set_shares(view, roles)
        if params is not None:
            view.params = clean_params(params)
        after_roles = sorted(r.name for r in roles) if roles is not None else sorted(info.role_names)
        after = {"name": view.name, "roles": after_roles, "params": view.params}
        try:
            async with self.db.begin_nested():
                await self.db.flush()
        except IntegrityError as exc:
            raise ValidationFailed(
                {"name": N_("There is already a view called %(name)s.", name=view.name)}
            ) from exc
        await self._audit("view.update", view, before, after, f"Changed the view {view.name}")
        await self._bump(page)
        return view

    async def delete(self, page: Page, view_id: uuid.UUID | str) -> str:
        view, info = await self._own_or_managed(page, view_id)
        name = view.name
        await self.db.delete(view)
        await self.db.flush()
        facts = {"name": name, "roles": list(info.role_names), "params": info.params}
        await self._audit("view.delete", view, facts, None, f"Deleted the view {name}")
        await self._bump(page)
        return name

    async def set_default(self, page: Page, view_id: uuid.UUID | str | None) -> ViewInfo | None:
        """Make a view this user sees their default for `page` (None: no default)."""
        info = await self.get(page, view_id) if view_id is not None else None
        self._forget(page)
        await self.db.execute(
            sa.delete(SavedViewDefault).where(
                tenant_is(SavedViewDefault, self.tenant_id),
                SavedViewDefault.user_id == self.user_id,
                SavedViewDefault.plugin_id == page.plugin_id,
                SavedViewDefault.page_path == page.path,
            )
        )
        if info is not None:
            self.db.add(
                SavedViewDefault(
                    tenant_id=self.tenant_id,
                    user_id=self.user_id,
                    plugin_id=page.plugin_id,
                    page_path=page.path,
                    view_id=info.id,
                )
            )
        await self.db.flush()
        await audit.record(
            self.db,
            self.actor,
            "view.default",
            "saved_view",
            info.id if info else "",
            tenant_id=self.tenant_id,
            summary=f"Default view of {page.plugin_id}{page.path}: {info.name if info else 'none'}",
        )
        await self._bump(page)
        return info

    async def _audit(
        self,
        action: str,
        view: SavedView,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        summary: str,
    ) -> None:
        await audit.write(
            self.db,
            self.actor,
            action,
            "saved_view",
            view.id,
            tenant_id=self.tenant_id,
            summary=f"{summary} ({view.plugin_id}{view.page_path})",
            before=before,
            after=after,
        )


def _facts(view: SavedView, roles: list[Role]) -> dict[str, Any]:
    return {"name": view.name, "roles": [r.name for r in roles], "params": view.params}


def _as_uuid(value: uuid.UUID | str, field: str = "") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        if field:
            raise ValidationFailed({field: N_("Choose roles of this tenant.")}) from exc
        raise NotFound(N_("No such saved view")) from exc
