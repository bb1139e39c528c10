"""The header's tenant switcher is cached per worker, and every change of a membership, a tenant or a
role name shows on the next page at once, also in another app instance (another worker)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from app.core.settings import load_settings
from app.server import create_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import login, post_form, text_of

BOB = ("bob@acme.test", "bob-password-1")


@pytest.fixture
def second(settings_env: dict[str, str]) -> Iterator[TestClient]:
    """A second app on the same database: its caches are its own, like another worker process."""
    with TestClient(app=create_app(load_settings(settings_env)), base_url="http://testserver.local") as c:
        yield c


def switcher(client: TestClient, path: str = "/t/acme/") -> list[str]:
    page = client.get(path)
    assert page.status_code == 200, text_of(page.text)[:300]
    select = re.search(r'<select id="tenant-switch".*?</select>', page.text, re.S)
    assert select, "the page has a tenant switcher"
    return [" ".join(o.split()) for o in re.findall(r"<option[^>]*>([^<]*)</option>", select.group(0))]


def rebuilds(client: TestClient) -> int:
    return int(client.app.state.switcher_cache.rebuilds)  # type: ignore[attr-defined]


def member_id(client: TestClient, tenant: str, email: str) -> str:
    page = client.get(f"/t/{tenant}/admin/members", params={"q": email}).text
    match = re.search(rf"/t/{tenant}/admin/members/([0-9a-f-]{{36}})", page)
    assert match, f"{email} is listed in {tenant}"
    return match.group(1)


def role_id(client: TestClient, tenant: str, name: str) -> str:
    match = re.search(
        rf'href="/t/{tenant}/admin/roles/([0-9a-f-]+)">{name}<', client.get(f"/t/{tenant}/admin/roles").text
    )
    assert match, f"role {name} is listed in {tenant}"
    return match.group(1)


def tenant_id(client: TestClient, slug: str) -> str:
    rows = client.get("/t/system/admin/tenants", params={"q": slug}).text
    match = re.search(rf'<a href="/t/{slug}/">{slug}</a>.*?/admin/tenants/([0-9a-f-]+)"', rows, re.S)
    assert match, f"tenant {slug} is listed"
    return match.group(1)


def test_membership_and_name_changes_show_in_another_workers_cached_switcher(
    client: Any, second: TestClient
) -> None:
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert (
        post_form(
            client, "/t/system/admin/tenants", {"slug": "acme", "name": "Acme Inc"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert (
        post_form(
            client, "/t/system/admin/tenants", {"slug": "globex", "name": "Globex"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert (
        post_form(
            client,
            "/t/acme/admin/members",
            {"email": BOB[0], "password": BOB[1], "display_name": "Bob", "role": "Member"},
            follow_redirects=False,
        ).status_code
        == 303
    )

    login(second, *BOB)
    assert switcher(second) == ["Acme Inc (Member)"]
    built = rebuilds(second)
    assert switcher(second) == ["Acme Inc (Member)"]
    assert rebuilds(second) == built, "an unchanged switcher comes from the worker's cache"

    # Added to globex through the first app: the second shows it on bob's next page.
    assert (
        post_form(
            client, "/t/globex/admin/members", {"email": BOB[0], "role": "Member"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert switcher(second) == ["Acme Inc (Member)", "Globex (Member)"]

    # Role changed in globex, then the role renamed.
    bob_in_globex = member_id(client, "globex", BOB[0])
    assert (
        post_form(
            client, f"/t/globex/admin/members/{bob_in_globex}/role", {"role": "Admin"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert switcher(second) == ["Acme Inc (Member)", "Globex (Admin)"]
    member_role = role_id(client, "acme", "Member")
    assert (
        post_form(
            client,
            f"/t/acme/admin/roles/{member_role}",
            {"name": "Staff", "description": ""},
            follow_redirects=False,
        ).status_code
        == 303
    )
    assert switcher(second) == ["Acme Inc (Staff)", "Globex (Admin)"]

    # Tenant renamed, then deactivated (an inactive tenant is not offered).
    globex = tenant_id(client, "globex")
    assert (
        post_form(
            client,
            f"/t/system/admin/tenants/{globex}",
            {"name": "Globex Corp", "is_active": "on"},
            follow_redirects=False,
        ).status_code
        == 303
    )
    assert switcher(second) == ["Acme Inc (Staff)", "Globex Corp (Admin)"]
    assert (
        post_form(
            client, f"/t/system/admin/tenants/{globex}", {"name": "Globex Corp"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert switcher(second) == ["Acme Inc (Staff)"]

    # Removed from acme while on one of its pages in the other app: refused there, and gone from the list.
    assert post_form(
        client, "/t/globex/admin/members", {"email": BOB[0], "role": "Member"}, follow_redirects=False
    ).status_code in (303, 422)
    assert (
        post_form(
            client,
            f"/t/acme/admin/members/{member_id(client, 'acme', BOB[0])}/remove",
            {},
            follow_redirects=False,
        ).status_code
        == 303
    )
    assert second.get("/t/acme/").status_code == 403


def test_platform_admin_switcher_lists_a_tenant_created_by_another_worker(
    client: Any, second: TestClient
) -> None:
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    login(second, ADMIN_EMAIL, ADMIN_PASSWORD)
    before = switcher(second, "/t/system/")
    assert not any("Initech" in o for o in before)
    assert (
        post_form(
            client, "/t/system/admin/tenants", {"slug": "initech", "name": "Initech"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert "Initech (platform)" in switcher(second, "/t/system/")


def test_a_request_that_changes_the_directory_neither_reads_nor_fills_the_cache(app: Any) -> None:
    """A tenant created in a transaction that then rolls back must not linger in a cached switcher."""
    from app.audit import Actor
    from app.identity import directory
    from app.web.context import RequestContext, SwitcherCache

    async def scenario() -> None:
        cache = SwitcherCache()
        async with app.state.alchemy.get_session() as s:
            admin = await directory.find_user(s, ADMIN_EMAIL)
            system = await directory.get_tenant(s, "system")
            version, admin_id = system.directory_version, admin.id

            def ctx() -> RequestContext:
                return RequestContext(
                    settings=app.state.settings,
                    db=s,
                    ip="",
                    is_api=False,
                    user=admin,
                    switcher_cache=cache,
                    directory_version=version,
                )

            listed = await ctx().memberships()
            assert cache.get(admin.id, version) == listed
            await directory.create_tenant(s, Actor(admin.id, admin.email), "phantom", "Phantom")
            inside = await ctx().memberships()
            assert any(t.slug == "phantom" for t, _ in inside), "the changing request sees its own change"
            assert cache.get(admin_id, version) == listed, "...but does not cache it under the old version"
            await s.rollback()
        async with app.state.alchemy.get_session() as s:
            admin = await directory.find_user(s, ADMIN_EMAIL)
            fresh = RequestContext(
                settings=app.state.settings,
                db=s,
                ip="",
                is_api=False,
                user=admin,
                switcher_cache=cache,
                directory_version=version,
            )
            assert not any(t.slug == "phantom" for t, _ in await fresh.memberships())
        await app.state.alchemy.get_engine().dispose()  # its connections belong to this event loop

    with TestClient(app=app):  # runs the start-up (system tenant, first admin)
        pass
    import asyncio

    asyncio.run(scenario())
