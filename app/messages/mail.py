"""Notification email: sent after the transaction commits, off the event loop, never failing a request.

The SMTP settings come from PORTAL_SMTP_*; create_app builds the app's Mailer (AppServices.mailer), which
app.messages.notify finds through the session's services.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.settings import SmtpSettings

log = logging.getLogger("portal.messages")
PENDING_KEY = "portal_pending_mail"


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
        self._tasks: set[asyncio.Future[Any]] = set()  # sends in flight (kept referenced until done)

    @classmethod
    def from_settings(cls, smtp: SmtpSettings | None) -> Mailer | None:
        """The mailer for these SMTP settings; None when email is not configured."""
        return cls(smtp, smtp.base_url) if smtp is not None else None

    async def drain(self) -> None:
        """Wait for the emails queued so far (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

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
            log.warning(
                "Notification email: SMTP %s:%s unusable (%s); %d email(s) not sent",
                self.smtp.host,
                self.smtp.port,
                exc,
                len(mails) - sent,
            )
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
    mailer._tasks.add(task)  # keep a reference until done
    task.add_done_callback(mailer._tasks.discard)


def _drop(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
