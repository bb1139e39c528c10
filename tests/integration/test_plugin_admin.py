"""Plugin administration through the pages and the JSON API: lifecycle, errors, permissions."""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.plugins.packages import MAX_FILES
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, csrf, login, logout, post_form, text_of
from tests.integration.test_plugin_lifecycle import (
    MISSING_MODULE_MESSAGE,
    MISSING_MODULE_TOML,
    TASKS_TOML,
    make_zip,
    notes_toml,
    plugin_zip,
)

LOSS = "note.body: field dropped (its data would be lost)"

API = "/api/v1/admin/plugins"
BOB = ("bob@acme.test", "bob-password-1")  # Admin of acme
CAROL = ("carol@acme.test", "carol-password-1")  # Member of acme


def files(data: bytes, name: str = "notes.zip") -> dict[str, Any]:
    return {"plugin": (name, data, "application/zip")}


def sync_engine(settings_env: dict[str, str]) -> sa.Engine:
    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", settings_env["DATABASE_URL"])
    return sa.create_engine(url)


def backup_zip(settings_env: dict[str, str]) -> dict[str, str]:
    """The files of the purge backup stored in the database, by name."""
    engine = sync_engine(settings_env)
    try:
        with engine.connect() as conn:
            content = conn.execute(
                sa.text(
                    "SELECT content FROM stored_blobs JOIN data_backups ON blob_sha256 = sha256 WHERE label = 'purge'"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {n.split("/", 1)[1]: archive.read(n).decode("utf-8") for n in archive.namelist()}


def plugin_tables(settings_env: dict[str, str]) -> set[str]:
    engine = sync_engine(settings_env)
    try:
        return {t for t in sa.inspect(engine).get_table_names() if t.startswith("plugin_")}
    finally:
        engine.dispose()


@pytest.fixture
def root(client) -> str:
    """The platform admin's token, with tenants acme (Bob: Admin, Carol: Member) and globex."""
    token = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    system = bearer(token, "system")
    for slug in ("acme", "globex"):
        assert (
            client.post(
                "/api/v1/tenants", json={"slug": slug, "name": slug.title()}, headers=system
            ).status_code
            == 201
        )
    for (email, password), role in ((BOB, "Admin"), (CAROL, "Member")):
        made = client.post(
            "/api/v1/members",
            json={"email": email, "password": password, "role": role},
            headers=bearer(token, "acme"),
        )
        assert made.status_code == 201, made.text
    return token


def test_api_walks_the_whole_lifecycle(client, root, settings_env):
    h, acme = bearer(root, "system"), bearer(root, "acme")
    made = client.post(
        f"{API}/upload", files=files(plugin_zip(notes_toml())), params={"install": "true"}, headers=h
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["id"], body["version"], body["state"], body["tenant_state"]) == (
        "notes",
        "1.0.0",
        "installed",
        None,
    )
    assert body["schema_versions"] == {"note": {"schema_version": 1, "plugin_version": "1.0.0"}}
    note = body["entities"][0]
    assert (note["name"], note["table"]) == ("note", "plugin_note")
    title = note["fields"][0]
    assert {k: title[k] for k in ("name", "type", "required", "unique", "label", "help", "default")} == {
        "name": "title",
        "type": "string",
        "required": True,
        "unique": False,
        "label": "Title",
        "help": "A short title",
        "default": None,
    }
    assert note["fields"][2]["default"] is False
    assert {p["code"] for p in body["permissions"] if p["registered"]} == {
        "db.note.select",
        "db.note.insert",
        "db.note.update",
        "db.note.delete",
    }
    assert body["events"] == {"published": ["notes.note.created"], "subscribed": ["auth.login"]}
    assert body["pages"][0]["path"] == "/notes" and body["dependencies"] == {
        "modules": ["auth"],
        "plugins": [],
    }
    assert body["capabilities"]["database"] is True and body["author"] == "Tests"

    enabled = client.post(f"{API}/notes/enable", headers=acme)
    assert enabled.status_code == 200 and enabled.json()["tenant_state"] == "enabled"
    listed = client.get(API, headers=acme).json()
    assert listed["tenant"] == "acme" and [
        (i["id"], i["state"], i["tenant_state"]) for i in listed["items"]
    ] == [("notes", "installed", "enabled")]
    assert client.get(API, headers=h).json()["items"][0]["tenant_state"] is None  # system tenant: not enabled
    health = client.get(f"{API}/notes/health", headers=h).json()
    assert health["healthy"] is True and [(t["tenant"], t["state"]) for t in health["tenants"]] == [
        ("acme", "enabled")
    ]

    # Records work in acme; upgrades keep them.
    rec = client.post("/api/v1/plugins/notes/note", json={"title": "First", "body": "text"}, headers=acme)
    assert rec.status_code == 201, rec.text
    up = client.post(
        f"{API}/notes/upgrade",
        files=files(plugin_zip(notes_toml("1.1.0", color=True, notebook=True))),
        headers=h,
    )
    assert up.status_code == 200, up.text
    assert up.json()["version"] == "1.1.0" and up.json()["schema_versions"]["note"]["schema_version"] == 2
    colored = client.post(
        "/api/v1/plugins/notes/note", json={"title": "Second", "color": "red"}, headers=acme
    )
    assert colored.status_code == 201 and colored.json()["color"] == "red"

    wrong = client.post(f"{API}/notes/upgrade", files=files(plugin_zip(TASKS_TOML)), headers=h)
    assert wrong.status_code == 400 and "is the plugin 'tasks', not 'notes'" in wrong.json()["detail"]
    v2 = plugin_zip(notes_toml("2.0.0", body=False, color=True, notebook=True))
    lossy = client.post(f"{API}/upload", files=files(v2), headers=h)
    assert lossy.status_code == 409 and lossy.headers["content-type"].startswith("application/problem+json")
    losses = lossy.json()["losses"]
    assert losses == [LOSS] and LOSS in lossy.json()["detail"]
    down = client.post(f"{API}/notes/upgrade", files=files(plugin_zip(notes_toml("1.0.5"))), headers=h)
    assert down.status_code == 409 and down.json()["detail"].startswith("Downgrade refused")
    forced = client.post(
        f"{API}/notes/upgrade", files=files(v2), data={"allow_destructive": "true"}, headers=h
    )
    assert forced.status_code == 200 and forced.json()["version"] == "2.0.0", forced.text

    busy = client.delete(f"{API}/notes", headers=h)
    assert (
        busy.status_code == 409
        and busy.json()["detail"] == "notes is still enabled in: acme; disable it there first"
    )
    assert client.post(f"{API}/notes/disable", headers=acme).json()["tenant_state"] == "disabled"
    again = client.post(f"{API}/notes/disable", headers=acme)
    assert again.status_code == 409 and again.json()["detail"] == "notes is not enabled in this tenant"
    gone = client.delete(f"{API}/notes", headers=h)
    assert gone.status_code == 200 and gone.json()["state"] == "uninstalled"
    assert "plugin_note" in plugin_tables(settings_env)

    bad = client.post(f"{API}/notes/purge", json={"confirm": "nope"}, headers=h)
    assert bad.status_code == 409 and "Type the plugin id (notes)" in bad.json()["detail"]
    purged = client.post(f"{API}/notes/purge", json={"confirm": "notes"}, headers=h)
    assert purged.status_code == 200, purged.text
    assert purged.json()["backup"].startswith("notes-purge-") and purged.json()["files"] == [
        "note.jsonl",
        "notebook.jsonl",
        "plugin.toml",
        "schema.json",
    ]
    assert re.fullmatch(r"/t/system/admin/plugins/backups/[0-9a-f-]{36}", purged.json()["download"])
    saved = [json.loads(r) for r in backup_zip(settings_env)["note.jsonl"].splitlines()]
    assert sorted((r["title"], r["color"]) for r in saved) == [("First", None), ("Second", "red")]
    assert plugin_tables(settings_env) == set()
    assert client.get(API, headers=h).json()["items"] == []
    assert client.get(f"{API}/notes", headers=h).status_code == 404


def test_api_purge_by_delete_and_illegal_transitions(client, root):
    h = bearer(root, "system")
    assert (
        client.post(f"{API}/upload", files=files(plugin_zip(notes_toml())), headers=h).json()["state"]
        == "uploaded"
    )
    early = client.post(f"{API}/notes/enable", headers=h)
    assert (
        early.status_code == 409
        and early.json()["detail"] == "notes is not installed on this platform (state: uploaded)"
    )
    assert client.post(f"{API}/notes/install", headers=h).status_code == 200
    twice = client.post(f"{API}/notes/install", headers=h)
    assert twice.status_code == 409 and twice.json()["detail"] == "notes is already installed"
    too_soon = client.request("DELETE", f"{API}/notes/purge", params={"confirm": "notes"}, headers=h)
    assert too_soon.status_code == 409 and too_soon.json()["detail"] == "Uninstall notes before purging it"
    assert client.delete(f"{API}/notes", headers=h).status_code == 200
    unconfirmed = client.delete(f"{API}/notes/purge", headers=h)
    assert (
        unconfirmed.status_code == 409
        and "to confirm the purge; nothing was deleted" in unconfirmed.json()["detail"]
    )
    by_body = client.request("DELETE", f"{API}/notes/purge", json={"confirm": "notes"}, headers=h)
    assert by_body.status_code == 200 and by_body.json()["state"] == "purged"
    assert client.get(f"{API}/notes/health", headers=h).status_code == 404

    # Dependencies, named in the refusals.
    dep = client.post(f"{API}/upload", files=files(plugin_zip(TASKS_TOML), "tasks.zip"), headers=h)
    assert (
        dep.status_code == 422
        and dep.json()["errors"][0] == "dependencies.plugins[0]: plugin 'notes' is not installed"
    )
    client.post(f"{API}/upload", files=files(plugin_zip(notes_toml())), params={"install": "1"}, headers=h)
    assert (
        client.post(
            f"{API}/upload",
            files=files(plugin_zip(TASKS_TOML), "tasks.zip"),
            data={"install": "on"},
            headers=h,
        ).json()["state"]
        == "installed"
    )
    first = client.post(f"{API}/tasks/enable", headers=h)
    assert (
        first.status_code == 409
        and first.json()["detail"] == "Enable notes in this tenant first: tasks depends on it"
    )
    assert client.post(f"{API}/notes/enable", headers=h).status_code == 200
    assert client.post(f"{API}/tasks/enable", headers=h).status_code == 200
    held = client.post(f"{API}/notes/disable", headers=h)
    assert held.status_code == 409 and held.json()["detail"] == "Disable tasks first: it depends on notes"
    detail = client.get(f"{API}/tasks", headers=h).json()
    assert detail["dependencies"]["plugins"] == [{"id": "notes", "min_version": "1.0.0"}]
    assert detail["entities"][0]["fields"][1]["entity"] == "note"


def _bad_packages() -> list[tuple[str, bytes, str]]:
    toml = notes_toml()
    link = zipfile.ZipInfo("README.md")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    link.create_system = 3
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("plugin.toml", toml)
        archive.writestr(link, "/etc/passwd")
    return [
        (
            "traversal",
            make_zip({"plugin.toml": toml, "../../evil.py": "x"}),
            "Refused path traversal in package: ../../evil.py",
        ),
        (
            "absolute",
            make_zip({"plugin.toml": toml, "/tmp/evil.py": "x"}),
            "Refused absolute path in package: /tmp/evil.py",
        ),
        ("symlink", buffer.getvalue(), "Refused symbolic link in package: README.md"),
        (
            "too many",
            make_zip({"plugin.toml": toml, **{f"f{i}.txt": "x" for i in range(MAX_FILES)}}),
            f"The package holds {MAX_FILES + 1} files; at most {MAX_FILES} are allowed",
        ),
        (
            "not a zip",
            b"%PDF-1.4 not a zip",
            "Not a zip archive (a plugin package is a .zip with plugin.toml at its root)",
        ),
        ("no manifest", make_zip({"README.md": "# hi"}), "The package has no plugin.toml at its root"),
        (
            "bad toml",
            make_zip({"plugin.toml": "[plugin\nid="}),
            "plugin.toml: invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 8)",
        ),
        ("missing module", plugin_zip(MISSING_MODULE_TOML), MISSING_MODULE_MESSAGE),
    ]


def test_failed_uploads_leave_nothing_behind(client, root, settings_env):
    h = bearer(root, "system")
    data_dir = Path(settings_env["PORTAL_DATA_DIR"])
    for name, data, message in _bad_packages():
        r = client.post(f"{API}/upload", files=files(data), params={"install": "true"}, headers=h)
        assert r.status_code == 422, (name, r.text)
        problem = r.json()
        if name in ("missing module", "bad toml"):
            assert problem["title"] == "Invalid plugin manifest" and problem["errors"] == [message], name
            assert problem["detail"] == message
        else:
            assert problem["title"] == "Invalid plugin package" and problem["detail"] == message, name
        assert client.get(API, headers=h).json()["items"] == [], name
        assert not (data_dir / "plugins").exists() or not any((data_dir / "plugins").iterdir()), name
        assert plugin_tables(settings_env) == set(), name
    missing = client.post(
        f"{API}/upload",
        data={"install": "true"},
        files={"other": ("x.zip", b"PK", "application/zip")},
        headers=h,
    )
    assert missing.status_code == 400


def test_permissions_follow_appendix_c(client, root):
    h = bearer(root, "acme")
    client.post(f"{API}/upload", files=files(plugin_zip(notes_toml())), params={"install": "true"}, headers=h)
    client.post(f"{API}/notes/enable", headers=bearer(root, "globex"))
    bob = api_token(client, *BOB)
    carol = api_token(client, *CAROL)
    b, c = bearer(bob, "acme"), bearer(carol, "acme")
    zipped = plugin_zip(notes_toml("1.1.0", color=True))

    # Tenant admin: sees and enables/disables in their own tenant; nothing platform-wide.
    assert client.get(API, headers=b).status_code == 200
    assert client.get(f"{API}/notes", headers=b).status_code == 200
    assert client.post(f"{API}/notes/enable", headers=b).status_code == 200
    assert [t["tenant"] for t in client.get(f"{API}/notes/health", headers=b).json()["tenants"]] == ["acme"]
    assert client.post(f"{API}/notes/disable", headers=b).status_code == 200
    for method, path, kw in (
        ("POST", "/upload", {"files": files(zipped)}),
        ("POST", "/notes/install", {}),
        ("POST", "/notes/upgrade", {"files": files(zipped)}),
        ("DELETE", "/notes", {}),
        ("POST", "/notes/purge", {"json": {"confirm": "notes"}}),
        ("DELETE", "/notes/purge", {"params": {"confirm": "notes"}}),
    ):
        r = client.request(method, API + path, headers=b, **kw)
        assert r.status_code == 403, (method, path, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (
        client.post(f"{API}/notes/enable", headers=bearer(bob, "globex")).status_code == 403
    )  # not their tenant

    # Member: nothing at all.
    for method, path, kw in (
        ("GET", "", {}),
        ("GET", "/notes", {}),
        ("GET", "/notes/health", {}),
        ("POST", "/notes/enable", {}),
        ("POST", "/notes/disable", {}),
        ("POST", "/upload", {"files": files(zipped)}),
        ("DELETE", "/notes", {}),
        ("POST", "/notes/purge", {"json": {"confirm": "notes"}}),
    ):
        assert client.request(method, API + path, headers=c, **kw).status_code == 403, (method, path)

    # The platform admin sees every tenant's state.
    assert [t["tenant"] for t in client.get(f"{API}/notes/health", headers=h).json()["tenants"]] == [
        "acme",
        "globex",
    ]

    # The same rules on the pages.
    login(client, *BOB)
    page = client.get("/t/acme/admin/plugins")
    assert page.status_code == 200 and 'href="/t/acme/admin/plugins"' in page.text
    assert (
        'id="plugin-upload"' not in page.text
        and "/notes/enable" in page.text
        and "/notes/uninstall" not in page.text
    )
    assert (
        post_form(
            client, "/t/acme/admin/plugins/notes/enable", {"from": "list"}, follow_redirects=False
        ).status_code
        == 303
    )
    assert post_form(client, "/t/acme/admin/plugins/notes/uninstall", {}).status_code == 403
    assert post_form(client, "/t/acme/admin/plugins/notes/purge", {"confirm": "notes"}).status_code == 403
    upload = client.post(
        "/t/acme/admin/plugins/upload", data={"_csrf_token": csrf(client)}, files=files(zipped)
    )
    assert upload.status_code == 403
    logout(client)
    login(client, *CAROL)
    assert "/admin/plugins" not in client.get("/t/acme/").text
    assert client.get("/t/acme/admin/plugins").status_code == 403
    assert client.get("/t/acme/admin/plugins/notes").status_code == 403
    assert post_form(client, "/t/acme/admin/plugins/notes/disable", {}).status_code == 403


def test_pages_upload_show_errors_and_purge(client, root, settings_env):
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    base = "/t/system/admin/plugins"
    empty = client.get(base)
    assert empty.status_code == 200 and "No plugins yet" in empty.text
    for needle in (
        'id="plugin-upload"',
        'hx-encoding="multipart/form-data"',
        "<progress",
        'src="/static/portal.js"',
        'name="install_now"',
        'name="allow_destructive"',
        'name="_csrf_token"',
    ):
        assert needle in empty.text, needle
    assert (
        "htmx:xhr:progress" in client.get("/static/portal.js").text
    )  # the progress bar's script (no inline JS)

    def upload(data: bytes, url: str = f"{base}/upload", **fields: str) -> Any:
        return client.post(
            url, data={"_csrf_token": csrf(client), **fields}, files=files(data), follow_redirects=False
        )

    bad = upload(plugin_zip(MISSING_MODULE_TOML), install_now="on")
    assert bad.status_code == 422
    where, message = MISSING_MODULE_MESSAGE.split(": ", 1)
    assert f"<li><code>{where}:</code> {message}</li>".replace("'", "&#39;") in bad.text
    assert "No plugins yet" in bad.text
    junk = upload(b"not a zip")
    assert junk.status_code == 422 and "Not a zip archive" in text_of(junk.text)
    nofile = client.post(f"{base}/upload", data={"_csrf_token": csrf(client)}, follow_redirects=False)
    assert nofile.status_code == 422 and "Choose a plugin package" in nofile.text

    made = upload(plugin_zip(notes_toml()), install_now="on")
    assert made.status_code == 303 and made.headers["location"] == f"{base}/notes"
    detail = client.get(made.headers["location"])
    assert detail.status_code == 200 and "Installed notes 1.0.0" in detail.text
    text = text_of(detail.text)
    for fact in (
        "Short notes",
        "Tests",
        "auth",
        "plugin_note",
        "A short title",
        "db.note.insert",
        "notes.note.created",
        "auth.login",
        "/notes",
        "schema version 1",
    ):
        assert fact in text, fact
    listing = client.get(base).text
    sha = re.search(r'<code title="sha256 ([0-9a-f]{64})">([0-9a-f]{12})</code>', listing)
    assert sha and sha.group(1).startswith(sha.group(2)) and sha.group(1) in detail.text

    # Enable and disable in this tenant from the list, an HTMX upload that upgrades, a refused destructive one.
    assert (
        post_form(client, f"{base}/notes/enable", {"from": "list"}, follow_redirects=False).headers[
            "location"
        ]
        == base
    )
    assert "Disable" in client.get(base).text
    htmx = client.post(
        f"{base}/upload",
        data={"_csrf_token": csrf(client)},
        headers={"HX-Request": "true"},
        files=files(plugin_zip(notes_toml("1.1.0", color=True))),
        follow_redirects=False,
    )
    assert htmx.status_code == 200 and htmx.headers["hx-redirect"] == f"{base}/notes"  # HTMX navigates there
    assert "Upgraded notes 1.0.0 → 1.1.0" in client.get(htmx.headers["hx-redirect"]).text
    lossy = upload(plugin_zip(notes_toml("2.0.0", body=False, color=True)), url=f"{base}/notes/upgrade")
    assert lossy.status_code == 409
    assert (
        "Destructive upgrade refused" in lossy.text
        and f'<ul class="losses"><li>{LOSS}</li></ul>' in lossy.text
    )
    assert "1.1.0" in text_of(lossy.text)  # still the installed version
    busy = post_form(client, f"{base}/notes/uninstall", {})
    assert busy.status_code == 409 and "still enabled in: system" in busy.text
    post_form(client, f"{base}/notes/disable", {})
    assert post_form(client, f"{base}/notes/uninstall", {}, follow_redirects=False).status_code == 303
    uninstalled = client.get(f"{base}/notes").text
    assert (
        'id="purge"' in uninstalled and 'name="confirm"' in uninstalled and 'id="upgrade"' not in uninstalled
    )

    wrong = post_form(client, f"{base}/notes/purge", {"confirm": "Notes!"})
    assert wrong.status_code == 409 and "Type the plugin id (notes) to confirm the purge" in wrong.text
    assert "plugin_note" in plugin_tables(settings_env)
    done = post_form(client, f"{base}/notes/purge", {"confirm": "notes"})
    assert done.status_code == 200
    name = re.search(r'<code class="secret" id="backup-path">([^<]+)</code>', done.text).group(1)
    link = re.search(r'<a class="button" id="backup-download" href="([^"]+)" download>', done.text).group(1)
    assert name.startswith("notes-purge-") and name.endswith(".zip") and "schema.json" in done.text
    # The backup lives in the database (any host serves it), not under this host's data dir.
    assert not (Path(settings_env["PORTAL_DATA_DIR"]) / "backups").exists()
    got = client.get(link)
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    assert got.headers["content-disposition"] == f'attachment; filename="{name}"'
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        assert sorted(n.split("/", 1)[1] for n in archive.namelist()) == [
            "note.jsonl",
            "plugin.toml",
            "schema.json",
        ]
    assert (
        client.get(re.sub(r"[0-9a-f-]{36}$", "00000000-0000-0000-0000-000000000000", link)).status_code == 404
    )
    logout(client)
    login(client, *BOB)  # a tenant admin, not a platform admin: no backups
    assert client.get(link.replace("/t/system/", "/t/acme/")).status_code == 403
    assert client.get(link).status_code in (403, 404)
    logout(client)
    assert client.get(link, follow_redirects=False).status_code in (302, 303, 401)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert plugin_tables(settings_env) == set()
    assert client.get(f"{base}/notes").status_code == 404
    assert "No plugins yet" in client.get(base).text


def test_openapi_documents_the_plugin_admin_api(client):
    paths = client.get("/api/schema/openapi.json").json()["paths"]
    assert set(paths[API]) == {"get"}
    assert set(paths[f"{API}/upload"]) == {"post"}
    assert "multipart/form-data" in paths[f"{API}/upload"]["post"]["requestBody"]["content"]
    assert set(paths[f"{API}/{{plugin_id}}"]) == {"get", "patch", "delete"}
    for action in ("install", "enable", "disable", "upgrade"):
        assert set(paths[f"{API}/{{plugin_id}}/{action}"]) == {"post"}, action
    assert set(paths[f"{API}/{{plugin_id}}/purge"]) == {"post", "delete"}
    assert set(paths[f"{API}/{{plugin_id}}/health"]) == {"get"}
