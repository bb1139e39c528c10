"""Tenants, users and memberships (exactly one role per user per tenant)."""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access import policy, roles
from app.audit import Actor
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.identifiers import email_problem, normalize_email, slug_problem, text_problem
from app.core.models import Membership, Role, Tenant, User
from app.core.settings import SYSTEM_TENANT_ID
from app.events import Event, emit
from app.identity import sessions, tokens
from app.identity.passwords import hash_password, password_problem
from app.installs import lifecycle

SYSTEM_UUID = uuid.UUID(SYSTEM_TENANT_ID)
LANGUAGES = ("en", "zh")
# The IANA zones a tenant may show its times in (the system's zone database), sorted.
TIME_ZONES: tuple[str, ...] = tuple(sorted(zoneinfo.available_timezones()))


class TenantLike(Protocol):
    """What `tenant_dict` reads: a `Tenant` row, or a plain snapshot of one (the web switcher's)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def slug(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def is_active(self) -> bool: ...


def tenant_dict(t: TenantLike) -> dict[str, object]:
    return {
        "id": str(t.id),
        "slug": t.slug,
        "name": t.name,
        "is_active": t.is_active,
        "time_zone": getattr(t, "time_zone", ""),
    }


def user_dict(u: User) -> dict[str, object]:
    return {
        "id": str(u.id),
        "email": u.email,
        "display_name": u.display_name,
        "is_active": u.is_active,
        "language": u.language,
    }


# --- tenants -------------------------------------------------------------------------------------


async def find_tenant(session: AsyncSession, ref: str) -> Tenant | None:
    """A tenant by slug or UUID."""
    try:
        return await session.get(Tenant, uuid.UUID(ref))
    except ValueError:
        return await session.scalar(select(Tenant).where(Tenant.slug == ref.strip().lower()))


async def get_tenant(session: AsyncSession, ref: str) -> Tenant:
    tenant = await find_tenant(session, ref)
    if tenant is None:
        raise NotFound(N_("No tenant %(ref)s", ref=repr(ref)))
    return tenant


async def create_tenant(
    session: AsyncSession, actor: Actor, slug: str, name: str, *, tenant_id: uuid.UUID | None = None
) -> Tenant:
    slug = slug.strip().lower()
    errors: dict[str, str] = {}
    if tenant_id != SYSTEM_UUID and (problem := slug_problem(slug)):
        errors["slug"] = problem
    if problem := text_problem(name, "name", 200):
        errors["name"] = problem
    if not errors and await session.scalar(select(Tenant.id).where(Tenant.slug == slug)):
        errors["slug"] = N_("The slug '%(slug)s' is already taken.", slug=slug)
    if errors:
        raise ValidationFailed(errors)
    tenant = Tenant(slug=slug, name=name.strip(), is_active=True)
    if tenant_id is not None:
        tenant.id = tenant_id
    session.add(tenant)
    await session.flush()
    await policy.bump_directory_version(session)  # platform admins' tenant switchers list it
    await roles.create_default_roles(session, tenant.id)
    await audit.record(
        session,
        actor,
        "tenant.create",
        "tenant",
        tenant.id,
        tenant_id=tenant.id,
        summary=f"Created tenant {slug}",
        after=tenant_dict(tenant),
    )
    enabled: list[str] = []
    if tenant.id != SYSTEM_UUID:
        enabled = await lifecycle.enable_defaults(session, actor, tenant.id)
    # Delivered after the commit: on-tenant-created of the plugins just enabled, handle-event of subscribers.
    await _raise(session, actor, "tenant.created", tenant.id, {**tenant_dict(tenant), "plugins": enabled})
    return tenant


async def _raise(
    session: AsyncSession,
    actor: Actor,
    event_type: str,
    tenant_id: uuid.UUID | None,
    payload: dict[str, object],
) -> None:
    body = {
        "tenant_id": str(tenant_id) if tenant_id else None,
        **payload,
        "actor": actor.email,
        "actor_id": str(actor.user_id) if actor.user_id else None,
    }
    await emit(session, Event(event_type, str(tenant_id) if tenant_id else None, body, actor=actor.email))


async def update_tenant(
    session: AsyncSession,
    actor: Actor,
    tenant: Tenant,
    *,
    name: str | None = None,
    is_active: bool | None = None,
    time_zone: str | None = None,
) -> Tenant:
    before = tenant_dict(tenant)
    if time_zone is not None:
        if time_zone and time_zone not in TIME_ZONES:
            raise ValidationFailed({"time_zone": N_("Choose a time zone from the list (or none: UTC).")})
        tenant.time_zone = time_zone
    if name is not None:
        if problem := text_problem(name, "name", 200):
            raise ValidationFailed({"name": problem})
        tenant.name = name.strip()
    if is_active is not None:
        if tenant.id == SYSTEM_UUID and not is_active:
            raise Conflict(N_("The system tenant cannot be deactivated"))
        tenant.is_active = is_active
    await session.flush()
    await policy.bump_directory_version(session)  # tenant switchers show names and hide inactive tenants
    await audit.record(
        session,
        actor,
        "tenant.update",
        "tenant",
        tenant.id,
        tenant_id=tenant.id,
        summary=f"Updated tenant {tenant.slug}",
        before=before,
        after=tenant_dict(tenant),
    )
    return tenant


async def list_tenants(
    session: AsyncSession, q: str = "", offset: int = 0, limit: int = 25
) -> tuple[list[Tenant], int]:
    stmt = select(Tenant)
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(Tenant.slug).like(like), func.lower(Tenant.name).like(like)))
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.scalars(stmt.order_by(Tenant.slug).offset(offset).limit(limit))
    return list(rows.all()), int(total)


async def active_tenants(session: AsyncSession, limit: int = 200) -> list[Tenant]:
    rows = await session.scalars(
        select(Tenant).where(Tenant.is_active.is_(True)).order_by(Tenant.name).limit(limit)
    )
    return list(rows.all())


# --- users ---------------------------------------------------------------------------------------


async def find_user(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == normalize_email(email)))


async def create_user(
    session: AsyncSession,
    actor: Actor,
    email: str,
    password: str,
    display_name: str = "",
    language: str = "en",
    *,
    tenant_id: uuid.UUID | None = None,
) -> User:
    email = normalize_email(email)
    errors: dict[str, str] = {}
    if problem := email_problem(email):
        errors["email"] = problem
    elif await find_user(session, email):
        errors["email"] = N_("A user with the email %(email)s already exists.", email=email)
    if problem := password_problem(password, email):
        errors["password"] = problem
    display_name = display_name.strip() or email.split("@")[0]
    errors.update(_profile_errors(display_name, language))
    if errors:
        raise ValidationFailed(errors)
    user = User(
        email=email,
        display_name=display_name,
        password_hash=hash_password(password),
        is_active=True,
        language=language,
    )
    session.add(user)
    await session.flush()
    await audit.record(
        session,
        actor,
        "user.create",
        "user",
        user.id,
        tenant_id=tenant_id,
        summary=f"Created user {email}",
        after=user_dict(user),
    )
    await _raise(
        session,
        actor,
        "user.created",
        tenant_id,
        {"user_id": str(user.id), "email": user.email, "display_name": user.display_name},
    )
    return user


def _profile_errors(display_name: str, language: str) -> dict[str, str]:
    errors = {}
    if problem := text_problem(display_name, "display name", 200):
        errors["display_name"] = problem
    if language not in LANGUAGES:
        errors["language"] = N_("Choose one of: %(languages)s.", languages=", ".join(LANGUAGES))
    return errors


async def update_profile(
    session: AsyncSession, actor: Actor, user: User, display_name: str, language: str
) -> User:
    before = user_dict(user)
    if errors := _profile_errors(display_name, language):
        raise ValidationFailed(errors)
    user.display_name, user.language = display_name.strip(), language
    await session.flush()
    await audit.record(
        session,
        actor,
        "user.update",
        "user",
        user.id,
        summary=f"Updated profile of {user.email}",
        before=before,
        after=user_dict(user),
    )
    return user


async def set_password(
    session: AsyncSession, actor: Actor, user: User, password: str, *, keep_session: str | None = None
) -> int:
    """Set the password and end the user's other sessions: whoever signed in with the old one (someone who
    learnt it, a forgotten browser) is out. A self-service change passes its own session token as
    `keep_session`; a reset by someone else (CLI, admin) ends them all. How many sessions ended."""
    if problem := password_problem(password, user.email):
        raise ValidationFailed({"password": problem})
    user.password_hash = hash_password(password)
    await session.flush()
    ended = await sessions.end_all_for(session, user.id, keep_token=keep_session)
    await audit.record(
        session,
        actor,
        "user.password",
        "user",
        user.id,
        summary=f"Changed password of {user.email}; ended {ended} other session(s)",
    )
    return ended


async def set_user_active(session: AsyncSession, actor: Actor, user: User, active: bool) -> User:
    """Deactivate or reactivate an account. Deactivating ends all its sessions and revokes its API tokens,
    so reactivating it later does not bring old credentials back to life; it is refused while the account
    is the last active Admin of any tenant, like a demotion there."""
    if not active and user.is_active:
        admin_of = (
            await session.scalars(
                select(Membership.tenant_id)
                .join(Role, Role.id == Membership.role_id)
                .where(Membership.user_id == user.id, Role.builtin == roles.ADMIN)
            )
        ).all()
        for tenant_id in sorted(admin_of):  # a fixed order: two deactivations lock tenants alike
            await _keep_one_admin(session, tenant_id, user.id)
    before = user_dict(user)
    user.is_active = active
    await session.flush()
    summary = f"{'Activated' if active else 'Deactivated'} user {user.email}"
    if not active:
        ended = await sessions.end_all_for(session, user.id)
        revoked = await tokens.revoke_all_for(session, actor, user)
        summary += f"; ended {ended} session(s), revoked {revoked} API token(s)"
    await audit.record(
        session,
        actor,
        "user.activate" if active else "user.deactivate",
        "user",
        user.id,
        summary=summary,
        before=before,
        after=user_dict(user),
    )
    return user


# --- memberships ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    user: User
    role: Role


async def list_members(
    session: AsyncSession, tenant_id: uuid.UUID, q: str = "", offset: int = 0, limit: int = 25
) -> tuple[list[MemberRow], int]:
    stmt = (
        select(Membership, User, Role)
        .join(User, User.id == Membership.user_id)
        .join(Role, Role.id == Membership.role_id)
        .where(Membership.tenant_id == tenant_id)
    )
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(or_(User.email.like(like), func.lower(User.display_name).like(like)))
    total = (
        await session.scalar(
            select(func.count()).select_from(stmt.with_only_columns(Membership.id).subquery())
        )
        or 0
    )
    rows = await session.execute(stmt.order_by(User.email).offset(offset).limit(limit))
    return [MemberRow(m, u, r) for m, u, r in rows.all()], int(total)


async def active_member_ids(session: AsyncSession, tenant_id: uuid.UUID, cond: Any) -> list[uuid.UUID]:
    """Ids of the tenant's members whose user is active and who match `cond` (a condition on Membership),
    by email."""
    rows = await session.scalars(
        select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id, User.is_active.is_(True), cond)
        .order_by(User.email)
    )
    return list(rows.all())


async def get_membership(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> Membership:
    m = await session.scalar(
        select(Membership).where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
    )
    if m is None:
        raise NotFound(N_("That user is not a member of this tenant"))
    return m


async def add_member(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, user: User, role: Role
) -> Membership:
    if role.tenant_id != tenant_id:
        raise ValidationFailed({"role": N_("That role belongs to another tenant.")})
    exists = await session.scalar(
        select(Membership.id).where(Membership.tenant_id == tenant_id, Membership.user_id == user.id)
    )
    if exists:
        raise ValidationFailed(
            {"email": N_("%(email)s is already a member of this tenant.", email=user.email)}
        )
    m = Membership(tenant_id=tenant_id, user_id=user.id, role_id=role.id)
    session.add(m)
    await session.flush()
    await policy.bump_policy_version(session, tenant_id)
    await policy.bump_directory_version(session)  # tenant switchers
    await audit.record(
        session,
        actor,
        "member.add",
        "tenant_user",
        user.id,
        tenant_id=tenant_id,
        summary=f"Added {user.email} as {role.name}",
        after={"user": user.email, "role": role.name},
    )
    await _raise(
        session,
        actor,
        "user.added",
        tenant_id,
        {"user_id": str(user.id), "email": user.email, "role": role.name, "role_id": str(role.id)},
    )
    return m


async def change_member_role(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> Membership:
    if role.tenant_id != tenant_id:
        raise ValidationFailed({"role": N_("That role belongs to another tenant.")})
    if role.builtin != roles.ADMIN:  # checked (and locked) before the membership is read: see _keep_one_admin
        await _keep_one_admin(session, tenant_id, user_id)
    m = await get_membership(session, tenant_id, user_id)
    old = await session.get(Role, m.role_id)
    m.role_id = role.id
    await session.flush()
    await policy.bump_policy_version(session, tenant_id)
    await policy.bump_directory_version(session)  # tenant switchers
    user = await session.get(User, user_id)
    await audit.record(
        session,
        actor,
        "member.role",
        "tenant_user",
        user_id,
        tenant_id=tenant_id,
        summary=f"Changed role of {user.email if user else user_id} to {role.name}",
        before={"role": old.name if old else None},
        after={"role": role.name},
    )
    await _raise(
        session,
        actor,
        "user.role_changed",
        tenant_id,
        {
            "user_id": str(user_id),
            "email": user.email if user else None,
            "role": role.name,
            "role_id": str(role.id),
            "old_role": old.name if old else None,
            "old_role_id": str(old.id) if old else None,
        },
    )
    return m


async def remove_member(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await _keep_one_admin(session, tenant_id, user_id)
    m = await get_membership(session, tenant_id, user_id)
    role = await session.get(Role, m.role_id)
    user = await session.get(User, user_id)
    from app.identity.hierarchy import detach

    moved = await detach(session, tenant_id, user_id)  # their reports move up to the leaver's manager
    await session.delete(m)
    await session.flush()
    await policy.bump_policy_version(session, tenant_id)
    await policy.bump_directory_version(session)  # tenant switchers
    await audit.record(
        session,
        actor,
        "member.remove",
        "tenant_user",
        user_id,
        tenant_id=tenant_id,
        summary=f"Removed {user.email if user else user_id}"
        + (f"; {moved} report(s) moved to their manager" if moved else ""),
        before={"user": user.email if user else None, "role": role.name if role else None},
    )
    await _raise(
        session,
        actor,
        "user.removed",
        tenant_id,
        {"user_id": str(user_id), "email": user.email if user else None, "role": role.name if role else None},
    )


async def _keep_one_admin(session: AsyncSession, tenant_id: uuid.UUID, leaving: uuid.UUID) -> None:
    """Refuse a change that would leave the tenant without an active member holding its Admin role.

    Called before demoting or removing `leaving` (page, API and CLI all come here), and before the
    caller reads the membership, so the decision rests on locked, current rows only. Race safety: on
    PostgreSQL the tenant's Admin memberships are locked FOR UPDATE in id order, so two admins demoting
    each other at once serialize and the second one counts again after the first commits (READ
    COMMITTED re-checks locked rows against the query). SQLite has no row locks: the tenant-row
    update below takes its single write lock first, so the count that follows cannot go stale before
    commit (a transaction whose reads were overtaken fails to write instead of writing).
    """
    if session.get_bind().dialect.name == "sqlite":
        await policy.bump_policy_version(session, tenant_id)  # the callers bump it anyway
    admins = (
        await session.scalars(
            select(Membership.user_id)
            .join(Role, Role.id == Membership.role_id)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant_id, Role.builtin == roles.ADMIN, User.is_active.is_(True))
            .order_by(Membership.id)
            .with_for_update(of=Membership)
        )
    ).all()
    if leaving in admins and not [uid for uid in admins if uid != leaving]:
        tenant = await session.get(Tenant, tenant_id)
        name = tenant.name if tenant else "This tenant"
        raise Conflict(N_("%(name)s needs at least one Admin; make someone else Admin first.", name=name))


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[Tenant, Role]]:
    rows = await session.execute(
        select(Tenant, Role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .join(Role, Role.id == Membership.role_id)
        .where(Membership.user_id == user_id)
        .order_by(Tenant.id == SYSTEM_UUID, Tenant.name)
    )
    return [(t, r) for t, r in rows.all()]
