"""Extension points (app.extensions) with a real component (tests/fixtures/guests/extkit): the registry,
configurations (validation, secrets, versions, isolation, permission), resolution by id and by point,
workflow steps using configured conditions and selectors, hostile implementations, and record
validators on every write path (both backends)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app import extensions
from app.access import roles
from app.audit import Actor
from app.core.errors import NotFound
from app.core.models import AuditEntry, PluginFault, WorkflowInstance
from app.identity import directory
from app.installs import lifecycle
from app.plugins.packages import read_folder
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.guests import built_plugin
from tests.helpers import api_token, bearer, login, post_form
from tests.integration.test_record_pages import in_db

PASSWORD = "member-password-1"
ACTOR = Actor(None, "test")
ORDERS = "/api/v1/plugins/extkit/ext_order"
CONFIGS = "/api/v1/extensions/configs"
PAGE = "/t/acme/p/extkit/extkit/orders"


@pytest.fixture(scope="session")
def extkit_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_plugin("extkit", tmp_path_factory.mktemp("extkit"))


@pytest.fixture
def world(client: Any, app: Any, extkit_package: Path) -> dict[str, Any]:
    """extkit enabled in acme and globex. acme: ann (Admin), bob and cy (Clerk: orders), dan (inactive
    Clerk). globex: gil (Admin). Tokens for ann, bob, gil."""

    async def work(s: Any) -> dict[str, Any]:
        await lifecycle.upload(s, ACTOR, read_folder(extkit_package), app.state.settings, install_now=True)
        ids: dict[str, Any] = {}
        for slug in ("acme", "globex"):
            t = await directory.create_tenant(s, ACTOR, slug, slug.title())
            await lifecycle.enable(s, ACTOR, t.id, "extkit")
            ids[slug] = t.id
        clerk = await roles.create_role(s, ACTOR, ids["acme"], "Clerk")
        await roles.grant(s, ACTOR, clerk, ["db.ext_order.*"])
        admin_acme = await roles.get_role(s, ids["acme"], "Admin")
        admin_globex = await roles.get_role(s, ids["globex"], "Admin")
        for name, tenant, role in (
            ("ann", "acme", admin_acme),
            ("bob", "acme", clerk),
            ("cy", "acme", clerk),
            ("dan", "acme", clerk),
            ("gil", "globex", admin_globex),
        ):
            user = await directory.create_user(s, ACTOR, f"{name}@corp.test", PASSWORD, name.title())
            await directory.add_member(s, ACTOR, ids[tenant], user, role)
            ids[name] = user.id
            if name == "dan":
                user.is_active = False
        return ids

    ids = in_db(app, work)
    tokens = {name: api_token(client, f"{name}@corp.test", PASSWORD) for name in ("ann", "bob", "gil")}
    tokens["root"] = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return {"ids": ids, "tokens": tokens, "client": client, "app": app}


def h(w: dict[str, Any], who: str = "ann", tenant: str = "acme") -> dict[str, str]:
    return bearer(w["tokens"][who], tenant)


def configure(
    w: dict[str, Any],
    implementation: str,
    name: str,
    values: dict[str, Any] | None = None,
    *,
    who: str = "ann",
    tenant: str = "acme",
    status: int = 201,
    **extra: Any,
) -> dict[str, Any]:
    r = w["client"].post(
        CONFIGS,
        json={"implementation": implementation, "name": name, "values": values or {}, **extra},
        headers=h(w, who, tenant),
    )
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


def order(w: dict[str, Any], who: str = "bob", **values: Any) -> Any:
    return w["client"].post(ORDERS, json={"title": "Order", **values}, headers=h(w, who))


def define(w: dict[str, Any], steps: list[dict[str, Any]], status: int = 200) -> Any:
    r = w["client"].put(
        "/api/v1/workflow/processes/extkit/ext_order",
        json={"name": "Order approval", "steps": steps},
        headers=h(w),
    )
    assert r.status_code == status, r.text
    return r.json()


def submit(w: dict[str, Any], record_id: str) -> dict[str, Any]:
    r = w["client"].post(f"{ORDERS}/{record_id}/submit", headers=h(w, "bob"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def faults(w: dict[str, Any]) -> list[tuple[str, str, bool]]:
    async def work(s: Any) -> list[tuple[str, str, bool]]:
        rows = (await s.scalars(sa.select(PluginFault).order_by(PluginFault.created_at))).all()
        return [(r.call, r.kind, r.counts_as_trap) for r in rows]

    return in_db(w["app"], work)  # type: ignore[no-any-return]


def wait_for_faults(w: dict[str, Any], count: int) -> list[tuple[str, str, bool]]:
    """Faults of extension calls are recorded after the request's transaction, in the background."""
    deadline = time.monotonic() + 10
    while True:
        found = faults(w)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# --- registry and configurations ------------------------------------------------------------------------


def test_points_list_builtin_and_plugin_implementations(world: dict[str, Any]) -> None:
    r = world["client"].get("/api/v1/extensions/points", headers=h(world))
    assert r.status_code == 200, r.text
    points = {p["point"]: [i["key"] for i in p["implementations"]] for p in r.json()["items"]}
    assert points["condition"] == ["base:fields", "extkit:amount-above", "extkit:spin", "extkit:not-bool"]
    assert points["user-selector"] == [
        "base:role",
        "base:user",
        "base:manager",
        "extkit:listed-users",
        "extkit:strangers",
    ]
    assert points["record-validator"] == ["extkit:code-pattern", "extkit:bad-shape"]
    assert points["auth-verifier"] == ["extkit:hmac-token", "extkit:bad-identity"]
    secret = next(
        i for p in r.json()["items"] for i in p["implementations"] if i["key"] == "extkit:hmac-token"
    )
    assert secret["config_fields"][0]["secret"] is True


def test_configuration_validation_secrets_versions_and_audit(world: dict[str, Any]) -> None:
    w = world
    bad = w["client"].post(
        CONFIGS,
        json={
            "implementation": "extkit:amount-above",
            "name": "Big",
            "values": {"threshold": "lots", "extra": 1},
        },
        headers=h(w),
    )
    assert bad.status_code == 422
    errors = bad.json()["extra"]["errors"] if "extra" in bad.json() else bad.json()["errors"]
    assert (
        "not a whole number" in errors["values.threshold"] and "unknown key 'extra'" in errors["values.extra"]
    )
    missing = w["client"].post(
        CONFIGS, json={"implementation": "extkit:amount-above", "name": "Big"}, headers=h(w)
    )
    assert missing.status_code == 422 and "is required" in missing.text
    unknown = w["client"].post(CONFIGS, json={"implementation": "extkit:nope", "name": "X"}, headers=h(w))
    assert unknown.status_code == 409 and "declares no extension 'nope'" in unknown.text  # the tenant's state
    no_role = w["client"].post(
        CONFIGS, json={"implementation": "base:role", "name": "R", "values": {"role": "Ghosts"}}, headers=h(w)
    )
    assert no_role.status_code == 422 and "no role 'Ghosts'" in no_role.text
    big = configure(w, "extkit:amount-above", "Big", {"threshold": 100})
    assert big["enabled"] is True and big["values"] == {"threshold": 100} and big["version"] == 1
    dup = w["client"].post(CONFIGS, json={"implementation": "base:manager", "name": "Big"}, headers=h(w))
    assert dup.status_code == 409 and "already exists" in dup.text
    # Auto-login verifiers start disabled, whatever the request says; secrets are never shown back.
    token = configure(w, "extkit:hmac-token", "Partner SSO", {"secret": "s3cret-value"}, enabled=True)
    assert token["enabled"] is False and token["values"] == {"secret": "***"}
    assert "s3cret-value" not in w["client"].get(f"{CONFIGS}/{token['id']}", headers=h(w)).text
    stale = w["client"].patch(
        f"{CONFIGS}/{big['id']}", json={"version": 7, "values": {"threshold": 5}}, headers=h(w)
    )
    assert stale.status_code == 409
    changed = (
        w["client"]
        .patch(f"{CONFIGS}/{big['id']}", json={"version": 1, "values": {"threshold": 5}}, headers=h(w))
        .json()
    )
    assert changed["version"] == 2 and changed["values"] == {"threshold": 5}
    kept = (
        w["client"]
        .patch(
            f"{CONFIGS}/{token['id']}",
            json={"version": 1, "enabled": True, "values": {"secret": "***"}},
            headers=h(w),
        )
        .json()
    )
    assert kept["enabled"] is True and kept["values"] == {"secret": "***"}

    async def work(s: Any) -> list[tuple[str, str]]:
        rows = (
            await s.scalars(
                sa.select(AuditEntry)
                .where(AuditEntry.action.like("extension.config.%"))
                .order_by(AuditEntry.created_at)
            )
        ).all()
        return [(r.action, str(r.after)) for r in rows]

    trail = in_db(w["app"], work)
    assert [a for a, _ in trail] == [
        "extension.config.created",
        "extension.config.created",
        "extension.config.updated",
        "extension.config.enabled",
    ]
    assert all("s3cret-value" not in after for _, after in trail)
    assert w["client"].delete(f"{CONFIGS}/{big['id']}?version=1", headers=h(w)).status_code == 409
    assert w["client"].delete(f"{CONFIGS}/{big['id']}?version=2", headers=h(w)).status_code == 204


def test_configurations_obey_tenant_isolation_and_permission(world: dict[str, Any]) -> None:
    w = world
    mine = configure(w, "base:manager", "Boss")
    assert w["client"].get(CONFIGS, headers=h(w, "bob")).status_code == 403  # a clerk is no extension admin
    assert (
        w["client"]
        .post(CONFIGS, json={"implementation": "base:manager", "name": "X"}, headers=h(w, "bob"))
        .status_code
        == 403
    )
    assert w["client"].get(CONFIGS, headers=h(w, "gil", "globex")).json()["items"] == []
    assert w["client"].get(f"{CONFIGS}/{mine['id']}", headers=h(w, "gil", "globex")).status_code == 404
    assert (
        w["client"]
        .patch(
            f"{CONFIGS}/{mine['id']}", json={"version": 1, "enabled": False}, headers=h(w, "gil", "globex")
        )
        .status_code
        == 404
    )
    assert w["client"].delete(f"{CONFIGS}/{mine['id']}", headers=h(w, "gil", "globex")).status_code == 404
    # Another tenant's configuration cannot be named in a process either.
    theirs = configure(w, "base:manager", "Theirs", who="gil", tenant="globex")
    r = w["client"].put(
        "/api/v1/workflow/processes/extkit/ext_order",
        headers=h(w),
        json={
            "steps": [{"name": "S", "selector": {"kind": "extension", "config": {"config_id": theirs["id"]}}}]
        },
    )
    assert r.status_code == 422 and "No such extension configuration" in r.text


def test_resolution_by_id_and_by_point(world: dict[str, Any]) -> None:
    w = world
    big = configure(w, "extkit:amount-above", "Big", {"threshold": 100})
    boss = configure(w, "base:manager", "Boss")
    off = configure(w, "extkit:amount-above", "Off", {"threshold": 1}, enabled=False)
    theirs = configure(w, "base:manager", "Theirs", who="gil", tenant="globex")
    acme, globex = w["ids"]["acme"], w["ids"]["globex"]

    async def work(s: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        found = await extensions.resolve(s, acme, big["id"])
        out["by_id"] = (found.impl.key, found.plugin.id if found.plugin else None, found.config.name)
        out["builtin"] = (await extensions.resolve(s, acme, boss["id"], "user-selector")).impl.key
        for key, args in (
            ("wrong_point", (acme, big["id"], "user-selector")),
            ("disabled", (acme, off["id"])),
            ("other_tenant", (acme, theirs["id"])),
            ("garbage", (acme, "not-a-uuid")),
        ):
            try:
                await extensions.resolve(s, *args)
                out[key] = "resolved"
            except NotFound as exc:
                out[key] = exc.detail
        out["all_conditions"] = [r.config.name for r in await extensions.resolve_all(s, acme, "condition")]
        out["all_selectors"] = [r.config.name for r in await extensions.resolve_all(s, acme, "user-selector")]
        out["globex"] = [r.config.name for r in await extensions.resolve_all(s, globex, "user-selector")]
        await lifecycle.disable(s, ACTOR, acme, "extkit")
        s.info.clear()
        out["after_disable"] = [r.config.name for r in await extensions.resolve_all(s, acme, "condition")]
        try:
            await extensions.resolve(s, acme, big["id"])
        except NotFound as exc:
            out["unavailable"] = exc.detail
        return out

    out = in_db(w["app"], work)
    assert out["by_id"] == ("extkit:amount-above", "extkit", "Big")
    assert out["builtin"] == "base:manager"
    assert "expected a user selector" in out["wrong_point"]
    assert "'Off' is disabled" in out["disabled"]
    assert (
        "No such extension configuration" in out["other_tenant"]
        and "No extension configuration" in out["garbage"]
    )
    assert (
        out["all_conditions"] == ["Big"] and out["all_selectors"] == ["Boss"] and out["globex"] == ["Theirs"]
    )
    assert out["after_disable"] == [] and "is not available in this tenant" in out["unavailable"]


# --- workflow steps -------------------------------------------------------------------------------------


def test_process_steps_use_configured_wasm_condition_and_selector(world: dict[str, Any]) -> None:
    w = world
    ids = w["ids"]
    big = configure(w, "extkit:amount-above", "Big orders", {"threshold": 100})
    # gil is another tenant's member, dan is inactive, the last is nobody: all dropped.
    people = configure(
        w,
        "extkit:listed-users",
        "Order desk",
        {"user_ids": f"{ids['cy']}, {ids['gil']}, {ids['dan']}, {uuid.uuid4()}"},
    )
    define(
        w,
        [
            {
                "name": "Desk",
                "selector": {"kind": "extension", "config": {"config_id": people["id"]}},
                "condition": {"kind": "extension", "config": {"config_id": big["id"]}},
            }
        ],
    )
    large = order(w, amount=500).json()
    instance = submit(w, large["id"])
    assert instance["state"] == "running", instance
    r = w["client"].get(
        "/api/v1/tasks", headers=bearer(api_token(w["client"], "cy@corp.test", PASSWORD), "acme")
    )
    assert [t["record_id"] for t in r.json()["items"]] == [large["id"]]

    async def assignees(s: Any) -> list[Any]:
        from app.core.models import WorkflowAssignee

        return list((await s.scalars(sa.select(WorkflowAssignee.user_id))).all())

    assert in_db(w["app"], assignees) == [ids["cy"]]
    small = order(w, amount=50).json()
    assert submit(w, small["id"])["state"] == "approved"  # the condition does not hold: no step applies
    # A configuration a process uses cannot be deleted (its steps would get stuck).
    refused = w["client"].delete(f"{CONFIGS}/{people['id']}", headers=h(w))
    assert refused.status_code == 409 and "Order approval" in refused.text


def test_builtin_implementations_through_the_same_registry(world: dict[str, Any]) -> None:
    w = world
    cond = configure(w, "base:fields", "Large", {"field": "amount", "op": "gt", "value": "100"})
    clerks = configure(w, "base:role", "Clerks", {"role": "Clerk"})
    bad_field = configure(w, "base:fields", "Typo", {"field": "amuont", "op": "gt", "value": "1"})
    refused = define(
        w,
        [
            {
                "name": "S",
                "selector": {"kind": "role", "config": {"role": "Clerk"}},
                "condition": {"kind": "extension", "config": {"config_id": bad_field["id"]}},
            }
        ],
        status=422,
    )
    assert "has no field 'amuont'" in str(refused)
    define(
        w,
        [
            {
                "name": "S",
                "selector": {"kind": "extension", "config": {"config_id": clerks["id"]}},
                "condition": {"kind": "extension", "config": {"config_id": cond["id"]}},
            }
        ],
    )
    assert submit(w, order(w, amount=500).json()["id"])["state"] == "running"
    assert submit(w, order(w, amount=5).json()["id"])["state"] == "approved"


@pytest.mark.parametrize(
    ("implementation", "kind", "reason"),
    [
        # A guest that never returns is stopped by whichever limit it reaches first: the wall-clock deadline
        # on a busy machine, the instruction budget (fuel) on an idle fast one. Either is the right answer.
        ("extkit:spin", "condition", "deadline|instruction budget"),
        ("extkit:not-bool", "condition", "returned int, not True or False"),
        ("extkit:strangers", "selector", "named no active member of this tenant (2 id(s)"),
    ],
)
def test_a_hostile_implementation_leaves_the_instance_stuck(
    world: dict[str, Any], implementation: str, kind: str, reason: str
) -> None:
    w = world
    bad = configure(w, implementation, "Hostile")
    step: dict[str, Any] = {"name": "Check", "selector": {"kind": "role", "config": {"role": "Clerk"}}}
    if kind == "condition":
        step["condition"] = {"kind": "extension", "config": {"config_id": bad["id"]}}
    else:
        step["selector"] = {"kind": "extension", "config": {"config_id": bad["id"]}}
    define(w, [step])
    instance = submit(w, order(w, amount=5).json()["id"])
    reasons = reason.split("|")
    assert instance["state"] == "stuck", instance
    assert any(r in instance["error"] for r in reasons) and "Step 1 (Check)" in instance["error"], instance[
        "error"
    ]
    # The process (and the plugin's other extensions) keep working.
    assert order(w, amount=6).status_code == 201
    if implementation == "extkit:spin":
        faults = wait_for_faults(w, 1)
        assert {("check-condition", "deadline_ms", True), ("check-condition", "fuel", True)} & set(faults), (
            faults
        )

    async def work(s: Any) -> str:
        return await s.scalar(sa.select(WorkflowInstance.error))  # type: ignore[no-any-return]

    assert any(r in in_db(w["app"], work) for r in reasons)


# --- record validators ----------------------------------------------------------------------------------


def test_record_validator_refuses_writes_on_every_path(world: dict[str, Any]) -> None:
    w = world
    c = w["client"]
    assert order(w, code="anything").status_code == 201  # no validator yet
    configure(w, "extkit:code-pattern", "Order codes", {"pattern": r"[A-Z]{3}-\d+"})
    bad = order(w, code="abc")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert "must match [A-Z]{3}-\\d+" in bad.json()["errors"]["code"]
    good = order(w, code="ABC-1")
    assert good.status_code == 201, good.text
    row = good.json()
    update = c.put(
        f"{ORDERS}/{row['id']}", json={"code": "nope", "version": row["version"]}, headers=h(w, "bob")
    )
    assert update.status_code == 422 and "must match" in update.text
    # globex has no validator: its writes are not checked.
    gil = c.post(ORDERS, json={"title": "G", "code": "lower"}, headers=h(w, "gil", "globex"))
    assert gil.status_code == 201, gil.text
    # The generated form shows the error inline, next to the field.
    login(c, "bob@corp.test", PASSWORD)
    form = post_form(c, f"{PAGE}/new", {"title": "Form order", "code": "bad", "amount": "1"})
    assert form.status_code == 422
    assert "must match" in form.text and 'name="code"' in form.text
    # CSV import: the row is refused, nothing is written.
    csv = "title,code\nfine,XYZ-9\nwrong,zz\n"
    preview = post_form(c, f"{PAGE}/import", {"confirm": "1", "csv_text": csv})
    assert preview.status_code == 422 and "must match" in preview.text

    # The WASM host API (the plugin's own page writing through db.insert: a validator call inside its call).
    login(c, "bob@corp.test", PASSWORD)
    refused = c.get("/t/acme/p/extkit/extkit/add", params={"code": "guest"})
    assert refused.status_code == 200 and "refused: db-insert: code: must match" in refused.text, (
        refused.text[-1500:]
    )
    inserted = c.get("/t/acme/p/extkit/extkit/add", params={"code": "GST-7"})
    assert "inserted GST-7" in inserted.text, inserted.text[-1500:]

    async def count(s: Any) -> int:
        from app.plugins import runtime

        ref = await runtime.entity_in_tenant(s, w["ids"]["acme"], "extkit", "ext_order")
        return int(
            await s.scalar(
                sa.select(sa.func.count())
                .select_from(ref.table)
                .where(ref.table.c.tenant_id == w["ids"]["acme"])
            )
            or 0
        )

    assert in_db(w["app"], count) == 3  # "anything", "ABC-1" and "GST-7"


def test_a_broken_validator_fails_the_write_clearly(world: dict[str, Any]) -> None:
    w = world
    shape = configure(w, "extkit:bad-shape", "Broken")
    r = order(w, code="X")
    assert r.status_code == 422, r.text
    assert "could not be validated" in r.text and "not a JSON object of field -> message" in r.text
    w["client"].patch(f"{CONFIGS}/{shape['id']}", json={"version": 1, "enabled": False}, headers=h(w))
    assert order(w, code="X").status_code == 201  # disabled: the next request no longer runs it


# --- components built before extension points ----------------------------------------------------------


def _old_wit(target: Path) -> Path:
    """wit/plugin.wit as it was before the extensions interface (same package version 0.1.0)."""
    from app.sandbox.build import wit_dir

    text = (wit_dir() / "plugin.wit").read_text(encoding="utf-8")
    start = text.index("/// Extension points the plugin implements")
    end = text.index("/// Every plugin's component.")
    old = text[:start] + text[end : text.index("/// The component of a plugin that declares")]
    assert "extensions" not in old
    target.mkdir(parents=True, exist_ok=True)
    (target / "plugin.wit").write_text(old, encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def old_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe plugin built against the WIT world without `export extensions` (as older builds are)."""
    from app.sandbox import build

    base = tmp_path_factory.mktemp("old-world")
    wit = _old_wit(base / "wit")
    patch = pytest.MonkeyPatch()
    patch.setattr(build, "wit_dir", lambda: wit)
    try:
        return built_plugin("probe", base)
    finally:
        patch.undo()


def test_a_component_built_before_extension_points_loads_and_runs(
    client: Any, app: Any, old_probe: Path, extkit_package: Path, tmp_path: Path
) -> None:
    import shutil

    from app.plugins.packages import PackageError

    async def work(s: Any) -> None:
        await lifecycle.upload(s, ACTOR, read_folder(old_probe), app.state.settings, install_now=True)
        t = await directory.create_tenant(s, ACTOR, "acme", "Acme")
        await lifecycle.enable(s, ACTOR, t.id, "probe")

    in_db(app, work)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = client.get("/t/acme/p/probe/probe")
    assert page.status_code == 200 and 'data-kind="' not in page.text, page.text[:2000]
    # ...but a manifest declaring [[extensions]] with such a component is refused at upload, clearly.
    mixed = tmp_path / "extkit"
    shutil.copytree(extkit_package, mixed)
    shutil.copy(old_probe / "plugin.wasm", mixed / "plugin.wasm")

    async def upload(s: Any) -> str:
        try:
            await lifecycle.upload(s, ACTOR, read_folder(mixed), app.state.settings, install_now=True)
        except PackageError as exc:
            return str(exc)
        return "accepted"

    assert "does not export portal:plugin/extensions@0.1.0" in in_db(app, upload)


# --- auto-login through an auth verifier -----------------------------------------------------------------

SECRET = "shared-secret-0123"


def signed(email: str, expiry: int, secret: str = SECRET) -> str:
    import hashlib
    import hmac

    return (
        f"{email}.{expiry}."
        + hmac.new(secret.encode(), f"{email}.{expiry}".encode(), hashlib.sha256).hexdigest()
    )


def audit_rows(w: dict[str, Any], prefix: str) -> list[tuple[str, str, str]]:
    async def work(s: Any) -> list[tuple[str, str, str]]:
        rows = (
            await s.scalars(
                sa.select(AuditEntry)
                .where(AuditEntry.action.like(prefix + "%"))
                .order_by(AuditEntry.created_at)
            )
        ).all()
        return [(r.action, r.actor_email, r.summary) for r in rows]

    return in_db(w["app"], work)  # type: ignore[no-any-return]


def test_auto_login_signs_in_members_only_when_enabled_and_audits_everything(world: dict[str, Any]) -> None:
    w = world
    c = w["client"]
    sso = configure(w, "extkit:hmac-token", "Partner SSO", {"secret": SECRET})
    link = f"/t/acme/auto-login/{sso['id']}"
    future = int(time.time()) + 600
    c.cookies.clear()
    # Off until a tenant admin enables it: a disabled verifier's link does not exist.
    assert (
        c.get(link, params={"token": signed("bob@corp.test", future)}, follow_redirects=False).status_code
        == 404
    )
    c.patch(f"{CONFIGS}/{sso['id']}", json={"version": 1, "enabled": True}, headers=h(w))
    c.cookies.clear()
    ok = c.get(
        link,
        params={"token": signed("bob@corp.test", future), "next": "/t/acme/tasks"},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/t/acme/tasks", ok.text
    assert "portal_session" in ok.cookies
    assert c.get("/t/acme/tasks").status_code == 200  # a normal session
    # An unsafe `next` falls back to a local path.
    c.cookies.clear()
    evil = c.get(
        link,
        params={"token": signed("bob@corp.test", future), "next": "//evil.test/x"},
        follow_redirects=False,
    )
    assert evil.status_code == 303 and evil.headers["location"] == "/"
    refusals = [
        ({"token": signed("bob@corp.test", future, "wrong-secret")}, "bad signature"),
        ({"token": signed("bob@corp.test", int(time.time()) - 5)}, "token expired"),
        ({"token": "garbage"}, "malformed token"),
        ({"token": signed("gil@corp.test", future)}, "gil@corp.test is not a member of this tenant"),
        ({"token": signed("dan@corp.test", future)}, "is not an active user"),
    ]  # five: the sixth refusal from this address within the window would be throttled
    for params, _reason in refusals:
        c.cookies.clear()
        r = c.get(link, params=params, follow_redirects=False)
        assert r.status_code == 403 and "portal_session" not in r.cookies, r.text[:300]
        assert "bad signature" not in r.text  # the visitor learns nothing about why
    # The same link in another tenant's URL is not there.
    c.cookies.clear()
    assert (
        c.get(
            f"/t/globex/auto-login/{sso['id']}",
            params={"token": signed("bob@corp.test", future)},
            follow_redirects=False,
        ).status_code
        == 404
    )

    # A platform member who is also a member of the tenant is never signed in by a tenant's verifier.
    async def platform_member_joins(s: Any) -> None:
        from app.core.models import LoginAttempt

        await s.execute(sa.delete(LoginAttempt))
        root = await directory.find_user(s, ADMIN_EMAIL)
        await directory.add_member(
            s, ACTOR, w["ids"]["acme"], root, await roles.get_role(s, w["ids"]["acme"], "Member")
        )

    in_db(w["app"], platform_member_joins)
    c.cookies.clear()
    assert (
        c.get(link, params={"token": signed(ADMIN_EMAIL, future)}, follow_redirects=False).status_code == 403
    )
    refusals.append(({}, "is a platform member"))
    trail = audit_rows(w, "auth.auto_login")
    assert [a for a, _, _ in trail] == ["auth.auto_login", "auth.auto_login"] + [
        "auth.auto_login.refused"
    ] * 6
    assert trail[0][1] == "bob@corp.test"
    for (_, _, summary), (_, reason) in zip(trail[2:], refusals, strict=True):
        assert reason in summary, summary
    assert faults(w) == []  # a verifier's refusal is an answer, not a plugin fault


def test_auto_login_hands_no_portal_credentials_to_the_verifier(world: dict[str, Any]) -> None:
    from litestar.testing import RequestFactory

    from app.web.extensions_pages import verifier_request

    request = RequestFactory().get(
        "/t/acme/auto-login/x",
        query_params={"token": "t"},
        headers={
            "Cookie": "portal_session=secret",
            "Authorization": "Bearer p_x",
            "X-Partner-Signature": "abc",
        },
    )
    seen = verifier_request(request, "acme")
    assert seen["query"] == {"token": "t"} and seen["tenant"] == "acme" and seen["now"] > 0
    assert seen["headers"]["x-partner-signature"] == "abc"
    assert not {"cookie", "authorization"} & set(seen["headers"])


def test_refused_links_are_throttled_and_broken_verifiers_refuse(world: dict[str, Any]) -> None:
    w = world
    c = w["client"]
    broken = configure(w, "extkit:bad-identity", "Broken SSO")
    c.patch(f"{CONFIGS}/{broken['id']}", json={"version": 1, "enabled": True}, headers=h(w))
    c.cookies.clear()
    link = f"/t/acme/auto-login/{broken['id']}"
    r = c.get(link, follow_redirects=False)
    assert r.status_code == 403
    assert 'with "email" or "user_id"' in audit_rows(w, "auth.auto_login.refused")[0][2]
    limit = w["app"].state.settings.login_max_failures
    codes = [c.get(link, follow_redirects=False).status_code for _ in range(limit)]
    assert codes[-1] == 429 and set(codes[: limit - 1]) == {403}, codes


# --- admin pages ------------------------------------------------------------------------------------------

ADMIN_PAGE = "/t/acme/admin/extensions"


def test_admin_pages_configure_with_inline_errors_and_feed_the_process_editor(world: dict[str, Any]) -> None:
    w = world
    c = w["client"]
    login(c, "bob@corp.test", PASSWORD)
    assert c.get(ADMIN_PAGE).status_code == 403  # not an extension admin
    login(c, "ann@corp.test", PASSWORD)
    index = c.get(ADMIN_PAGE)
    assert (
        index.status_code == 200
        and "Record validator" in index.text
        and "code-pattern (extkit)" in index.text
    )
    editor = c.get(
        ADMIN_PAGE,
        params={"new": "extkit:amount-above"},
        headers={"HX-Request": "true", "HX-Target": "extension-editor"},
    )
    assert editor.status_code == 200 and 'name="v.threshold"' in editor.text and "<html" not in editor.text
    bad = post_form(
        c, ADMIN_PAGE, {"implementation": "extkit:amount-above", "name": "Big", "v.threshold": "many"}
    )
    assert bad.status_code == 422 and 'id="e-threshold"' in bad.text and "not a whole number" in bad.text
    done = post_form(
        c,
        ADMIN_PAGE,
        {"implementation": "extkit:amount-above", "name": "Big", "v.threshold": "100", "enabled": "on"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text[:500]
    sso = post_form(
        c,
        ADMIN_PAGE,
        {"implementation": "extkit:hmac-token", "name": "SSO", "v.secret": "top-secret", "enabled": "on"},
        follow_redirects=False,
    )
    assert sso.status_code == 303
    desk = configure(w, "extkit:listed-users", "Order desk", {"user_ids": str(w["ids"]["cy"])})
    listed = c.get(CONFIGS, headers=h(w)).json()["items"]
    by_name = {i["name"]: i for i in listed}
    assert (
        by_name["Big"]["enabled"] is True and by_name["SSO"]["enabled"] is False
    )  # verifiers start disabled
    assert "top-secret" not in c.get(f"{ADMIN_PAGE}?edit={by_name['SSO']['id']}").text
    off = post_form(
        c, f"{ADMIN_PAGE}/{by_name['Big']['id']}/enabled", {"version": "1"}, follow_redirects=False
    )
    assert off.status_code == 303
    assert c.get(f"{CONFIGS}/{by_name['Big']['id']}", headers=h(w)).json()["enabled"] is False
    # The process editor offers the configured condition and takes a configured selector by name.
    form_page = c.get("/t/acme/admin/workflow/edit", params={"entity": "extkit.ext_order"})
    assert "Configure conditions and approver rules" in form_page.text and ">Big</option>" in form_page.text
    saved = post_form(
        c,
        "/t/acme/admin/workflow/edit?entity=extkit.ext_order",
        [
            ("name", "Orders"),
            ("is_active", "on"),
            ("step_name", "Desk"),
            ("step_selector", "extension"),
            ("step_who", "Order desk"),
            ("step_field", ""),
            ("step_op", "eq"),
            ("step_value", ""),
            ("step_extra", ""),
            ("step_condition_config", by_name["Big"]["id"]),
        ],
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text[:2000]
    process = c.get("/api/v1/workflow/processes", headers=h(w)).json()["items"][0]
    assert process["steps"][0]["selector"] == {
        "kind": "extension",
        "config": {"config_id": desk["id"], "name": "Order desk"},
    }
    assert process["steps"][0]["condition"]["config"]["config_id"] == by_name["Big"]["id"]
    again = c.get("/t/acme/admin/workflow/edit", params={"entity": "extkit.ext_order"})
    assert (
        f'<option value="{by_name["Big"]["id"]}" selected>' in again.text
        and 'value="Order desk"' in again.text
    )


def test_openapi_documents_the_extension_api(client: Any) -> None:
    paths = client.get("/api/schema/openapi.json").json()["paths"]
    assert {
        "/api/v1/extensions/points",
        "/api/v1/extensions/configs",
        "/api/v1/extensions/configs/{config_id}",
    } <= set(paths)
    assert not any(
        "auto-login" in p or "admin/extensions" in p for p in paths
    )  # pages stay out of the API schema


def test_tenants_without_validators_pay_no_query_per_write(world: dict[str, Any]) -> None:
    """The enabled validators are cached per worker under the policy versions every request reads."""
    from app.core.models import Tenant
    from app.plugins import runtime
    from app.services import SERVICES_KEY

    w = world
    acme = w["ids"]["acme"]
    validators = w["app"].state.services.record_hooks.validate[
        -1
    ]  # the app's RecordValidators (after the approval guard)

    async def statements(s: Any) -> list[int]:
        counted: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            counted.append(statement)

        engine = s.bind.sync_engine if hasattr(s.bind, "sync_engine") else s.get_bind()
        sa.event.listen(engine, "before_cursor_execute", count)
        out = []
        try:
            for _ in range(2):
                for key in [
                    k for k in s.info if k != SERVICES_KEY
                ]:  # a new request's session: only the app's services
                    del s.info[key]
                tenant = await s.get(Tenant, acme, populate_existing=True)
                system = await s.get(Tenant, directory.SYSTEM_UUID)
                runtime.note_versions(s, acme, (tenant.policy_version, system.policy_version))
                before = len(counted)
                found = await validators.active(s, acme)
                out.append(len(counted) - before)
                assert found == ()
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        return out

    validators.cache.forget(acme)
    first, second = in_db(w["app"], statements)
    assert first >= 1 and second == 0  # the second request of the same versions asks the database nothing
    configure(w, "extkit:code-pattern", "Codes", {"pattern": "x"})  # bumps the policy version
    assert len(in_db(w["app"], lambda s: validators.active(s, acme))) == 1


def test_traps_in_extension_calls_count_toward_the_crash_policy(world: dict[str, Any]) -> None:
    from app.core.models import PluginTenant
    from app.sandbox.faults import MAX_TRAPS_PER_WINDOW

    w = world
    spin = configure(w, "extkit:spin", "Spin")
    define(
        w,
        [
            {
                "name": "Check",
                "selector": {"kind": "role", "config": {"role": "Clerk"}},
                "condition": {"kind": "extension", "config": {"config_id": spin["id"]}},
            }
        ],
    )
    for _ in range(MAX_TRAPS_PER_WINDOW + 1):
        assert submit(w, order(w, amount=1).json()["id"])["state"] == "stuck"
    assert len(wait_for_faults(w, MAX_TRAPS_PER_WINDOW + 1)) == MAX_TRAPS_PER_WINDOW + 1

    async def states(s: Any) -> dict[str, str]:
        rows = (
            await s.execute(
                sa.select(PluginTenant.tenant_id, PluginTenant.status).where(
                    PluginTenant.plugin_id == "extkit"
                )
            )
        ).all()
        return {str(t): st for t, st in rows}

    deadline = time.monotonic() + 10
    while in_db(w["app"], states)[str(w["ids"]["acme"])] != "error" and time.monotonic() < deadline:
        time.sleep(0.1)
    found = in_db(w["app"], states)
    assert found[str(w["ids"]["acme"])] == "error" and found[str(w["ids"]["globex"])] == "enabled"
