"""The `message` base module: in-app notifications per user and tenant, optionally also emailed.

Other modules (the workflow, plugins through the `notify` host function) call `notify`; the inbox page,
the header bell and the JSON API read with `list_for`/`unread_count` and write with `mark_read`/
`mark_all_read`. Every function is scoped by (tenant, user): a message of tenant A never shows in
tenant B, and nobody reads another user's messages. Recipients must be members of the tenant.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.audit import Actor
from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_
from app.core.models import Membership, Message, MessagePreference, User, utcnow
from app.messages import mail
from app.services import services_of

MAX_RECIPIENTS = 200  # per notify call
MAX_TITLE = 200
MAX_BODY = 4000
MAX_LINK = 500
MAX_SOURCE = 64

__all__ = [
    "MAX_BODY",
    "MAX_LINK",
    "MAX_RECIPIENTS",
    "MAX_TITLE",
    "Inbox",
    "check_link",
    "email_enabled",
    "list_for",
    "mark_all_read",
    "mark_read",
    "mark_read_by_link",
    "message_json",
    "notify",
    "notify_personal",
    "set_email_enabled",
    "unread_count",
    "unread_count_query",
]


@dataclass(frozen=True)
class Inbox:
    rows: list[Message]
    total: int
    unread: int


def check_link(link: str | None) -> str | None:
    """A link inside the portal: a path starting with one `/`, no scheme, no host (no open redirect)."""
    if link is None or not link.strip():
        return None
    link = link.strip()
    if len(link) > MAX_LINK:
        raise ValidationFailed({"link": N_("must be at most %(max_link)s characters", max_link=MAX_LINK)})
    if any(ord(c) < 32 or c == "\\" for c in link):
        raise ValidationFailed({"link": N_("must not contain control characters or backslashes")})
    parts = urlsplit(link)
    if not link.startswith("/") or link.startswith("//") or parts.scheme or parts.netloc:
        raise ValidationFailed(
            {"link": N_("must be a relative URL inside the portal, starting with a single /")}
        )
    return link


def _user_ids(user_ids: Iterable[Any]) -> list[uuid.UUID]:
    out: list[uuid.UUID] = []
    for raw in user_ids:
        try:
            uid = raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))
        except ValueError:
            raise ValidationFailed(
                {"user_ids": N_("%(raw)s is not a user id", raw=repr(str(raw)[:60]))}
            ) from None
        if uid not in out:
            out.append(uid)
    if not out:
        raise ValidationFailed({"user_ids": N_("name at least one recipient")})
    if len(out) > MAX_RECIPIENTS:
        raise ValidationFailed(
            {
                "user_ids": N_(
                    "at most %(max_recipients)s recipients per call, got %(out_length)s",
                    max_recipients=MAX_RECIPIENTS,
                    out_length=len(out),
                )
            }
        )
    return out


def _text(value: str, name: str, limit: int, *, required: bool) -> str:
    if not isinstance(value, str):
        raise ValidationFailed({name: N_("must be text")})
    value = value.strip()
    if required and not value:
        raise ValidationFailed({name: N_("is required")})
    if len(value) > limit:
        raise ValidationFailed(
            {name: N_("must be at most %(limit)s characters, got %(length)s", limit=limit, length=len(value))}
        )
    return value


async def notify(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_ids: Iterable[Any],
    title: str,
    body: str = "",
    link: str | None = None,
    *,
    source: str,
    actor: Actor,
) -> list[Message]:
    """Create one message per recipient (all members of the tenant, or nothing is sent).

    Audited once per call (who sent how many, from which source). When SMTP is configured, each
    recipient who has not turned email off also gets an email, sent after the transaction commits.
    """
    recipients = _user_ids(user_ids)
    title = _text(title, "title", MAX_TITLE, required=True)
    body = _text(body, "body", MAX_BODY, required=False)
    link = check_link(link)
    source = _text(source, "source", MAX_SOURCE, required=True)
    members = set(
        (
            await session.scalars(
                select(Membership.user_id).where(
                    Membership.tenant_id == tenant_id, Membership.user_id.in_(recipients)
                )
            )
        ).all()
    )
    outsiders = [str(u) for u in recipients if u not in members]
    if outsiders:
        shown = ", ".join(outsiders[:5]) + (f" and {len(outsiders) - 5} more" if len(outsiders) > 5 else "")
        raise ValidationFailed({"user_ids": N_("not members of this tenant: %(shown)s", shown=shown)})
    now = utcnow()
    rows = [
        Message(
            tenant_id=tenant_id,
            user_id=u,
            title=title,
            body=body,
            link=link,
            source=source,
            sender_id=actor.user_id,
            created_at=now,
        )
        for u in recipients
    ]
    session.add_all(rows)
    await audit.record(
        session,
        actor,
        "message.notify",
        "message",
        tenant_id=tenant_id,
        summary=f"{source} notified {len(rows)} user(s): {title[:80]}",
        after={"source": source, "recipients": len(rows)},
    )
    await _email_after_commit(session, recipients, title, body, link)
    await session.flush()
    return rows


async def notify_personal(
    session: AsyncSession,
    user_id: uuid.UUID,
    title: str,
    body: str = "",
    link: str | None = None,
    *,
    source: str,
    sender: Actor,
) -> int:
    """A message about the user's own account rather than a tenant's business (an invitation to join a
    tenant they are not in yet): one row in their inbox in each tenant they belong to, and one email.

    No tenant's audit log records it: the caller audits in the tenant it acts for, so the invitee's
    other tenants learn nothing about it. Returns how many inbox rows were written (0 for an account
    without tenants: it finds the matter on its own landing page).
    """
    title = _text(title, "title", MAX_TITLE, required=True)
    body = _text(body, "body", MAX_BODY, required=False)
    link = check_link(link)
    tenants = list(
        (await session.scalars(select(Membership.tenant_id).where(Membership.user_id == user_id))).all()
    )
    now = utcnow()
    session.add_all(
        [
            Message(
                tenant_id=t,
                user_id=user_id,
                title=title,
                body=body,
                link=link,
                source=source,
                sender_id=sender.user_id,
                created_at=now,
            )
            for t in tenants
        ]
    )
    await _email_after_commit(session, [user_id], title, body, link)
    await session.flush()
    return len(tenants)


async def _email_after_commit(
    session: AsyncSession, user_ids: list[uuid.UUID], title: str, body: str, link: str | None
) -> None:
    """Queue the emails of a notification with the mailer of the app that opened this session (none:
    SMTP not configured); they leave after the caller's commit."""
    services = services_of(session)
    mailer = services.mailer if services is not None else None
    if mailer is None:
        return
    addresses = await _email_addresses(session, user_ids)
    if addresses:
        mailer.send_after_commit(session, [mail.Mail(to, title, body, link) for to in addresses])


async def _email_addresses(session: AsyncSession, user_ids: list[uuid.UUID]) -> list[str]:
    """Active recipients who have not turned notification emails off."""
    query = (
        select(User.email)
        .outerjoin(MessagePreference, MessagePreference.user_id == User.id)
        .where(
            User.id.in_(user_ids),
            User.is_active.is_(True),
            (MessagePreference.email.is_(None)) | (MessagePreference.email.is_(True)),
        )
    )
    return list((await session.scalars(query)).all())


def _mine(tenant_id: uuid.UUID, user_id: uuid.UUID) -> Any:
    return (Message.tenant_id == tenant_id) & (Message.user_id == user_id)


def unread_count_query(tenant_id: uuid.UUID, user_id: uuid.UUID) -> Any:
    """One COUNT answered by ix_messages_inbox_unread (the header bell asks on every page, together
    with the other header badges in one statement: app.web.render)."""
    return (
        select(func.count()).select_from(Message).where(_mine(tenant_id, user_id), Message.read_at.is_(None))
    )


async def unread_count(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    return int((await session.scalar(unread_count_query(tenant_id, user_id))) or 0)


async def list_for(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    unread_only: bool = False,
    offset: int = 0,
    limit: int = 25,
) -> Inbox:
    """The user's messages in the tenant: unread first, newest first within each group."""
    # Two index-ordered slices (unread, then read) instead of one sort of all the user's messages.
    mine = _mine(tenant_id, user_id)
    unread = await unread_count(session, tenant_id, user_id)
    total = (
        unread
        if unread_only
        else int((await session.scalar(select(func.count()).select_from(Message).where(mine))) or 0)
    )

    async def part(cond: Any, skip: int, take: int) -> list[Message]:
        query = (
            select(Message)
            .where(mine, cond)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .offset(skip)
            .limit(take)
        )
        return list((await session.scalars(query)).all())

    rows = await part(Message.read_at.is_(None), offset, limit) if offset < unread else []
    if not unread_only and len(rows) < limit:
        rows += await part(Message.read_at.is_not(None), max(0, offset - unread), limit - len(rows))
    return Inbox(rows, total, unread)


async def get(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, message_id: uuid.UUID
) -> Message:
    row = await session.scalar(select(Message).where(_mine(tenant_id, user_id), Message.id == message_id))
    if row is None:  # another user's or another tenant's message is simply not there
        raise NotFound(N_("No such message"))
    return row


async def mark_read(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, message_id: uuid.UUID
) -> Message:
    row = await get(session, tenant_id, user_id, message_id)
    if row.read_at is None:
        row.read_at = utcnow()
        await session.flush()
    return row


async def mark_all_read(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    result = await session.execute(
        update(Message)
        .where(_mine(tenant_id, user_id), Message.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def mark_read_by_link(session: AsyncSession, tenant_id: uuid.UUID, source: str, link: str) -> int:
    """Mark read every unread message of `source` pointing at `link` in the tenant (a decided approval
    task: its "Approval needed" messages, to each assignee it ever had, have nothing left to ask)."""
    result = await session.execute(
        update(Message)
        .where(
            Message.tenant_id == tenant_id,
            Message.source == source,
            Message.link == link,
            Message.read_at.is_(None),
        )
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def email_enabled(session: AsyncSession, user_id: uuid.UUID) -> bool:
    value = await session.scalar(select(MessagePreference.email).where(MessagePreference.user_id == user_id))
    return True if value is None else bool(value)


async def set_email_enabled(session: AsyncSession, user_id: uuid.UUID, enabled: bool) -> None:
    row = await session.scalar(select(MessagePreference).where(MessagePreference.user_id == user_id))
    if row is None:
        session.add(MessagePreference(user_id=user_id, email=enabled))
    else:
        row.email = enabled
    await session.flush()


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def message_json(row: Message) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "title": row.title,
        "body": row.body,
        "link": row.link,
        "source": row.source,
        "created_at": _iso(row.created_at),
        "read_at": _iso(row.read_at),
        "read": row.read_at is not None,
    }
