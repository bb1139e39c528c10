"""Named plugin configurations through the pages and the JSON API, on both databases: generated forms with
inline errors, key=value text without a schema, activation, renames, deletes, version conflicts, audit,
permissions, and secrets that never leave the server in plaintext."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.access import roles
from app.audit import Actor
from app.core.models import AuditEntry, PluginConfig
from app.identity import directory
from app.installs import lifecycle
from app.plugins.packages import read_folder
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, logout, post_form, text_of
from tests.integration.test_record_pages import in_db
from tests.integration.test_sandbox import probe, probe_packages  # noqa: F401 (fixtures)

BOB = ("bob@acme.test", "bob-password-1")  # Admin of acme
CAROL = ("carol@acme.test", "carol-password-1")  # Member of acme
PAGE = "/t/acme/admin/plugins/mailer/config"
FREE_PAGE = "/t/acme/admin/plugins/freeform/config"
API = "/api/v1/admin/plugins/mailer/config"
SECRET = "pl41n-S3CRET-value-7f3a"
SECRET2 = "another-S3CRET-9b2c"

MAILER_TOML = """
[plugin]
id = "mailer"
name = "Mailer"
version = "1.0.0"

[permissions]
config = true

[[config.fields]]
key = "sender"
type = "email"
required = true
label = "Sender address"
help = "Shown as From:"

[[config.fields]]
key = "batch"
type = "integer"
default = 50

[[config.fields]]
key = "rate"
type = "decimal"
default = "0.5"

[[config.fields]]
key = "tls"
type = "boolean"
default = true

[[config.fields]]
key = "provider"
type = "select"
options = ["smtp", { value = "api", label = "HTTP API" }]
default = "smtp"

[[config.fields]]
key = "password"
type = "string"
secret = true
required = true
"""

FREEFORM_TOML = """
[plugin]
id = "freeform"
name = "Freeform"
version = "1.0.0"

[permissions]
config = true
"""


@pytest.fixture
def acme(client: Any, app: Any, tmp_path: Path) -> Any:
    """mailer (with a schema) and freeform (without) installed; acme with Bob (Admin) and Carol (Member)."""
    for name, text in (("mailer", MAILER_TOML), ("freeform", FREEFORM_TOML)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "plugin.toml").write_text(text)

    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        for name in ("mailer", "freeform"):
            await lifecycle.upload(
                s, actor, read_folder(tmp_path / name), app.state.settings, install_now=True
            )
        t = await directory.create_tenant(s, actor, "acme", "Acme")
        await lifecycle.enable(s, actor, t.id, "mailer")
        for (email, password), role in ((BOB, "Admin"), (CAROL, "Member")):
            user = await directory.create_user(s, actor, email, password)
            await directory.add_member(s, actor, t.id, user, await roles.get_role(s, t.id, role))

    in_db(app, work)
    return client


def stored(app: Any) -> list[PluginConfig]:
    async def work(s: Any) -> list[PluginConfig]:
        return list((await s.scalars(sa.select(PluginConfig).order_by(PluginConfig.name))).all())

    return in_db(app, work)  # type: ignore[no-any-return]


def audit_rows(app: Any) -> list[AuditEntry]:
    async def work(s: Any) -> list[AuditEntry]:
        stmt = (
            sa.select(AuditEntry)
            .where(AuditEntry.target_type == "plugin_config")
            .order_by(AuditEntry.created_at)
        )
        return list((await s.scalars(stmt)).all())

    return in_db(app, work)  # type: ignore[no-any-return]


def raw_table_text(app: Any, table: str) -> str:
    """Every column of every row, as the database returns it (no ORM decoding)."""

    async def work(s: Any) -> str:
        rows = (await s.execute(sa.text(f"SELECT * FROM {table}"))).all()
        return "\n".join(repr(tuple(r)) for r in rows)

    return in_db(app, work)  # type: ignore[no-any-return]


def form(
    name: str, original: str = "", version: int | None = None, active: bool = False, **values: str
) -> dict[str, str]:
    data = {"original": original, "name": name, **{f"v.{k}": v for k, v in values.items()}}
    if version is not None:
        data["version"] = str(version)
    if active:
        data["active"] = "on"
    return data


def saved(response: Any) -> None:
    assert response.status_code == 303, text_of(response.text)[:800]


def error_of(page: str, key: str) -> str:
    match = re.search(rf'<div class="error" id="e-{key}">([^<]*)</div>', page)
    assert match, f"no inline error for {key}: {text_of(page)[:800]}"
    return html.unescape(match.group(1))


def test_form_creates_configurations_and_switches_the_active_one(acme: Any, app: Any) -> None:
    login(acme, *BOB)
    detail = acme.get("/t/acme/admin/plugins/mailer")
    assert f'href="{PAGE}"' in detail.text
    first = acme.get(PAGE)  # nothing yet: the list says so and the new form is open
    assert (
        first.status_code == 200
        and "No configurations yet" in first.text
        and 'id="config-form"' in first.text
    )
    form_html = first.text
    # The form is generated from the schema: typed inputs, required marks, help, defaults.
    assert re.search(r'id="f-v-sender" name="v.sender"[^>]*type="email"', form_html.replace("\n", " "))
    assert 'type="password"' in form_html and 'inputmode="numeric"' in form_html
    assert "Shown as From:" in form_html and "— default (yes) —" in form_html and "HTTP API" in form_html
    assert "default: 50" in form_html

    saved(
        post_form(
            acme,
            PAGE,
            form(
                "Main",
                active=True,
                sender="ops@acme.test",
                batch="20",
                rate="0.75",
                tls="false",
                provider="api",
                password=SECRET,
            ),
            follow_redirects=False,
        )
    )
    saved(
        post_form(
            acme, PAGE, form("Backup", sender="backup@acme.test", password=SECRET2), follow_redirects=False
        )
    )
    rows = {r.name: r for r in stored(app)}
    assert rows["Main"].is_active and not rows["Backup"].is_active
    assert rows["Main"].plain_values == {
        "sender": "ops@acme.test",
        "batch": 20,
        "rate": "0.75",
        "tls": False,
        "provider": "api",
    }
    assert rows["Backup"].plain_values == {"sender": "backup@acme.test"}  # blanks: the defaults apply
    listing = acme.get(PAGE)
    assert "The plugin reads <strong>Main</strong>" in listing.text and 'id="config-form"' not in listing.text
    assert 'id="config-form"' in acme.get(PAGE, params={"new": ""}).text

    # Switch: Backup becomes the only active one.
    saved(post_form(acme, f"{PAGE}/activate", {"name": "Backup"}, follow_redirects=False))
    assert {r.name: r.is_active for r in stored(app)} == {"Backup": True, "Main": False}
    # None active: the defaults apply.
    saved(post_form(acme, f"{PAGE}/activate", {"name": ""}, follow_redirects=False))
    assert not any(r.is_active for r in stored(app))
    assert "No configuration is active" in acme.get(PAGE).text

    # Edit (HTMX loads the editor alone at the same URL), rename, keep the secret by leaving it blank.
    main = next(r for r in stored(app) if r.name == "Main")
    editor = acme.get(PAGE, params={"edit": "Main"}, headers={"HX-Request": "true"})
    assert editor.status_code == 200 and "<html" not in editor.text and 'value="ops@acme.test"' in editor.text
    assert "•••• (set)" in editor.text
    saved(
        post_form(
            acme,
            PAGE,
            form(
                "Primary",
                original="Main",
                version=main.version,
                active=True,
                sender="ops@acme.test",
                batch="30",
                password="",
            ),
            follow_redirects=False,
        )
    )
    primary = next(r for r in stored(app) if r.name == "Primary")
    assert primary.version == main.version + 1 and primary.is_active
    assert primary.secret_values.keys() == {"password"}
    assert primary.secret_values == main.secret_values  # blank secret: unchanged

    # A stale version is a conflict, shown on the page; nothing changes.
    stale = post_form(
        acme, PAGE, form("Primary", original="Primary", version=main.version, sender="x@acme.test")
    )
    assert stale.status_code == 409 and "changed by someone else" in text_of(stale.text)
    assert next(r for r in stored(app) if r.name == "Primary").plain_values["sender"] == "ops@acme.test"

    # The active configuration cannot be deleted; another one can.
    refused = post_form(acme, f"{PAGE}/delete", {"name": "Primary", "version": str(primary.version)})
    assert refused.status_code == 409 and "make another one active" in text_of(refused.text)
    backup = next(r for r in stored(app) if r.name == "Backup")
    saved(
        post_form(
            acme, f"{PAGE}/delete", {"name": "Backup", "version": str(backup.version)}, follow_redirects=False
        )
    )
    assert [r.name for r in stored(app)] == ["Primary"]
    gone = post_form(
        acme, PAGE, form("Backup", original="Backup", version=backup.version, sender="b@acme.test")
    )
    assert gone.status_code == 404 and "deleted meanwhile" in text_of(
        gone.text
    )  # not re-created by an old form
    actions = [a.action for a in audit_rows(app)]
    assert actions.count("plugin.config.created") == 2 and "plugin.config.deleted" in actions
    assert actions.count("plugin.config.activated") == 2 and "plugin.config.updated" in actions


def test_form_shows_value_errors_inline_and_saves_nothing(acme: Any, app: Any) -> None:
    login(acme, *BOB)
    bad = post_form(
        acme,
        PAGE,
        form("Main", sender="not-an-address", batch="many", rate="1,5", provider="fax", password=""),
    )
    assert bad.status_code == 422
    assert "is not an e-mail address" in error_of(bad.text, "sender")
    assert error_of(bad.text, "batch") == "'many' is not a whole number"
    assert "not a decimal number" in error_of(bad.text, "rate")
    assert "not one of the options (smtp, api)" in error_of(bad.text, "provider")
    assert error_of(bad.text, "password") == "is required"
    assert 'value="many"' in bad.text  # what was typed is kept
    assert stored(app) == []

    # A typed secret is never echoed, even when the form comes back with errors.
    again = post_form(acme, PAGE, form("Main", sender="", password=SECRET))
    assert again.status_code == 422 and error_of(again.text, "sender") == "is required"
    assert SECRET not in again.text

    saved(post_form(acme, PAGE, form("Main", sender="a@acme.test", password=SECRET), follow_redirects=False))
    dup = post_form(acme, PAGE, form("Main", sender="b@acme.test", password=SECRET))
    assert dup.status_code == 422 and "already exists" in error_of(dup.text, "name")
    dup = post_form(
        acme, PAGE, form("Main", sender="b@acme.test")
    )  # the other one's secret is not this one's
    assert error_of(dup.text, "password") == "is required"
    assert len(stored(app)) == 1


def test_text_configuration_without_a_schema(acme: Any, app: Any) -> None:
    login(acme, *BOB)
    page = acme.get(FREE_PAGE)
    assert 'name="text"' in page.text and "key = value" in page.text
    bad = post_form(
        acme, FREE_PAGE, {"original": "", "name": "Default", "text": "a = 1\nnot a pair\na = 2\n"}
    )
    assert bad.status_code == 422
    message = error_of(bad.text, "text")
    assert "line 2: expected key = value" in message and "line 3: key 'a' is already set on line 1" in message
    assert stored(app) == []
    text = "# comment\nendpoint = https://x.test/api\n\nmode=fast\n"
    saved(
        post_form(
            acme,
            FREE_PAGE,
            {"original": "", "name": "Default", "text": text, "active": "on"},
            follow_redirects=False,
        )
    )
    (row,) = stored(app)
    assert row.plain_values == {"endpoint": "https://x.test/api", "mode": "fast"} and row.is_active
    assert "endpoint = https://x.test/api" in acme.get(FREE_PAGE, params={"edit": "Default"}).text

    token = api_token(acme, *BOB)
    r = acme.put(
        "/api/v1/admin/plugins/freeform/config",
        json={"name": "Other", "values": {"n": 5}},
        headers=bearer(token, "acme"),
    )
    assert r.status_code == 422 and "expected text" in r.json()["errors"]["values.n"]


def test_api_lists_creates_updates_and_conflicts(acme: Any, app: Any) -> None:
    token = api_token(acme, *BOB)
    h = bearer(token, "acme")
    empty = acme.get(API, headers=h)
    assert empty.status_code == 200
    body = empty.json()
    assert body["items"] == [] and body["active"] is None
    assert [f["key"] for f in body["fields"]] == ["sender", "batch", "rate", "tls", "provider", "password"]
    assert body["fields"][5]["secret"] is True and body["fields"][2]["default"] == "0.5"

    made = acme.put(
        API,
        json={
            "name": "Main",
            "values": {
                "sender": "ops@acme.test",
                "batch": 7,
                "rate": "1.25",
                "tls": False,
                "password": SECRET,
            },
            "active": True,
        },
        headers=h,
    )
    assert made.status_code == 201, made.text
    item = made.json()
    assert item["values"] == {
        "sender": "ops@acme.test",
        "batch": 7,
        "rate": "1.25",
        "tls": False,
        "password": "***",
    }
    assert item["active"] is True and item["version"] == 1

    # Per-field errors as problem details; nothing stored.
    bad = acme.put(
        API,
        json={"name": "Second", "values": {"sender": "x", "batch": True, "provider": "fax", "colour": "red"}},
        headers=h,
    )
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    errors = bad.json()["errors"]
    assert set(errors) == {
        "values.sender",
        "values.batch",
        "values.provider",
        "values.colour",
        "values.password",
    }
    assert "unknown key 'colour'" in errors["values.colour"] and errors["values.password"] == "is required"

    # Update: version required and checked; `***` keeps the secret; a rename.
    no_version = acme.put(API, json={"name": "Main", "values": {"sender": "ops@acme.test"}}, headers=h)
    assert no_version.status_code == 422 and "version" in no_version.json()["errors"]
    updated = acme.put(
        API,
        json={
            "name": "Main",
            "new_name": "Primary",
            "version": 1,
            "values": {"sender": "new@acme.test", "password": "***"},
        },
        headers=h,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2 and updated.json()["name"] == "Primary"
    assert updated.json()["values"] == {"sender": "new@acme.test", "password": "***"}
    stale = acme.put(
        API, json={"name": "Primary", "version": 1, "values": {"sender": "z@acme.test"}}, headers=h
    )
    assert stale.status_code == 409 and "changed by someone else" in stale.json()["detail"]

    second = acme.put(
        API, json={"name": "Second", "values": {"sender": "s@acme.test", "password": SECRET2}}, headers=h
    )
    assert second.status_code == 201
    switched = acme.post(f"{API}/activate", json={"name": "Second"}, headers=h)
    assert switched.status_code == 200 and switched.json()["active"] == "Second"
    assert {i["name"]: i["active"] for i in switched.json()["items"]} == {"Primary": False, "Second": True}
    refused = acme.delete(f"{API}/Second", headers=h)
    assert refused.status_code == 409
    gone = acme.delete(f"{API}/Primary", params={"version": 2}, headers=h)
    assert gone.status_code == 200 and [i["name"] for i in gone.json()["items"]] == ["Second"]
    assert acme.delete(f"{API}/Nope", headers=h).status_code == 404
    assert acme.post(f"{API}/activate", json={"name": None}, headers=h).json()["active"] is None

    paths = acme.get("/api/schema/openapi.json").json()["paths"]
    base = "/api/v1/admin/plugins/{plugin_id}/config"
    assert set(paths[base]) == {"get", "put"}
    assert set(paths[f"{base}/activate"]) == {"post"} and set(paths[f"{base}/{{name}}"]) == {"delete"}


def test_configuring_needs_plugin_configure(acme: Any) -> None:
    carol = api_token(acme, *CAROL)
    c = bearer(carol, "acme")
    assert acme.get(API, headers=c).status_code == 403
    assert acme.put(API, json={"name": "x", "values": {}}, headers=c).status_code == 403
    assert acme.post(f"{API}/activate", json={"name": None}, headers=c).status_code == 403
    login(acme, *CAROL)
    assert acme.get(PAGE).status_code == 403
    assert post_form(acme, PAGE, form("x")).status_code == 403
    logout(acme)
    login(acme, ADMIN_EMAIL, ADMIN_PASSWORD)  # the platform admin reaches every tenant
    assert acme.get(PAGE).status_code == 200


def test_purge_drops_the_configurations(acme: Any, app: Any) -> None:
    root = api_token(acme, ADMIN_EMAIL, ADMIN_PASSWORD)
    made = acme.put(
        API,
        json={"name": "Main", "values": {"sender": "a@acme.test", "password": SECRET}},
        headers=bearer(root, "acme"),
    )
    assert made.status_code == 201, made.text
    system = bearer(root, "system")
    assert acme.post("/api/v1/admin/plugins/mailer/disable", headers=bearer(root, "acme")).status_code == 200
    assert acme.delete("/api/v1/admin/plugins/mailer", headers=system).status_code == 200
    assert len(stored(app)) == 1  # a soft uninstall keeps them, like the data
    purged = acme.post("/api/v1/admin/plugins/mailer/purge", json={"confirm": "mailer"}, headers=system)
    assert purged.status_code == 200, purged.text
    assert stored(app) == []


def test_secrets_never_leave_the_server_in_plaintext(acme: Any, app: Any) -> None:
    token = api_token(acme, *BOB)
    h = bearer(token, "acme")
    login(acme, *BOB)
    saved(
        post_form(
            acme,
            PAGE,
            form("Main", active=True, sender="a@acme.test", password=SECRET),
            follow_redirects=False,
        )
    )
    put = acme.put(
        API, json={"name": "Api", "values": {"sender": "b@acme.test", "password": SECRET2}}, headers=h
    )
    main = next(r for r in stored(app) if r.name == "Main")
    # Change the secret once more, so the audit holds a before and after of a secret.
    saved(
        post_form(
            acme,
            PAGE,
            form(
                "Main",
                original="Main",
                version=main.version,
                active=True,
                sender="a@acme.test",
                password=SECRET + "-2",
            ),
            follow_redirects=False,
        )
    )
    responses = [
        put.text,
        acme.get(API, headers=h).text,
        acme.get(PAGE).text,
        acme.get(PAGE, params={"edit": "Main"}).text,
        acme.get(PAGE, params={"edit": "Api"}).text,
        acme.get("/t/acme/admin/plugins/mailer").text,
        acme.get("/t/acme/admin/audit").text,
        acme.get("/api/v1/audit", headers=h).text,
    ]
    for text in responses:
        assert SECRET not in text and SECRET2 not in text
    # The database holds neither in plaintext (nor in the audit), but the secrets are there, sealed.
    for table in ("tenant_plugin_configs", "audit_log"):
        raw = raw_table_text(app, table)
        assert SECRET not in raw and SECRET2 not in raw, table
        assert (
            "v1:" if table == "tenant_plugin_configs" else "*** (changed)"
        ) in raw  # the rows are really there
    assert all(v.startswith("v1:") for r in stored(app) for v in r.secret_values.values())
    changed = [a for a in audit_rows(app) if a.action == "plugin.config.updated"]
    assert changed and changed[-1].before == {"values.password": "***"}
    assert changed[-1].after == {"values.password": "*** (changed)"}


# --- a real WASM guest reading its configuration ---------------------------------------------------

PROBE_API = "/api/v1/admin/plugins/probe/config"
DEFAULTS = {
    "greeting": '"hello"',
    "limit": "10",
    "rate": "0.25",
    "loud": "false",
    "currency": '"eur"',
    "api_key": "None",
    "nope": "None",
}


def seen_by_guest(client: Any, tenant: str = "acme") -> dict[str, str]:
    """What the probe guest's config-get answered for each key (JSON text; None: no value)."""
    r = client.get(f"/t/{tenant}/p/probe/probe", params={"mode": "config"})
    assert r.status_code == 200, text_of(r.text)[:600]
    return dict(
        re.findall(
            r"\b(greeting|limit|rate|loud|currency|api_key|nope)=(\S+)", html.unescape(text_of(r.text))
        )
    )


def test_guest_reads_the_active_configuration_and_sees_switches_without_restart(
    probe: Any, app: Any, settings_env: dict[str, str]
) -> None:
    from litestar.testing import TestClient

    from app.core.settings import load_settings
    from app.server import create_app

    assert seen_by_guest(probe) == DEFAULTS
    token = api_token(probe, ADMIN_EMAIL, ADMIN_PASSWORD)
    login(probe, ADMIN_EMAIL, ADMIN_PASSWORD)
    h = bearer(token, "acme")
    a = probe.put(
        PROBE_API,
        headers=h,
        json={
            "name": "A",
            "active": True,
            "values": {
                "greeting": "hi-A",
                "limit": 5,
                "rate": "1.50",
                "loud": True,
                "currency": "usd",
                "api_key": "key-A",
            },
        },
    )
    assert a.status_code == 201, a.text
    assert seen_by_guest(probe) == {
        "greeting": '"hi-A"',
        "limit": "5",
        "rate": "1.50",
        "loud": "true",
        "currency": '"usd"',
        "api_key": '"key-A"',
        "nope": "None",
    }
    b = probe.put(
        PROBE_API,
        headers=h,
        json={"name": "B", "active": True, "values": {"greeting": "hi-B", "api_key": "key-B"}},
    )
    assert b.status_code == 201, b.text
    assert seen_by_guest(probe) == {**DEFAULTS, "greeting": '"hi-B"', "api_key": '"key-B"'}
    assert seen_by_guest(probe, "globex") == DEFAULTS  # another tenant: its own (no) configuration

    # A second worker process of the same deployment: its warm instances see every switch at once.
    other_app = create_app(load_settings(settings_env))
    with TestClient(app=other_app, base_url="http://testserver.local") as other:
        login(other, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert seen_by_guest(other)["greeting"] == '"hi-B"'
        assert probe.post(f"{PROBE_API}/activate", headers=h, json={"name": "A"}).status_code == 200
        assert seen_by_guest(other)["greeting"] == '"hi-A"' and seen_by_guest(probe)["api_key"] == '"key-A"'
        edited = probe.put(
            PROBE_API, headers=h, json={"name": "A", "version": 1, "values": {"greeting": "hi-A2"}}
        )
        assert edited.status_code == 200, edited.text
        assert seen_by_guest(other) == {
            **DEFAULTS,
            "greeting": '"hi-A2"',
            "api_key": '"key-A"',
        }  # secret kept
        assert probe.post(f"{PROBE_API}/activate", headers=h, json={"name": None}).status_code == 200
        assert seen_by_guest(other) == DEFAULTS


def test_two_admins_activating_at_once_get_a_conflict_not_an_error(pg_migrated: str, tmp_path: Path) -> None:
    """PostgreSQL only (SQLite runs one writer at a time): the partial unique index keeps one configuration
    active, and the loser of the race is told to retry (409) rather than failing with a 500."""
    import asyncio

    from app.core.db import make_alchemy_config
    from app.core.errors import Conflict
    from app.core.settings import load_settings
    from app.plugins import configs
    from tests.conftest import _settings_env, reset_pg

    reset_pg()
    settings = load_settings(_settings_env(tmp_path, pg_migrated))
    actor = Actor(None, "test")

    async def go() -> None:
        config = make_alchemy_config(settings)
        try:
            async with config.get_session() as s:
                tenant = await directory.create_tenant(s, actor, "acme", "Acme")
                for name in ("A", "B"):
                    s.add(
                        PluginConfig(
                            tenant_id=tenant.id,
                            plugin_id="mailer",
                            name=name,
                            plain_values={},
                            secret_values={},
                            is_active=False,
                            version=1,
                        )
                    )
                await s.commit()
            async with config.get_session() as first, config.get_session() as second:
                await configs.activate(first, actor, tenant.id, "mailer", "A")  # not committed yet

                async def other() -> None:
                    await configs.activate(second, actor, tenant.id, "mailer", "B")

                racing = asyncio.create_task(other())
                await asyncio.sleep(0.5)
                assert not racing.done()  # waiting on the index entry of the first transaction
                await first.commit()
                with pytest.raises(Conflict, match="at the same moment"):
                    await racing
                await second.rollback()
            async with config.get_session() as s:
                rows = (await s.scalars(sa.select(PluginConfig).order_by(PluginConfig.name))).all()
                assert [(r.name, r.is_active) for r in rows] == [("A", True), ("B", False)]
        finally:
            await config.get_engine().dispose()

    asyncio.run(go())
