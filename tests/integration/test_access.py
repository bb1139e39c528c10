"""Roles, grants and enforcement: the issue's 'done when' walk, through pages and the API."""

from __future__ import annotations

import re

from litestar.routes import HTTPRoute

from app.web.context import RequestContext, TenantContext, wants_tenant
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, logout, post_form, text_of

BOB = ("bob@acme.test", "bob-password-1")


def setup_acme(client) -> None:
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = post_form(
        client, "/t/system/admin/tenants", {"slug": "acme", "name": "Acme Inc"}, follow_redirects=False
    )
    assert r.status_code == 303
    r = post_form(
        client,
        "/t/acme/admin/members",
        {"email": BOB[0], "password": BOB[1], "display_name": "Bob", "role": "Member"},
        follow_redirects=False,
    )
    assert r.status_code == 303, text_of(r.text)[:400]


def role_id(client, tenant: str, name: str) -> str:
    page = client.get(f"/t/{tenant}/admin/roles").text
    match = re.search(rf'href="/t/{tenant}/admin/roles/([0-9a-f-]+)">{name}<', page)
    assert match, f"role {name} not listed"
    return match.group(1)


def test_member_is_refused_until_granted_then_explain_says_why(client):
    setup_acme(client)
    member_role = role_id(client, "acme", "Member")
    logout(client)

    login(client, *BOB)
    home = client.get("/t/acme/")
    assert home.status_code == 200
    assert "Administration" not in home.text and "/admin/roles" not in home.text
    assert client.get("/t/acme/admin/roles").status_code == 403
    token = api_token(client, *BOB)
    assert client.get("/api/v1/roles", headers=bearer(token, "acme")).status_code == 403

    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    r = post_form(
        client,
        f"/t/acme/admin/roles/{member_role}/grants",
        [("perm", "db.roles.select")],
        follow_redirects=False,
    )
    assert r.status_code == 303
    explain = client.get(
        "/t/acme/admin/explain", params={"user": BOB[0], "permission": "db.roles.select"}
    ).text
    assert "Yes" in explain and (
        "Bob may use “View roles of the tenant” because of the role Member (grant db.roles.select)."
        in text_of(explain)
    )
    assert "role:" not in explain and "p, " not in text_of(explain)  # no Casbin line, no role id
    denied = client.get(
        "/t/acme/admin/explain", params={"user": BOB[0], "permission": "db.roles.delete"}
    ).text
    assert "No" in denied and (
        "Bob may not use “Delete roles of the tenant”: their role Member does not grant it."
        in text_of(denied)
    )
    logout(client)

    login(client, *BOB)
    home = client.get("/t/acme/")
    assert 'href="/t/acme/admin/roles"' in home.text
    assert client.get("/t/acme/admin/roles").status_code == 200
    assert client.get("/api/v1/roles", headers=bearer(token, "acme")).status_code == 200
    # Seeing roles is not editing them: the create form is hidden and the route refuses.
    assert "Create role" not in client.get("/t/acme/admin/roles").text
    assert post_form(client, "/t/acme/admin/roles", {"name": "Hackers"}).status_code == 403


def test_tenant_admin_cannot_reach_platform_or_other_tenants(client):
    setup_acme(client)
    post_form(client, "/t/system/admin/tenants", {"slug": "globex", "name": "Globex"})
    admin_role = role_id(client, "acme", "Admin")
    r = post_form(
        client,
        "/t/acme/admin/members/" + _member_id(client, "acme", BOB[0]) + "/role",
        {"role": "Admin"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and admin_role
    logout(client)
    login(client, *BOB)
    assert client.get("/t/acme/admin/roles").status_code == 200  # Admin of acme: everything in acme
    assert client.get("/t/acme/admin/tenants").status_code == 403  # ...but no platform permission
    assert client.get("/t/globex/").status_code == 403  # not a member of globex
    assert client.get("/t/system/").status_code == 403


def _member_id(client, tenant: str, email: str) -> str:
    page = client.get(f"/t/{tenant}/admin/members", params={"q": email}).text
    match = re.search(r"/admin/members/([0-9a-f-]{36})", page)
    assert match
    return match.group(1)


def test_role_lifecycle_and_audit(client):
    setup_acme(client)
    r = post_form(
        client, "/t/acme/admin/roles", {"name": "Clerk", "description": "Front desk"}, follow_redirects=False
    )
    assert r.status_code == 303
    clerk = r.headers["location"].rsplit("/", 1)[1]
    dup = post_form(client, "/t/acme/admin/roles", {"name": "clerk"})
    assert dup.status_code == 422 and "already exists" in dup.text
    post_form(client, f"/t/acme/admin/members/{_member_id(client, 'acme', BOB[0])}/role", {"role": "Clerk"})
    refused = post_form(client, f"/t/acme/admin/roles/{clerk}/delete", {})
    assert refused.status_code == 409 and "still assigned" in refused.text
    post_form(client, f"/t/acme/admin/members/{_member_id(client, 'acme', BOB[0])}/role", {"role": "Member"})
    assert (
        post_form(client, f"/t/acme/admin/roles/{clerk}/delete", {}, follow_redirects=False).status_code
        == 303
    )
    audit = text_of(client.get("/t/acme/admin/audit").text)
    for action in ("role.create", "member.role", "role.delete", "member.add"):
        assert action in audit
    filtered = text_of(client.get("/t/acme/admin/audit", params={"action": "role.delete"}).text)
    assert "role.delete" in filtered and "member.add" not in filtered


def test_every_route_is_guarded_or_explicitly_public(app):
    public = {
        "/login",
        "/health",
        "/language",  # the header language switch: a preference (or a cookie when signed out)
        "/static",
        "/api/schema",
        "/api/v1/openapi.json",  # the API's document (like /api/schema): no data
        "/t/{tenant:str}/auto-login/",
    }  # auto-login: a verifier decides
    tenant_scoped = 0
    for route in app.routes:
        handlers = route.route_handlers if isinstance(route, HTTPRoute) else [route.route_handler]  # type: ignore[attr-defined]
        for handler in handlers:
            if (
                getattr(handler, "http_methods", None) == {"OPTIONS"}
                and handler.handler_name == "options_handler"
            ):
                continue  # Litestar's automatic OPTIONS answer; the guard refuses it too (no rule)
            opt = handler.opt
            rules = [k for k in ("public", "auth", "permission") if opt.get(k)]
            assert len(rules) == 1, f"{route.path} declares {rules or 'no access rule'}"
            if opt.get("public"):
                assert any(route.path.startswith(p) for p in public), (
                    f"{route.path} is public but not on the list"
                )
                # Nothing is proved for a public route: its handler cannot be promised a tenant.
                assert not wants_tenant(handler), f"{route.path} is public but declares ctx: TenantContext"
            elif wants_tenant(handler):
                tenant_scoped += 1
    assert tenant_scoped > 40  # the administration pages and their APIs declare ctx: TenantContext


def test_deny_by_default_for_a_route_without_rule(app, client):
    from litestar import get

    @get("/t/{tenant:str}/forgot-to-guard")
    async def careless() -> str:
        return "secret"

    app.register(careless)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert client.get("/t/system/forgot-to-guard").status_code == 403


def test_a_handler_declaring_a_tenant_context_runs_only_with_a_tenant(app, client):
    """`ctx: TenantContext` is a promise: user, tenant and access are there, or the handler never runs."""
    from litestar import get

    @get("/api/v1/test-tenant-context", opt={"auth": True})
    async def needs_tenant(ctx: TenantContext) -> dict[str, str]:
        return {
            "tenant": ctx.tenant.slug,
            "user": ctx.user.email,
            "platform": str(ctx.access.is_platform_member),
        }

    @get("/api/v1/test-request-context", opt={"auth": True})
    async def any_tenant(ctx: RequestContext) -> dict[str, str]:
        return {"context": type(ctx).__name__, "tenant": ctx.tenant.slug if ctx.tenant else ""}

    app.register(needs_tenant)
    app.register(any_tenant)
    setup_acme(client)  # the admin is now in two tenants: the API needs X-Tenant to know which
    token = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    refused = client.get("/api/v1/test-tenant-context", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403, refused.text
    assert "X-Tenant" in refused.json()["detail"]
    ok = client.get("/api/v1/test-tenant-context", headers=bearer(token, "acme"))
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"tenant": "acme", "user": ADMIN_EMAIL, "platform": "True"}
    # A handler that declares the plain RequestContext still gets one, with or without a tenant.
    plain = client.get("/api/v1/test-request-context", headers={"Authorization": f"Bearer {token}"})
    assert plain.json() == {"context": "RequestContext", "tenant": ""}
    plain = client.get("/api/v1/test-request-context", headers=bearer(token, "acme"))
    assert plain.json() == {"context": "RequestContext", "tenant": "acme"}


# --- CSRF: every state-changing route, plugin pages included ------------------------------------

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
SOME_ID = "0b0e7d55-6c1e-4a43-9d5e-1f1d3c4b5a69"
PARAM_VALUES = {"tenant": "acme", "plugin_id": "inventory", "entity": "items", "ref": "acme", "name": "x"}


def _plugin_page_posts(manifests: list) -> list[str]:
    """Every form address the generated and custom pages of the enabled plugins accept (records_pages's
    POST dispatch), plus page paths with an `api` segment, the shape the old `/api/` exclusion let through."""
    urls = []
    for manifest in manifests:
        for spec in manifest.pages:
            base = f"/t/acme/p/{manifest.id}{spec.path}"
            if spec.type == "crud":
                urls += [base, f"{base}/new", f"{base}/import", f"{base}/bulk-delete", f"{base}/bulk-restore"]
                urls += [
                    f"{base}/{SOME_ID}{tail}" for tail in ("", "/edit", "/delete", "/restore", "/submit")
                ]
            else:  # custom pages and dashboards with page code: actions go to the plugin's handle-action
                urls += [f"{base}/actions/save", f"{base}/actions/refresh"]
        urls += [f"/t/acme/p/{manifest.id}/api/notes", f"/t/acme/p/{manifest.id}/api/v1/notes"]
    return urls


def _concrete(path: str, plugin_pages: list[str]) -> list[str]:
    if "{path:path}" in path and path.startswith("/t/"):
        return plugin_pages  # the one catch-all route behind every plugin page
    path = path.replace("{path:path}", "inventory/stocktaking")

    def value(match: re.Match[str]) -> str:
        name, kind = match.group(1), match.group(2)
        return SOME_ID if kind == "uuid" else PARAM_VALUES.get(name, SOME_ID)

    return [re.sub(r"\{(\w+):(\w+)\}", value, path)]


def test_every_state_changing_route_refuses_a_cookie_request_without_csrf_token(app, client, tmp_path):
    """Signed in with the session cookie (a platform admin: every permission), no token: 403 from the
    CSRF check on every POST/PUT/PATCH/DELETE route, the JSON API included, and on every form address
    of an installed and enabled plugin. With the token, the same kind of request goes through."""
    from app.audit import Actor
    from app.identity import directory
    from app.installs import lifecycle
    from app.plugins import runtime
    from app.plugins.packages import read_folder
    from tests.integration.test_record_pages import in_db, manifest_only

    package = read_folder(manifest_only("inventory", tmp_path))

    async def install(s):
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, package, app.state.settings, install_now=True)
        tenant = await directory.create_tenant(s, actor, "acme", "Acme")
        await lifecycle.enable(s, actor, tenant.id, "inventory")
        await s.flush()
        return [p.manifest for p in await runtime.enabled_for(s, tenant.id)]

    manifests = in_db(app, install)
    assert [m.id for m in manifests] == ["inventory"]
    plugin_pages = _plugin_page_posts(manifests)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    items = "/t/acme/p/inventory/inventory/items"
    assert client.get(items).status_code == 200  # the plugin is live for this user

    checked: list[tuple[str, str]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method in sorted(set(route.methods) & UNSAFE):
            for url in _concrete(route.path, plugin_pages):
                for body in ({"data": {"name": "x"}}, {"json": {"name": "x"}}):  # form and JSON bodies
                    r = client.request(method, url, **body)
                    # (people get the form again, "Your form had expired"; API clients the problem detail)
                    refused = "CSRF" in r.text or "Your form had expired" in r.text
                    assert r.status_code == 403 and refused, f"{method} {url} ({route.path}): {r.status_code}"
                checked.append((method, url))
    # The inventory really covers the base, the API and the plugin's pages.
    assert ("POST", "/logout") in checked and ("POST", f"{items}/new") in checked
    assert ("DELETE", f"/api/v1/plugins/inventory/items/{SOME_ID}") in checked
    assert ("POST", "/t/acme/p/inventory/inventory/stocktaking/actions/save") in checked
    assert ("POST", "/t/acme/p/inventory/api/notes") in checked
    assert len(checked) > 100
    # Nothing was written by the refused requests; the same form with the token is accepted.
    assert re.search(r"No \w+ records yet", client.get(items).text)
    created = post_form(
        client,
        f"{items}/new",
        {"sku": "CSRF-1", "name": "Widget", "quantity": "1", "unit_price": "1", "status": "active"},
        follow_redirects=False,
    )
    assert created.status_code == 303, text_of(created.text)[:400]
    assert client.get("/t/acme/admin/members").status_code == 200  # still signed in: /logout was refused
