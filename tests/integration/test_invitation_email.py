"""With SMTP configured, an invitation to an existing account is also emailed, after commit, with the
link to accept or decline it (both backends; aiosmtpd sink)."""

from __future__ import annotations

from typing import Any

from tests.helpers import login, post_form
from tests.integration.test_invitations import KNOWN, PW, invitation_id, world  # noqa: F401  (fixture)
from tests.integration.test_messages_email import Sink, client, settings_env, sink  # noqa: F401  (fixtures)


def test_an_invitation_is_emailed_with_its_link(
    client: Any, app: Any, world: Any, sink: tuple[Sink, int]
) -> None:
    login(client, "alice@demo.test", PW)
    r = post_form(client, "/t/demo/admin/members", {"email": KNOWN, "role": "Sales"}, follow_redirects=False)
    assert r.status_code == 303
    received = sink[0].wait_for(1)
    assert len(received) == 1
    msg = received[0]
    assert msg["X-Envelope-To"] == KNOWN and msg["Subject"] == "Invitation to join Demo Company"
    body = msg.get_payload(decode=True).decode()
    assert "invites you to join Demo Company as Sales" in body
    assert f"https://portal.corp.test/invitations/{invitation_id(app, KNOWN)}" in body
