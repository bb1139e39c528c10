"""Invitations: how a tenant admin brings an account into their tenant with its holder's consent.

Adding a member by email creates an invitation (role, and optionally manager and unit, as the admin
chose them) that the account holder accepts or declines at /invitations/{id}; only acceptance makes the
membership. It is addressed to the email, not to an account, so the admin's answer is the same whether
or not an account has that email:

- an existing account gets the invitation in its inbox (app.messages.notify_personal) and by email;
- an unknown email gets the very same invitation; when the admin may create accounts and typed an
  initial password, the account is created too (as before this change), otherwise the invitation waits
  for an account with that email to appear. Either way the admin sees "Invitation sent to ..." and a
  pending row, never "created" or "no such user". The initial password is checked, and hashed, on both
  paths so neither errors nor timing tell them apart.

Residual: an admin who set an initial password can try to sign in with it; that works only for an
account this very call created (an existing account keeps its own password). Telling the two apart
that way needs a real account made, audited, in the admin's name.

Platform admins (the system tenant's Admin role) still add members directly (app.web.directory_pages): they
see the whole user directory anyway.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, messages
from app.access.scopes import normalize_unit
from app.audit import Actor
from app.core.errors import Conflict, ConflictingValues, NotFound, ValidationFailed
from app.core.i18n import N_, translations_for
from app.core.identifiers import email_problem, normalize_email, text_problem
from app.core.models import Invitation, Membership, Role, Tenant, User, utcnow
from app.identity import directory, hierarchy
from app.identity.passwords import hash_password, password_problem

VALID_DAYS = 14
PENDING, ACCEPTED, DECLINED, REVOKED, EXPIRED = "pending", "accepted", "declined", "revoked", "expired"


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation
    tenant: Tenant
    role: Role

    @property
    def expired(self) -> bool:
        return self.invitation.state == PENDING and _aware(self.invitation.expires_at) <= utcnow()

    @property
    def state(self) -> str:
        return EXPIRED if self.expired else self.invitation.state


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def invitation_json(row: InvitationRow) -> dict[str, object]:
    inv = row.invitation
    return {
        "id": str(inv.id),
        "email": inv.email,
        "tenant": row.tenant.slug,
        "role": row.role.name,
        "role_id": str(row.role.id),
        "state": row.state,
        "unit": inv.unit,
        "manager_id": str(inv.manager_id) if inv.manager_id else None,
        "created_at": inv.created_at.isoformat(),
        "expires_at": inv.expires_at.isoformat(),
    }


def _select() -> object:
    return (
        select(Invitation, Tenant, Role)
        .join(Tenant, Tenant.id == Invitation.tenant_id)
        .join(Role, Role.id == Invitation.role_id)
    )


async def invite(
    session: AsyncSession,
    actor: Actor,
    tenant: Tenant,
    email: str,
    role: Role,
    *,
    manager: str | None = None,
    unit: str | None = None,
    password: str = "",
    display_name: str = "",
    may_create_account: bool = False,
) -> InvitationRow:
    """Invite `email` to `tenant` as `role`; the same outcome whether or not an account has that email."""
    email = normalize_email(email)
    errors: dict[str, str] = {}
    if problem := email_problem(email):
        errors["email"] = problem
    if role.tenant_id != tenant.id:
        errors["role"] = N_("That role belongs to another tenant.")
    if password and (problem := password_problem(password, email)):
        errors["password"] = problem
    if display_name and (problem := text_problem(display_name, "display name", 200)):
        errors["display_name"] = problem
    if unit and (problem := text_problem(unit, "unit", 100, required=False)):
        errors["unit"] = problem
    if errors:
        raise ValidationFailed(errors)
    manager_user = await hierarchy.resolve_member(session, tenant.id, manager, "manager") if manager else None
    # The admin sees their own members and invitations anyway: saying so tells them nothing new.
    member = await session.scalar(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant.id, User.email == email)
    )
    now = utcnow()
    await session.execute(
        update(Invitation)
        .where(
            Invitation.tenant_id == tenant.id,
            Invitation.email == email,
            Invitation.state == PENDING,
            Invitation.expires_at <= now,
        )
        .values(state=EXPIRED)
        .execution_options(synchronize_session=False)
    )
    pending = await session.scalar(
        select(Invitation.id).where(
            Invitation.tenant_id == tenant.id, Invitation.email == email, Invitation.state == PENDING
        )
    )
    if member or pending:
        raise ConflictingValues(
            {"email": N_("%(email)s is already a member of this tenant or invited.", email=email)}
        )
    user = await directory.find_user(session, email)
    if user is None and password and may_create_account:
        # Audited (and user.created raised) platform-wide, not in this tenant: the tenant's audit log
        # would otherwise show "Created user" for unknown emails only. The tenant sees member.add on acceptance.
        user = await directory.create_user(session, actor, email, password, display_name, tenant_id=None)
    elif password:
        hash_password(password)  # the same work as creating the account would do: no timing tell
    inv = Invitation(
        tenant_id=tenant.id,
        email=email,
        role_id=role.id,
        manager_id=manager_user.id if manager_user else None,
        unit=normalize_unit(unit),
        state=PENDING,
        invited_by=actor.user_id,
        invited_by_email=actor.email,
        created_at=now,
        expires_at=now + dt.timedelta(days=VALID_DAYS),
    )
    session.add(inv)
    await session.flush()
    await audit.record(
        session,
        actor,
        "member.invite",
        "invitation",
        inv.id,
        tenant_id=tenant.id,
        summary=f"Invited {email} as {role.name}",
        after={"email": email, "role": role.name},
    )
    if user is not None and user.is_active:
        # Stored as text: written in the invitee's language (their inbox and email show it as is).
        translations = translations_for(session, user.language)
        title = N_("Invitation to join %(tenant)s", tenant=tenant.name)
        body = N_(
            "%(inviter)s invites you to join %(tenant)s as %(role)s. Open the invitation to accept or "
            "decline it; it expires on %(expires)s.",
            inviter=actor.email or N_("An administrator"),
            tenant=tenant.name,
            role=role.name,
            expires=f"{inv.expires_at:%Y-%m-%d}",
        )
        await messages.notify_personal(
            session,
            user.id,
            title.translated(translations),  # type: ignore[attr-defined]
            body.translated(translations),  # type: ignore[attr-defined]
            f"/invitations/{inv.id}",
            source="invitations",
            sender=actor,
        )
    return InvitationRow(inv, tenant, role)


async def list_pending(session: AsyncSession, tenant_id: uuid.UUID) -> list[InvitationRow]:
    """The tenant's open invitations (expired ones included, marked so), newest first."""
    rows = await session.execute(
        _select()
        .where(Invitation.tenant_id == tenant_id, Invitation.state == PENDING)  # type: ignore[attr-defined]
        .order_by(Invitation.created_at.desc())
        .limit(200)
    )
    return [InvitationRow(i, t, r) for i, t, r in rows.all()]


async def for_user(session: AsyncSession, user: User) -> list[InvitationRow]:
    """The user's open, unexpired invitations."""
    rows = await session.execute(
        _select()  # type: ignore[attr-defined]
        .where(Invitation.email == user.email, Invitation.state == PENDING, Invitation.expires_at > utcnow())
        .order_by(Invitation.created_at.desc())
        .limit(100)
    )
    return [InvitationRow(i, t, r) for i, t, r in rows.all()]


async def get_for_user(
    session: AsyncSession, user: User, invitation_id: uuid.UUID, *, lock: bool = False
) -> InvitationRow:
    """One of the user's invitations (any state); someone else's is simply not there."""
    stmt = _select().where(Invitation.id == invitation_id, Invitation.email == user.email)  # type: ignore[attr-defined]
    row = (await session.execute(stmt.with_for_update(of=Invitation) if lock else stmt)).first()
    if row is None:
        raise NotFound(N_("No such invitation"))
    return InvitationRow(*row)


def _open(row: InvitationRow) -> None:
    if row.expired:
        raise Conflict(
            N_("This invitation to %(tenant)s has expired; ask for a new one.", tenant=row.tenant.name)
        )
    if row.invitation.state != PENDING:
        raise Conflict(
            N_(
                "This invitation to %(tenant)s is no longer open (%(state)s).",
                tenant=row.tenant.name,
                state=row.invitation.state,
            )
        )
    if not row.tenant.is_active:
        raise Conflict(N_("%(tenant)s is deactivated.", tenant=row.tenant.name))


async def accept(session: AsyncSession, actor: Actor, user: User, invitation_id: uuid.UUID) -> InvitationRow:
    """Join the tenant with the invitation's role (member.add audit and the user.added event, as any
    add), then its manager and unit when they still apply."""
    row = await get_for_user(session, user, invitation_id, lock=True)
    _open(row)
    inv = row.invitation
    try:
        await directory.add_member(session, actor, inv.tenant_id, user, row.role)
    except ValidationFailed:
        raise Conflict(N_("You are already a member of %(tenant)s.", tenant=row.tenant.name)) from None
    if inv.manager_id:
        # The manager may have left meanwhile (refused before any write): join without one rather than not at all.
        with contextlib.suppress(ValidationFailed, NotFound):
            await hierarchy.set_manager(session, actor, inv.tenant_id, user.id, str(inv.manager_id))
    if inv.unit:
        await hierarchy.set_unit(session, actor, inv.tenant_id, user.id, inv.unit)
    await _decide(session, actor, row, ACCEPTED)
    return row


async def decline(session: AsyncSession, actor: Actor, user: User, invitation_id: uuid.UUID) -> InvitationRow:
    row = await get_for_user(session, user, invitation_id, lock=True)
    _open(row)
    await _decide(session, actor, row, DECLINED)
    return row


async def revoke(
    session: AsyncSession, actor: Actor, tenant_id: uuid.UUID, invitation_id: uuid.UUID
) -> InvitationRow:
    """Withdraw an open (or expired) invitation of the tenant."""
    row = (
        await session.execute(
            _select()  # type: ignore[attr-defined]
            .where(Invitation.id == invitation_id, Invitation.tenant_id == tenant_id)
            .with_for_update(of=Invitation)
        )
    ).first()
    if row is None or row[0].state != PENDING:
        raise NotFound(N_("No such open invitation in this tenant"))
    found = InvitationRow(*row)
    await _decide(session, actor, found, REVOKED)
    return found


async def _decide(session: AsyncSession, actor: Actor, row: InvitationRow, state: str) -> None:
    inv = row.invitation
    inv.state, inv.decided_at = state, utcnow()
    await session.flush()
    verb = {ACCEPTED: "accepted", DECLINED: "declined", REVOKED: "revoked"}[state]
    await audit.record(
        session,
        actor,
        f"member.invite.{state}",
        "invitation",
        inv.id,
        tenant_id=inv.tenant_id,
        summary=f"Invitation of {inv.email} as {row.role.name} {verb}",
        after={"email": inv.email, "role": row.role.name, "state": state},
    )
