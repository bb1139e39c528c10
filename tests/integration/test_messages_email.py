"""Notification email through a real SMTP server (aiosmtpd sink on a free port): sent after commit, not on
rollback, skipped for users who turned it off on their profile, and an unreachable server fails nothing."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from litestar.testing import TestClient

from app import messages
from app.audit import Actor
from app.core.settings import load_settings
from app.server import create_app
from tests.conftest import _settings_env
from tests.helpers import login, post_form
from tests.integration.test_messages import PASSWORD, make_world
from tests.integration.test_record_pages import in_db


class Sink:
    """Collects every message the portal sends."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # the aiosmtpd hook name
        msg = message_from_bytes(envelope.content)
        msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.received.append(msg)
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler, port = Sink(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def settings_env(db_url: str, tmp_path: Path, sink: tuple[Sink, int]) -> dict[str, str]:
    return {
        **_settings_env(tmp_path, db_url),
        "PORTAL_SMTP_HOST": "127.0.0.1",
        "PORTAL_SMTP_PORT": str(sink[1]),
        "PORTAL_SMTP_FROM": "portal@corp.test",
        "PORTAL_PUBLIC_URL": "https://portal.corp.test",
    }


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    """Served at its https public URL, as a browser would reach it (its cookies are Secure there)."""
    with TestClient(app=app, base_url="https://portal.corp.test") as c:
        yield c


def notify(app: Any, tenant: uuid.UUID, users: list[uuid.UUID], title: str, *, fail: bool = False) -> None:
    async def work(s: Any) -> None:
        await messages.notify(
            s,
            tenant,
            users,
            title,
            "Please look",
            "/t/acme/messages",
            source="workflow",
            actor=Actor(None, "system"),
        )
        if fail:
            raise RuntimeError("the caller's transaction fails after notifying")

    in_db(app, work)


def test_emails_after_commit_respecting_the_preference(client: Any, app: Any, sink: tuple[Sink, int]) -> None:
    box = sink[0]
    w = make_world(app)
    # bob turns email off on his profile; alice sees it on by default
    login(client, "bob@corp.test", PASSWORD)
    assert 'name="email_notifications" checked' in client.get("/t/acme/account").text
    saved = post_form(
        client, "/t/acme/account", {"display_name": "Bob", "language": "en"}, follow_redirects=False
    )
    assert saved.status_code == 303
    assert 'name="email_notifications" >' in client.get("/t/acme/account").text

    notify(app, w["acme"], [w["alice"], w["bob"]], "Approve order <PO-7>")
    [sent] = box.wait_for(1)
    assert sent["X-Envelope-To"] == "alice@corp.test" and sent["From"] == "portal@corp.test"
    assert sent["Subject"] == "Approve order <PO-7>"
    assert (
        "Please look" in sent.get_payload()
        and "https://portal.corp.test/t/acme/messages" in sent.get_payload()
    )

    # a rolled-back notification sends nothing
    with pytest.raises(RuntimeError):
        notify(app, w["acme"], [w["alice"]], "never happened", fail=True)
    notify(app, w["acme"], [w["alice"]], "after the rollback")
    box.wait_for(2)
    time.sleep(0.3)
    assert [m["Subject"] for m in box.received] == ["Approve order <PO-7>", "after the rollback"]


@pytest.fixture
def unreachable_app(settings_env: dict[str, str]) -> Iterator[Any]:
    """An app whose SMTP port nobody listens on (the mailer is the app's own: AppServices.mailer)."""
    app = create_app(load_settings({**settings_env, "PORTAL_SMTP_PORT": str(free_port())}))
    with TestClient(app=app, base_url="http://testserver.local"):
        yield app


def test_unreachable_smtp_fails_nothing(unreachable_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = unreachable_app
    w = make_world(app)
    with caplog.at_level(logging.WARNING, logger="portal.messages"):
        notify(app, w["acme"], [w["alice"]], "still delivered in-app")

        async def count(s: Any) -> int:
            return await messages.unread_count(s, w["acme"], w["alice"])

        assert in_db(app, count) == 1
        deadline = time.monotonic() + 5
        while "unusable" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "SMTP 127.0.0.1" in caplog.text and "1 email(s) not sent" in caplog.text
