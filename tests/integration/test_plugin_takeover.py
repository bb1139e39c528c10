"""Hostile plugins and hostile input on both databases: no plugin takes a base permission (or another
plugin's entity), and deeply nested manifests, configuration bodies and guest JSON answer a located
4xx, never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app import bootstrap
from app.access.permissions import PermissionDef, PermissionTaken, register_permissions
from app.core.models import Permission, Tenant
from app.installs import lifecycle, reserved
from app.installs.lifecycle import ManifestRejected
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, csrf, login, text_of
from tests.integration.test_plugin_admin import API, BOB, files, root  # noqa: F401 (the fixture)
from tests.integration.test_plugin_lifecycle import ACTOR, Db, notes_toml, package, plugin_zip, scenario  # noqa: F401

DEEP_ARRAYS = "x = " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_TABLES = "x = " + "{ a = " * 2000 + "1" + " }" * 2000 + "\n"
DEEP_JSON_ARRAYS = "[" * 5000 + "]" * 5000
DEEP_JSON_OBJECTS = '{"a": ' * 2000 + "1" + "}" * 2000


def takeover_toml(entity: str, plugin_id: str = "takeover") -> str:
    return f'''
[plugin]
id = "{plugin_id}"
name = "Takeover"
version = "1.0.0"

[[schema.entities]]
name = "{entity}"
fields = [{{ name = "title", type = "string" }}]
'''


def base_names() -> list[str]:
    """The table of every base permission (`db.<table>.*`) and every base table, from the real definitions."""
    return sorted(
        set(Tenant.metadata.tables)
        | {p.code.split(".")[1] for p in reserved.base_permissions() if p.code.startswith("db.")}
    )


async def registry(db: Db) -> dict[str, tuple[str, str]]:
    async with db.tx() as s:
        return {p.code: (p.module, p.scope) for p in (await s.scalars(select(Permission))).all()}


def test_no_plugin_takes_a_base_permission(scenario):
    async def body(db: Db) -> None:
        before = await registry(db)
        assert before["db.tenants.select"] == ("base", "platform")
        for name in base_names():
            refused = await db.refused(
                lambda s, n=name: lifecycle.upload(
                    s, ACTOR, package(takeover_toml(n)), db.settings, install_now=True
                ),
                ManifestRejected,
            )
            assert len(refused.issues) == 1 and refused.issues[0].startswith(
                f"schema.entities[0].name: '{name}' "
            )
            assert refused.issues[0].endswith("; choose another name")
        assert await registry(db) == before
        assert refused.issues == [
            "schema.entities[0].name: 'workflow_tasks' is a base table of the portal; choose another name"
        ]

        # The registration itself refuses, whoever calls it: a code never changes module or scope.
        for code, (module, scope) in before.items():
            other_scope = "tenant" if scope == "platform" else "platform"
            for evil in (
                PermissionDef(code, "mine now", "takeover", scope),
                PermissionDef(code, "x", module, other_scope),
            ):
                taken = await db.refused(lambda s, d=evil: register_permissions(s, [d]), PermissionTaken)
                assert taken.detail == (
                    f"Permission {code} belongs to module '{module}' ({scope} scope); it cannot "
                    f"be registered for module '{evil.module}' ({evil.scope} scope)"
                )
        assert await registry(db) == before

        # A plugin installs beside them and leaves every existing row as it was.
        await db.upload(notes_toml(), install_now=True)
        after = await registry(db)
        assert {c: after[c] for c in before} == before
        assert after["db.note.select"] == ("notes", "tenant")

        # A database that lost a base code before this rule existed gets it back at the next start-up.
        async with db.tx() as s:
            await s.execute(
                update(Permission)
                .where(Permission.code.like("db.tenants.%"))
                .values(module="takeover", scope="tenant")
            )
        async with db.tx() as s:
            await bootstrap.ensure_base(s, db.settings)
        assert await registry(db) == after

    scenario(body)


def test_another_plugins_entity_stays_taken_until_purged(scenario):
    async def body(db: Db) -> None:
        await db.upload(notes_toml(), install_now=True)
        expected = ["schema.entities[0].name: entity 'note' is already provided by plugin 'notes'"]
        installed = await db.refused(
            lambda s: lifecycle.upload(
                s, ACTOR, package(takeover_toml("note")), db.settings, install_now=True
            ),
            ManifestRejected,
        )
        assert installed.issues == expected
        await db.uninstall("notes")  # its table, data and permissions stay: the name does too
        kept = await db.refused(
            lambda s: lifecycle.upload(s, ACTOR, package(takeover_toml("note")), db.settings),
            ManifestRejected,
        )
        assert kept.issues == expected
        assert (await registry(db))["db.note.select"] == ("notes", "tenant")
        await db.purge("notes", "notes")
        await db.upload(takeover_toml("note"), install_now=True)
        assert (await registry(db))["db.note.select"] == ("takeover", "tenant")

    scenario(body)


def test_upload_api_page_and_cli_show_the_takeover_refusal(client, root, settings_env, tmp_path):
    message = "schema.entities[0].name: 'tenants' is a base table of the portal; choose another name"
    system = bearer(root, "system")
    r = client.post(
        f"{API}/upload",
        files=files(plugin_zip(takeover_toml("tenants"))),
        params={"install": "true"},
        headers=system,
    )
    assert r.status_code == 422 and r.json()["errors"] == [message]
    bob = api_token(client, *BOB)
    assert client.get("/api/v1/tenants", headers=bearer(bob, "acme")).status_code == 403

    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = client.post(
        "/t/system/admin/plugins/upload",
        data={"_csrf_token": csrf(client), "install_now": "on"},
        files=files(plugin_zip(takeover_toml("users"))),
        follow_redirects=False,
    )
    assert page.status_code == 422
    assert "schema.entities[0].name: 'users' is a base table of the portal; choose another name" in text_of(
        page.text
    ).replace("&#39;", "'")

    from click.testing import CliRunner

    from app.cli import main

    folder = tmp_path / "takeover"
    folder.mkdir()
    (folder / "plugin.toml").write_text(takeover_toml("roles"), encoding="utf-8")
    out = CliRunner().invoke(
        main, ["plugin", "install", str(folder)], env=settings_env, catch_exceptions=False
    )
    assert out.exit_code == 2
    assert (
        out.stderr
        == "portal: schema.entities[0].name: 'roles' is a base table of the portal; choose another name\n"
    )


# --- nesting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deep", "column"),
    [(DEEP_ARRAYS, 5 + 32), (DEEP_TABLES, 5 + 6 * 32)],
    ids=["5000-arrays", "2000-inline-tables"],
)
def test_deep_manifest_uploads_are_a_located_422(client, root, deep: str, column: int):
    message = f"plugin.toml: nested more than 32 levels deep (line 10, column {column})"
    r = client.post(
        f"{API}/upload",
        files=files(plugin_zip(takeover_toml("thing") + deep)),
        params={"install": "true"},
        headers=bearer(root, "system"),
    )
    assert r.status_code == 422 and r.json()["errors"] == [message], r.text
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = client.post(
        "/t/system/admin/plugins/upload",
        data={"_csrf_token": csrf(client)},
        files=files(plugin_zip(takeover_toml("thing") + deep)),
        follow_redirects=False,
    )
    assert page.status_code == 422 and message in text_of(page.text)


CONFIGURABLE = """
[plugin]
id = "knobs"
name = "Knobs"
version = "1.0.0"

[permissions]
config = true

[[config.fields]]
key = "batch"
type = "integer"
"""


def test_deep_configuration_input_is_a_located_4xx(client, root):
    system, acme = bearer(root, "system"), bearer(root, "acme")
    for toml in (CONFIGURABLE, CONFIGURABLE.replace("knobs", "freeform").split("[[config")[0]):
        assert (
            client.post(
                f"{API}/upload", files=files(plugin_zip(toml)), params={"install": "true"}, headers=system
            ).status_code
            == 201
        )
    for plugin_id in ("knobs", "freeform"):
        assert client.post(f"{API}/{plugin_id}/enable", headers=acme).status_code == 200
    bob = bearer(api_token(client, *BOB), "acme")
    for deep in (DEEP_JSON_ARRAYS, DEEP_JSON_OBJECTS):
        bodies = [
            ("PUT", f"{API}/knobs/config", '{"name": "Main", "values": {"batch": ' + deep + "}}"),
            ("PUT", f"{API}/freeform/config", '{"name": "Main", "values": {"batch": ' + deep + "}}"),
            (
                "POST",
                "/api/v1/extensions/configs",
                '{"name": "Main", "implementation": "base:x", "values": {"batch": ' + deep + "}}",
            ),
        ]
        for method, url, body in bodies:
            for ctype in ("application/json", "text/plain"):  # Litestar decodes `data` as JSON either way
                r = client.request(method, url, content=body, headers={**bob, "content-type": ctype})
                assert r.status_code == 400, (url, r.status_code, r.text[:300])
                assert r.json()["detail"].startswith(
                    "The JSON body is nested more than 64 levels deep (line 1, col"
                )
    # Nesting within the bound reaches the checks, which answer per field.
    shallow = client.put(
        f"{API}/knobs/config", json={"name": "Main", "values": {"batch": [[[[[[[[1]]]]]]]]}}, headers=bob
    )
    assert shallow.status_code == 422 and "values.batch" in shallow.json()["errors"]
    # The page's text box holds `key = value` lines whose values are text the host never parses: bracket
    # soup is stored as the text it is, and one character over the value limit is a located error.
    login(client, *BOB)
    url = "/t/acme/admin/plugins/freeform/config"
    saved = client.post(
        url,
        data={"_csrf_token": csrf(client), "name": "Main", "text": "x = " + DEEP_JSON_ARRAYS},
        follow_redirects=False,
    )
    assert saved.status_code == 303 and client.get(url).status_code == 200
    over = client.post(
        url,
        data={"_csrf_token": csrf(client), "name": "Other", "text": "x = [" + DEEP_JSON_ARRAYS},
        follow_redirects=False,
    )
    assert over.status_code == 422 and "values.x" in over.text and "(at most 10000)" in over.text
