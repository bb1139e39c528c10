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

import functools
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from app.core.models import Role, SavedView, SavedViewDefault, SavedViewShare, User
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


@functools.cache
def _visible_statement(with_role: bool, every_shared: bool) -> sa.Select[tuple[SavedView, str, Any]]:
    """The views of a page a user sees (`ViewService.visible`): their own, those shared with their role
    (`with_role`), and with `every_shared` every shared one; the user's default view of the page comes
    along (one statement, not two, on every list page). Built once per variant and run with parameters
    (tenant_id, user_id, role_id, plugin_id, page_path): no construction or cache key per request."""
    tenant_id: Any = sa.bindparam("tenant_id")
    user_id: Any = sa.bindparam("user_id")
    condition: sa.ColumnElement[bool] = SavedView.owner_id == user_id
    if with_role:
        shared = sa.select(SavedViewShare.view_id).where(
            tenant_is(SavedViewShare, tenant_id), SavedViewShare.role_id == sa.bindparam("role_id")
        )
        condition = sa.or_(condition, SavedView.id.in_(shared))
    if every_shared:
        any_share = sa.select(SavedViewShare.view_id).where(tenant_is(SavedViewShare, tenant_id))
        condition = sa.or_(condition, SavedView.id.in_(any_share))
    plugin_id: Any = sa.bindparam("plugin_id")
    page_path: Any = sa.bindparam("page_path")
    default = (
        in_tenant(SavedViewDefault, tenant_id)
        .with_only_columns(SavedViewDefault.view_id)
        .where(
            SavedViewDefault.user_id == user_id,
            SavedViewDefault.plugin_id == plugin_id,
            SavedViewDefault.page_path == page_path,
        )
    )
    return (
        in_tenant(SavedView, tenant_id)
        .where(SavedView.plugin_id == plugin_id, SavedView.page_path == page_path)
        .add_columns(User.display_name, default.scalar_subquery())
        .join(User, User.id == SavedView.owner_id)
        .where(condition)
        .order_by(SavedView.owner_id != user_id, SavedView.name, SavedView.id)
    )


class ViewService:
    """Saved views for one user in one tenant (their role decides which shared views they see)."""

    def __init__(
        self,
        session: AsyncSession,
        tenant_id: uuid.UUID,
        actor: Actor,
        role_id: uuid.UUID | None,
        can: Callable[[str], bool],
    ) -> None:
        assert actor.user_id is not None, "saved views belong to a user"
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

    def _manageable(self, view: SavedView, shared: bool) -> bool:
        return view.owner_id == self.user_id or (shared and self.can(VIEWS_ADMIN))

    async def visible(self, page: Page, *, managing: bool = False) -> list[ViewInfo]:
        """The views of `page` this user sees, their own first, then by name. `managing`: also every
        shared view of the page when they may manage those (the views page of a tenant admin)."""
        if not managing and page in self._visible:
            return self._visible[page]
        with_role = self.role_id is not None
        params: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "plugin_id": page.plugin_id,
            "page_path": page.path,
        }
        if with_role:
            params["role_id"] = self.role_id
        stmt = _visible_statement(with_role, managing and self.can(VIEWS_ADMIN))
        rows = (await self.db.execute(stmt, params)).all()
        if rows:
            self._defaults[page] = rows[0][2]
        views = [(v, str(owner)) for v, owner, _ in rows]
        infos = await self._infos(page, views)
        if not managing:
            self._visible[page] = infos
        return infos

    async def _infos(self, page: Page, views: Sequence[tuple[SavedView, str]]) -> list[ViewInfo]:
        ids = [v.id for v, _ in views]
        if not ids:
            return []  # nothing to mark as the default either
        shares: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {}
        found = await self.db.execute(
            sa.select(SavedViewShare.view_id, Role.id, Role.name)
            .join(Role, Role.id == SavedViewShare.role_id)
            .where(tenant_is(SavedViewShare, self.tenant_id), SavedViewShare.view_id.in_(ids))
            .order_by(Role.name)
        )
        for view_id, role_id, role_name in found.all():
            shares.setdefault(view_id, []).append((role_id, str(role_name)))
        default = await self._default_id(page)
        out = []
        for view, owner in views:
            roles = shares.get(view.id, [])
            out.append(
                ViewInfo(
                    id=view.id,
                    name=view.name,
                    params=clean_params(view.params or {}),
                    owner_id=view.owner_id,
                    owner_name=owner,
                    role_ids=tuple(r for r, _ in roles),
                    role_names=tuple(n for _, n in roles),
                    mine=view.owner_id == self.user_id,
                    is_default=view.id == default,
                    manageable=self._manageable(view, bool(roles)),
                )
            )
        return out

    async def get(self, page: Page, view_id: uuid.UUID | str, *, managing: bool = False) -> ViewInfo:
        """One view this user sees (NotFound for another tenant's, another page's or someone's private
        view: they are all "no such view")."""
        wanted = _as_uuid(view_id)
        for info in await self.visible(page, managing=managing):
            if info.id == wanted:
                return info
        raise NotFound(N_("No such saved view"))

    async def _default_id(self, page: Page) -> uuid.UUID | None:
        if page in self._defaults:
            return self._defaults[page]
        found: uuid.UUID | None = await self.db.scalar(self._default_stmt(page))
        self._defaults[page] = found
        return found

    def _default_stmt(self, page: Page) -> sa.Select[tuple[uuid.UUID]]:
        return (
            in_tenant(SavedViewDefault, self.tenant_id)
            .with_only_columns(SavedViewDefault.view_id)
            .where(
                SavedViewDefault.user_id == self.user_id,
                SavedViewDefault.plugin_id == page.plugin_id,
                SavedViewDefault.page_path == page.path,
            )
        )

    async def default(self, page: Page) -> ViewInfo | None:
        """The user's default view of `page`, while they still see it (a view unshared from their role
        stops being anyone's default but its owner's)."""
        return next((info for info in await self.visible(page) if info.is_default), None)

    def _forget(self, page: Page) -> None:
        """After a write: the page's views and default are read again when asked."""
        self._visible.pop(page, None)
        self._defaults.pop(page, None)

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
            raise PermissionDeniedException(f"You need the permission {VIEWS_SHARE} in this tenant")
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
            raise PermissionDeniedException(f"You need the permission {VIEWS_SHARE} in this tenant")
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
        self._forget(page)
        return view

    async def _own_or_managed(self, page: Page, view_id: uuid.UUID | str) -> tuple[SavedView, ViewInfo]:
        info = await self.get(page, view_id, managing=True)
        if not info.manageable:
            raise PermissionDeniedException(
                f"Only its owner or a holder of {VIEWS_ADMIN} may change the view {info.name}"
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
                raise PermissionDeniedException(f"You need the permission {VIEWS_SHARE} in this tenant")
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
        self._forget(page)
        return view

    async def delete(self, page: Page, view_id: uuid.UUID | str) -> str:
        view, info = await self._own_or_managed(page, view_id)
        name = view.name
        await self.db.delete(view)
        await self.db.flush()
        facts = {"name": name, "roles": list(info.role_names), "params": info.params}
        await self._audit("view.delete", view, facts, None, f"Deleted the view {name}")
        self._forget(page)
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
        self._forget(page)
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
