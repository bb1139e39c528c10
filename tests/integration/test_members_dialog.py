"""Members: a table with one edit dialog per member (role, reports to, unit in one save). A refused save
stays on the members page with that dialog open, its errors inside and the values as typed."""

from __future__ import annotations

import re
from typing import Any

from app.demo import DEMO_PASSWORD
from tests.helpers import login, post_form
from tests.integration.test_error_pages import _demo, text_of

MEMBERS = "/t/demo/admin/members"


def _id(html: str, email: str) -> str:
    found = re.search(
        r'<tr id="member-([0-9a-f-]{36})">\s*<td>[^<]*<br><span class="muted">' + re.escape(email), html
    )
    assert found, email
    return found.group(1)


def _dialog(html: str, uid: str) -> str:
    found = re.search(rf'<dialog id="edit-{uid}".*?</dialog>', html, re.S)
    assert found
    return found.group(0)


def test_edit_dialog_saves_role_manager_and_unit_together(client: Any, app: Any) -> None:
    _demo(app)
    login(client, "alice@demo.test", DEMO_PASSWORD)
    html = client.get(MEMBERS).text
    table = html.split('<table class="members">', 1)[1]
    assert 'name="manager"' not in table.split("<dialog", 1)[0]  # no inline forms in the table itself
    bob = _id(html, "bob@demo.test")
    assert "<dialog" in html and " open" not in _dialog(html, bob)[:120]
    saved = post_form(
        client, f"{MEMBERS}/{bob}", {"role": "Buyer", "manager": "dave@demo.test", "unit": "north"}
    )
    assert saved.status_code == 200 and "Member saved" in text_of(saved.text)
    row = re.search(rf'<tr id="member-{bob}">.*?</tr>', saved.text, re.S)
    assert row is not None
    assert "Buyer" in row.group(0) and "dave@demo.test" in row.group(0) and "north" in row.group(0)
    # Without script the Edit link opens the dialog on the page itself.
    opened = client.get(MEMBERS, params={"edit": bob}).text
    assert re.search(rf'<dialog id="edit-{bob}"[^>]* open', opened)


def test_refused_save_keeps_the_dialog_open_with_errors_and_input(client: Any, app: Any) -> None:
    _demo(app)
    login(client, "alice@demo.test", DEMO_PASSWORD)
    bob = _id(client.get(MEMBERS).text, "bob@demo.test")
    refused = post_form(
        client, f"{MEMBERS}/{bob}", {"role": "Buyer", "manager": "nobody@nowhere.test", "unit": "south"}
    )
    assert refused.status_code == 422 and refused.url.path == MEMBERS + f"/{bob}"
    dialog = _dialog(refused.text, bob)
    assert re.search(rf'<dialog id="edit-{bob}"[^>]* open', dialog)
    assert 'class="error"' in dialog and 'aria-invalid="true"' in dialog
    assert 'value="nobody@nowhere.test"' in dialog and 'value="south"' in dialog
    assert re.search(r'<option value="Buyer"\s+selected', dialog)
    # Nothing was saved: bob is still a Member without a manager.
    row = re.search(rf'<tr id="member-{bob}">.*?</tr>', client.get(MEMBERS).text, re.S)
    assert row is not None and "Member" in row.group(0) and "south" not in row.group(0)
    # The tenant's last Admin cannot be demoted: said inside her dialog.
    alice = _id(client.get(MEMBERS).text, "alice@demo.test")
    last = post_form(client, f"{MEMBERS}/{alice}", {"role": "Member", "manager": "", "unit": ""})
    assert last.status_code == 409
    assert 'class="error"' in _dialog(last.text, alice)
