"""Notification email: sent after the transaction commits, off the event loop, never failing a request.

The SMTP settings are per process (PORTAL_SMTP_*); `configure` is called when the app is created.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

if TYPE_CHECKING:  # app.settings imports the sandbox, which imports this module
    from app.settings import SmtpSettings

log = logging.getLogger("portal.messages")
PENDING_KEY = "portal_pending_mail"
_mailer: Mailer | None = None
_tasks: set[asyncio.Future[None]] = set()


@dataclass(frozen=True)
class Mail:
    to: str
    title: str
    body: str
    link: str | None


class Mailer:
    def __init__(self, smtp: SmtpSettings, base_url: str = "") -> None:
        self.smtp = smtp
        self.base_url = base_url.rstrip("/")

    def compose(self, mail: Mail) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.title.replace("\r", " ").replace("\n", " ")
        text = mail.body
        if mail.link:
            text += f"\n\nOpen: {self.base_url}{mail.link}"
        msg.set_content(text or mail.title)
        return msg

    def send_now(self, mails: list[Mail]) -> int:
        """Send over one SMTP connection (blocking); failures are logged per message, never raised."""
        sent = 0
        try:
            with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=self.smtp.timeout_seconds) as conn:
                if self.smtp.starttls:
                    conn.starttls()
                if self.smtp.user:
                    conn.login(self.smtp.user, self.smtp.password)
                for mail in mails:
                    try:
                        conn.send_message(self.compose(mail))
                        sent += 1
                    except smtplib.SMTPException as exc:
                        log.warning("Notification email to %s failed: %s", mail.to, exc)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("Notification email: SMTP %s:%s unusable (%s); %d email(s) not sent",
                        self.smtp.host, self.smtp.port, exc, len(mails) - sent)
        return sent

    def send_after_commit(self, session: AsyncSession, mails: list[Mail]) -> None:
        """Queue `mails` until `session` commits (dropped on rollback)."""
        sync = session.sync_session
        sync.info.setdefault(PENDING_KEY, []).extend(mails)
        sync.info["portal_mailer"] = self
        if not sa_event.contains(sync, "after_commit", _flush):
            sa_event.listen(sync, "after_commit", _flush)
            sa_event.listen(sync, "after_rollback", _drop)


def _flush(session: Session) -> None:
    mails: list[Mail] = session.info.pop(PENDING_KEY, [])
    mailer: Mailer | None = session.info.get("portal_mailer")
    if not mails or mailer is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # committed outside an event loop (a script): a thread of its own
        threading.Thread(target=mailer.send_now, args=(mails,), daemon=True, name="portal-mail").start()
        return
    task = loop.run_in_executor(None, mailer.send_now, mails)
    _tasks.add(task)  # keep a reference until done
    task.add_done_callback(_tasks.discard)


def _drop(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


def configure(smtp: SmtpSettings | None) -> None:
    global _mailer
    _mailer = Mailer(smtp, smtp.base_url) if smtp is not None else None


def current() -> Mailer | None:
    return _mailer


async def drain() -> None:
    """Wait for queued emails (tests, shutdown)."""
    if _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)
