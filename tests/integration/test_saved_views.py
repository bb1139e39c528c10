"""Saved views of generated list pages, driven like a browser on both databases: save the list's state
(search, filters, sort, columns, page size) under a name and reopen it; a default view applies when
the list opens without a query; sharing with roles needs ui.views.share; owners and ui.views.admin
manage views; users and tenants never see each other's views; every change is audited."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.access import roles
from app.audit import Actor
from app.core.models import AuditEntry, Role, SavedView
from app.identity import directory
from app.installs import lifecycle
from app.plugins.packages import read_folder
from tests.helpers import login, logout, post_form, text_of
from tests.integration.test_record_pages import HX, ITEMS, in_db, make, manifest_only, seed_items, skus_on

G_ITEMS = "/t/globex/p/inventory/inventory/items"
ALICE = ("alice@acme.test", "alice-password-1")  # Admin of acme (holds ui.views.share and admin)
BOB = ("bob@acme.test", "bob-password-1")  # Member of acme: may see items, may not share
CAROL = ("carol@acme.test", "carol-password-1")  # Lead of acme: may see items and share views
GUS = ("gus@globex.test", "gus-password-1")  # Admin of globex


@pytest.fixture
def acme(client: Any, app: Any, tmp_path: Path) -> Any:
    inventory = manifest_only("inventory", tmp_path)

    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, read_folder(inventory), app.state.settings, install_now=True)
        acme = await directory.create_tenant(s, actor, "acme", "Acme")
        globex = await directory.create_tenant(s, actor, "globex", "Globex")
        for t in (acme, globex):
            await lifecycle.enable(s, actor, t.id, "inventory")
        member = await roles.get_role(s, acme.id, "Member")
        await roles.grant(s, actor, member, ["db.inventory_item.select", "db.inventory_category.select"])
        lead = await roles.create_role(s, actor, acme.id, "Lead")
        await roles.grant(s, actor, lead, ["db.inventory_item.select", "ui.views.share"])
        for (email, password), tenant, role in (
            (ALICE, acme, await roles.get_role(s, acme.id, "Admin")),
            (BOB, acme, member),
            (CAROL, acme, lead),
            (GUS, globex, await roles.get_role(s, globex.id, "Admin")),
        ):
            user = await directory.create_user(s, actor, email, password, email.split("@")[0].title())
            await directory.add_member(s, actor, tenant.id, user, role)

    in_db(app, work)
    login(client, *ALICE)
    seed_items(client, n=12)  # SKU-01..12; status discontinued for 5 and 10; Widget unless divisible by 3
    return client


def state_of(page: str) -> str:
    match = re.search(r'<input type="hidden" name="state" value="([^"]*)" form="view-save">', page)
    assert match, "the rows region keeps the save form's state"
    return html.unescape(match.group(1))


def view_ids(page: str) -> dict[str, str]:
    """The view menu: name -> id."""
    menu = page[page.index('id="view-list"') : page.index("</ul>", page.index('id="view-list"'))]
    return {html.unescape(n): i for i, n in re.findall(r'\?view=([0-9a-f-]{36})"[^>]*>([^<]+)</a>', menu)}


def current(page: str) -> str | None:
    menu = page[page.index('id="view-list"') : page.index("</ul>", page.index('id="view-list"'))]
    found = re.search(r'<a href="[^"]*" aria-current="true">([^<]+)</a>', menu)
    return html.unescape(found.group(1)) if found else None


def save(client: Any, name: str, state: str, **extra: Any) -> Any:
    return post_form(
        client, f"{ITEMS}/views", {"name": name, "state": state, **extra}, follow_redirects=False
    )


def headers_of(page: str) -> list[str]:
    head = page[page.index("<thead>") : page.index("</thead>")]
    return [text_of(h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S) if text_of(h).strip()]


def test_save_the_list_state_and_reopen_it(acme: Any, app: Any) -> None:
    client = acme
    query = {
        "q": "widget",
        "status": "active",
        "sort": "sku",
        "size": "10",
        "cols": ["sku", "name", "quantity"],
    }
    listed = client.get(ITEMS, params=query).text
    assert headers_of(listed)[:3] == ["SKU", "Name", "Quantity"] and "Unit price" not in headers_of(listed)
    state = state_of(listed)
    assert "page" not in state and "cols=sku" in state and "size=10" in state
    saved = save(client, "Active widgets", state)
    assert saved.status_code == 303
    view_url = saved.headers["location"]
    assert re.fullmatch(rf"{ITEMS}\?view=[0-9a-f-]{{36}}", view_url)

    reopened = client.get(view_url).text
    assert "Saved the view Active widgets" in text_of(reopened)
    assert (
        skus_on(reopened) == skus_on(listed) == ["SKU-01", "SKU-02", "SKU-04", "SKU-07", "SKU-08", "SKU-11"]
    )
    assert headers_of(reopened)[:3] == ["SKU", "Name", "Quantity"] and "Unit price" not in headers_of(
        reopened
    )
    assert 'value="widget"' in reopened and current(reopened) == "Active widgets"
    # The same list reached by its query is marked as that view too; another state is not.
    assert current(client.get(ITEMS, params=query).text) == "Active widgets"
    other = client.get(ITEMS, params={"q": "gadget"}, headers=HX).text
    assert current(other) is None and 'hx-swap-oob="true"' in other  # the menu follows the rows
    # Paging links of a view carry its whole state.
    assert "cols=sku%2Cname%2Cquantity" in reopened or "cols=" not in reopened

    # The view's query is stored cleaned: only the page's own parameters.
    forged = save(client, "Forged", "q=x&secret=1&status=nope&sort=password&size=7&cols=bogus")
    assert forged.status_code == 303

    async def stored(s: Any) -> dict[str, Any]:
        rows = (await s.execute(sa.select(SavedView.name, SavedView.params))).all()
        return dict(rows)

    params = in_db(app, stored)
    assert params["Active widgets"] == {
        "q": "widget",
        "status": "active",
        "sort": "sku",
        "size": "10",
        "cols": ["sku", "name", "quantity"],
    }
    assert params["Forged"] == {"q": "x", "status": "nope"}  # a bad filter value is the list's to report


def test_names_are_checked_and_kept_on_error(acme: Any) -> None:
    client = acme
    assert save(client, "Mine", "q=a").status_code == 303
    again = save(client, "Mine", "q=b")
    assert again.status_code == 422
    assert "There is already a view called Mine." in text_of(again.text)
    assert 'name="state" value="q=b"' in again.text  # the input is kept
    blank = save(client, "  ", "q=b")
    assert blank.status_code == 422 and "Enter a view name." in text_of(blank.text)


def test_the_default_view_opens_the_list(acme: Any) -> None:
    client = acme
    view_id = save(client, "Discontinued", "status=discontinued").headers["location"].rsplit("=", 1)[1]
    assert len(skus_on(client.get(ITEMS).text)) == 12  # no default yet
    made = post_form(client, f"{ITEMS}/views/{view_id}/default", {}, follow_redirects=False)
    assert made.status_code == 303
    opened = client.get(ITEMS).text
    assert sorted(skus_on(opened)) == ["SKU-05", "SKU-10"] and current(opened) == "Discontinued"
    assert "default" in text_of(opened[opened.index('id="view-list"') :])
    # ?view=all is the way out; clearing the filters of the default view shows every row and says so in
    # the address bar (a reload must not bring the default back).
    assert len(skus_on(client.get(ITEMS, params={"view": "all"}).text)) == 12
    cleared = client.get(ITEMS, headers=HX)
    assert len(skus_on(cleared.text)) == 12 and cleared.headers["hx-push-url"] == f"{ITEMS}?view=all"
    # Explicit query parameters win over the default.
    assert len(skus_on(client.get(ITEMS, params={"status": "active"}).text)) == 10
    unset = post_form(
        client, f"{ITEMS}/views/{view_id}/default", {"on": "0", "back": "views"}, follow_redirects=False
    )
    assert unset.headers["location"] == f"{ITEMS}/views"
    assert len(skus_on(client.get(ITEMS).text)) == 12


def test_sharing_with_roles(acme: Any, app: Any) -> None:
    client = acme

    async def role_id(s: Any, name: str) -> str:
        acme = await directory.get_tenant(s, "acme")
        return str(await s.scalar(sa.select(Role.id).where(Role.tenant_id == acme.id, Role.name == name)))

    member = in_db(app, lambda s: role_id(s, "Member"))
    # Alice (Admin) shares a view with Members; Bob (Member) sees it, Carol (Lead) does not.
    shared = save(client, "Team stock", "sort=sku", roles=member).headers["location"]
    private = save(client, "Alice only", "q=gadget").headers["location"]
    logout(client)
    login(client, *BOB)
    seen = client.get(ITEMS).text
    assert set(view_ids(seen)) == {"Team stock"}
    assert skus_on(client.get(shared).text)[0] == "SKU-01"  # sorted by sku
    gone = client.get(private).text  # another user's private view: as if it did not exist
    assert "That saved view does not exist (any more)." in text_of(gone) and len(skus_on(gone)) == 12
    # Bob may keep private views and make a shared one his default, but not share or manage others'.
    assert save(client, "Bob's", "q=widget").status_code == 303
    refused = save(client, "Bob shares", "q=x", roles=member)
    assert refused.status_code == 403
    shared_id = shared.rsplit("=", 1)[1]
    assert (
        post_form(client, f"{ITEMS}/views/{shared_id}/delete", {}, follow_redirects=False).status_code == 403
    )
    assert (
        post_form(
            client, f"{ITEMS}/views/{shared_id}", {"name": "Mine now"}, follow_redirects=False
        ).status_code
        == 403
    )
    post_form(client, f"{ITEMS}/views/{shared_id}/default", {}, follow_redirects=False)
    assert skus_on(client.get(ITEMS).text)[0] == "SKU-01"
    # The views page offers him no rename, share or delete of Alice's view.
    page = client.get(f"{ITEMS}/views").text
    row = page[page.index(f'id="view-{shared_id}"') :].split("</tr>")[0]
    assert "/delete" not in row and "Rename or share" not in row
    logout(client)

    login(client, *CAROL)
    assert set(view_ids(client.get(ITEMS).text)) == set()
    lead_share = save(client, "Lead picks", "status=active", roles=member)
    assert lead_share.status_code == 303  # Lead holds ui.views.share
    logout(client)

    # Alice (Admin: ui.views.admin) manages the view Carol shared, but never sees Bob's private one.
    login(client, *ALICE)
    page = client.get(f"{ITEMS}/views").text
    names = {html.unescape(n) for n in re.findall(r'\?view=[0-9a-f-]{36}">([^<]+)</a>', page)}
    assert names == {"Team stock", "Alice only", "Lead picks"}
    lead_id = lead_share.headers["location"].rsplit("=", 1)[1]
    renamed = post_form(
        client, f"{ITEMS}/views/{lead_id}", {"name": "Active (lead)", "sharing": "1"}, follow_redirects=False
    )
    assert renamed.status_code == 303  # and unshared: no roles ticked
    assert post_form(client, f"{ITEMS}/views/{lead_id}/delete", {}, follow_redirects=False).status_code == 404
    # Unshared, it is Carol's private view again: not Alice's to delete, not even to see.

    async def trail(s: Any) -> list[str]:
        rows = await s.execute(
            sa.select(AuditEntry.action, AuditEntry.actor_email)
            .where(AuditEntry.target_type == "saved_view")
            .order_by(AuditEntry.created_at)
        )
        return [f"{a} {e}" for a, e in rows.all()]

    actions = in_db(app, trail)
    assert "view.create alice@acme.test" in actions and "view.default bob@acme.test" in actions
    assert "view.update alice@acme.test" in actions and "view.create carol@acme.test" in actions


def test_views_stay_in_their_tenant(acme: Any, app: Any) -> None:
    client = acme
    view_id = save(client, "Acme view", "q=widget").headers["location"].rsplit("=", 1)[1]
    logout(client)
    login(client, *GUS)
    post_form(client, G_ITEMS.replace("/items", "/categories"), {"name": "Tools", "code": "T"})
    make(client, G_ITEMS, {"sku": "G-1", "name": "Globex widget", "status": "active", "quantity": "1"})
    page = client.get(G_ITEMS, params={"view": view_id}).text
    assert "That saved view does not exist (any more)." in text_of(page) and view_ids(page) == {}
    assert (
        post_form(client, f"{G_ITEMS}/views/{view_id}/delete", {}, follow_redirects=False).status_code == 404
    )
    assert (
        post_form(client, f"{G_ITEMS}/views/{view_id}/default", {}, follow_redirects=False).status_code == 404
    )
    # The same name is free in another tenant.
    assert (
        post_form(
            client, f"{G_ITEMS}/views", {"name": "Acme view", "state": ""}, follow_redirects=False
        ).status_code
        == 303
    )
    logout(client)
    login(client, *ALICE)
    assert set(view_ids(client.get(ITEMS).text)) == {"Acme view"}


def test_views_need_the_list(acme: Any, app: Any) -> None:
    """No select permission on the entity: no views of its list either."""
    client = acme
    logout(client)
    login(client, *CAROL)  # Lead: items only
    cats = ITEMS.replace("/items", "/categories")
    assert client.get(f"{cats}/views").status_code == 403
    assert (
        post_form(client, f"{cats}/views", {"name": "x", "state": ""}, follow_redirects=False).status_code
        == 403
    )


def test_every_change_needs_the_csrf_token(acme: Any, app: Any) -> None:
    client = acme
    view_id = save(client, "Kept", "q=a").headers["location"].rsplit("=", 1)[1]
    for url, data in (
        (f"{ITEMS}/views", {"name": "Forged", "state": ""}),
        (f"{ITEMS}/views/{view_id}", {"name": "Renamed"}),
        (f"{ITEMS}/views/{view_id}/default", {}),
        (f"{ITEMS}/views/{view_id}/delete", {}),
    ):
        assert client.post(url, data=data, follow_redirects=False).status_code == 403, url

    async def names(s: Any) -> list[str]:
        return list((await s.scalars(sa.select(SavedView.name))).all())

    assert in_db(app, names) == ["Kept"]
