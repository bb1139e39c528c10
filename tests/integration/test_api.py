"""The JSON API: bearer tokens, X-Tenant, problem details, and the same services as the pages."""

from __future__ import annotations

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer


def test_me_tenants_roles_permissions_and_explain(client):
    root = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    h = bearer(root, "system")
    me = client.get("/api/v1/me", headers=bearer(root)).json()  # only tenant: no header needed
    assert me["user"]["email"] == ADMIN_EMAIL
    assert me["tenants"] == [{**me["tenant"], "role": "Admin"}]
    assert "db.tenants.insert" in me["permissions"]

    created = client.post("/api/v1/tenants", json={"slug": "acme", "name": "Acme"}, headers=h)
    assert created.status_code == 201, created.text
    dup = client.post("/api/v1/tenants", json={"slug": "acme", "name": "Again"}, headers=h)
    assert dup.status_code == 422 and dup.json()["errors"]["slug"].startswith(
        "The slug 'acme' is already taken"
    )
    bad = client.post("/api/v1/tenants", json={"slug": "Not OK!", "name": ""}, headers=h)
    assert bad.status_code == 422 and set(bad.json()["errors"]) == {"slug", "name"}

    acme = bearer(root, "acme")
    bob = client.post(
        "/api/v1/members", json={"email": "Bob@Acme.test", "password": "bob-password-1"}, headers=acme
    )
    assert bob.status_code == 201 and bob.json()["email"] == "bob@acme.test" and bob.json()["created_account"]
    weak = client.post("/api/v1/members", json={"email": "eve@acme.test", "password": "short"}, headers=acme)
    assert weak.status_code == 422 and "password" in weak.json()["errors"]

    roles = client.get("/api/v1/roles", headers=acme).json()["items"]
    member = next(r for r in roles if r["name"] == "Member")
    assert member["members"] == 1
    put = client.put(
        f"/api/v1/roles/{member['id']}/permissions", json={"permissions": ["db.roles.select"]}, headers=acme
    )
    assert put.status_code == 200 and put.json()["added"] == ["db.roles.select"]
    garbage = client.put(
        f"/api/v1/roles/{member['id']}/permissions", json={"permissions": ["drop table"]}, headers=acme
    )
    assert garbage.status_code == 422

    why = client.get(
        "/api/v1/explain", params={"user": "bob@acme.test", "permission": "db.roles.select"}, headers=acme
    ).json()
    assert why["allowed"] is True and why["role"] == "Member" and why["policy"][2] == "db.roles.select"

    audit = client.get("/api/v1/audit", params={"action": "role.grants"}, headers=acme).json()
    assert audit["total"] == 1 and audit["items"][0]["after"] == {"grants": ["db.roles.select"]}
    assert any(
        p["code"] == "db.roles.select" for p in client.get("/api/v1/permissions", headers=h).json()["items"]
    )


def test_tenant_header_is_checked_against_membership(client):
    root = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    client.post("/api/v1/tenants", json={"slug": "acme", "name": "Acme"}, headers=bearer(root, "system"))
    client.post(
        "/api/v1/members",
        json={"email": "bob@acme.test", "password": "bob-password-1"},
        headers=bearer(root, "acme"),
    )
    bob = api_token(client, "bob@acme.test", "bob-password-1")
    assert client.get("/api/v1/me", headers=bearer(bob)).json()["tenant"]["slug"] == "acme"
    forged = client.get("/api/v1/me", headers=bearer(bob, "system"))
    assert forged.status_code == 403 and forged.headers["content-type"].startswith("application/problem+json")
    unknown = client.get("/api/v1/roles", headers=bearer(bob, "no-such-tenant"))
    assert unknown.status_code == 403
    assert client.get("/api/v1/tenants", headers=bearer(bob, "acme")).status_code == 403


def test_revoked_and_bogus_tokens_are_refused(client):
    root = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert client.get("/api/v1/me", headers=bearer("pt_bogus")).status_code == 401
    tokens = client.get("/api/v1/tokens", headers=bearer(root)).json()["items"]
    assert client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=bearer(root)).status_code == 204
    assert client.get("/api/v1/me", headers=bearer(root)).status_code == 401


def test_openapi_documents_the_api(client):
    schema = client.get("/api/schema/openapi.json").json()
    for path in (
        "/api/v1/me",
        "/api/v1/tenants",
        "/api/v1/members",
        "/api/v1/roles",
        "/api/v1/roles/{role_id}/permissions",
        "/api/v1/permissions",
        "/api/v1/audit",
        "/api/v1/explain",
    ):
        assert path in schema["paths"], path
