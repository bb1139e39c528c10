"""The role–permission matrix as a grid (both backends): modules (the base's and the tenant's enabled
plugins) and entities as rows, the four operations as columns, labels and descriptions in the reader's
language; grants without a box (wildcards, codes of plugins not enabled here, unknown codes) in the text
box with a note, a warning when they match nothing; one CSRF-protected post saves exactly what the form
holds (deny by default), a refused save keeps the input, and the built-in Admin role keeps `*`."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from app.access import roles
from app.access.matrix import build_matrix
from app.audit import Actor
from app.core.models import Permission
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, login, post_form, text_of
from tests.integration.test_record_pages import in_db

ROOT = Path(__file__).resolve().parents[2]
PW = "matrix-password-1"
ACTOR = Actor(None, "test")
BUYER_GRANTS = [
    "db.purchase_order.*",  # covers a row of the grid
    "db.inventory_item.select",  # a box
    "db.customer.select",  # crm is installed but not enabled in acme
    "db.ghost.*",  # matches nothing
    "db.nothing.select",  # nobody registered it
]


def plugin_folder(name: str, target: Path) -> Path:
    """A bundled plugin as a manifest-only package (no page code: the grid needs the manifest only)."""
    folder = target / name
    if not folder.exists():
        shutil.copytree(
            ROOT / "plugins" / name, folder, ignore=shutil.ignore_patterns("plugin.wasm", "guest")
        )
    return folder


async def seed_acme(s: Any, settings: Any, target: Path) -> dict[str, Any]:
    """Inventory and crm installed; acme enables inventory only. Members of acme: alice (Admin), carol
    (Buyer), bob (Member) and two members called Sam; globex: Carla (Member)."""
    for name in ("inventory", "crm"):
        await lifecycle.upload(s, ACTOR, read_folder(plugin_folder(name, target)), settings, install_now=True)
    acme = await directory.create_tenant(s, ACTOR, "acme", "Acme")
    globex = await directory.create_tenant(s, ACTOR, "globex", "Globex")
    await lifecycle.enable(s, ACTOR, acme.id, "inventory")
    buyer = await roles.create_role(s, ACTOR, acme.id, "Buyer", "Buys things")
    await roles.set_role_grants(s, ACTOR, buyer, BUYER_GRANTS)
    ids: dict[str, Any] = {"acme": acme.id, "buyer": buyer.id}
    people = [
        ("alice", "Alice", acme, "Admin"),
        ("carol", "Carol", acme, "Buyer"),
        ("bob", "Bob", acme, "Member"),
        ("sam1", "Sam", acme, "Member"),
        ("sam2", "Sam", acme, "Member"),
        ("carla", "Carla", globex, "Member"),
    ]
    for key, name, tenant, role in people:
        user = await directory.create_user(s, ACTOR, f"{key}@{tenant.slug}.test", PW, name)
        await directory.add_member(s, ACTOR, tenant.id, user, await roles.get_role(s, tenant.id, role))
        ids[key] = user.id
    ids["admin_role"] = (await roles.get_role(s, acme.id, "Admin")).id
    return ids


@pytest.fixture
def acme(client: Any, app: Any, tmp_path: Path) -> dict[str, Any]:
    ids = in_db(app, lambda s: seed_acme(s, app.state.settings, tmp_path))
    login(client, "alice@acme.test", PW)
    return ids  # type: ignore[no-any-return]


def grants_of(app: Any, role_id: Any) -> list[str]:
    async def work(s: Any) -> list[str]:
        return await roles.role_grants(
            s, await roles.get_role(s, (await directory.get_tenant(s, "acme")).id, role_id)
        )

    return in_db(app, work)  # type: ignore[no-any-return]


class Form(HTMLParser):
    """What a browser without script would send from the grants form, and what the grid shows."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.boxes: dict[str, dict[str, Any]] = {}  # perm code -> checked, disabled, title, label text
        self.groups: list[str] = []
        self.patterns = ""
        self.csrf = ""
        self._in: str | None = None
        self._label: dict[str, Any] | None = None
        self._form = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and (a.get("action") or "").endswith("/grants"):
            self._form = True
        if not self._form:
            return
        if tag == "tbody" and a.get("data-group"):
            self.groups.append(str(a["data-group"]))
        elif tag == "label" and "cell-box" in (a.get("class") or ""):
            self._label = {"title": a.get("title"), "text": ""}
        elif tag == "input" and a.get("name") == "perm":
            box = {"checked": "checked" in a, "disabled": "disabled" in a}
            if self._label is not None:
                box["label"] = self._label
            self.boxes[str(a["value"])] = box
        elif tag == "input" and a.get("name") == "_csrf_token":
            self.csrf = str(a.get("value"))
        elif tag == "textarea" and a.get("name") == "patterns":
            self._in = "patterns"

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = False
        elif tag == "textarea":
            self._in = None
        elif tag == "label":
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._in == "patterns":
            self.patterns += data
        if self._label is not None:
            self._label["text"] += data

    def label_text(self, code: str) -> str:
        return " ".join(self.boxes[code]["label"]["text"].split())

    def post(self, tick: tuple[str, ...] = (), untick: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        ticked = {c for c, b in self.boxes.items() if b["checked"]} | set(tick)
        return [("perm", c) for c in sorted(ticked - set(untick))] + [("patterns", self.patterns)]


def speak(client: Any, language: str) -> None:
    """The header's language switch: saved as the signed-in user's preference."""
    assert post_form(client, "/language", {"language": language, "next": "/"}).status_code in (200, 303)


def role_url(ids: dict[str, Any], key: str = "buyer") -> str:
    return f"/t/acme/admin/roles/{ids[key]}"


def test_the_grid_groups_modules_and_entities_in_the_readers_language(
    client: Any, acme: dict[str, Any]
) -> None:
    page = client.get(role_url(acme))
    assert page.status_code == 200
    form = Form(page.text)
    # The base's modules, then the enabled plugin; crm is installed but not enabled here: no rows.
    assert form.groups == ["admin", "plugins", "workflow", "extensions", "inventory"]
    assert (
        "db.customer.select" not in form.boxes and "db.tenants.select" not in form.boxes
    )  # platform: system only
    # Deny by default: only what the role grants exactly is ticked.
    assert [c for c, b in form.boxes.items() if b["checked"]] == ["db.inventory_item.select"]
    # Each box says what it allows, on hover (title) and to screen readers (its label's text).
    assert form.boxes["db.purchase_order.insert"]["label"]["title"].startswith(
        "Create Purchase order records"
    )
    assert (
        "also covered by the wildcard grant db.purchase_order.*"
        in form.boxes["db.purchase_order.insert"]["label"]["title"]
    )
    assert form.label_text("db.roles.select").startswith("View roles of the tenant (db.roles.select)")
    assert form.label_text("ui.inventory.purchase-approve").startswith(
        "Approve or reject submitted purchase orders (ui.inventory.purchase-approve)"
    )
    text = text_of(page.text)
    assert "Plugin Inventory" in text and "Purchase order purchase_order" in text
    # Entities' operations are columns; base tables lacking an operation show none.
    assert {"db.role_permissions.select", "db.role_permissions.insert", "db.role_permissions.delete"} <= set(
        form.boxes
    )
    assert "db.role_permissions.update" not in form.boxes

    speak(client, "zh")
    zh = Form(client.get(role_url(acme)).text)
    assert zh.boxes["db.purchase_order.insert"]["label"]["title"].startswith("创建采购订单记录")
    assert zh.label_text("ui.inventory.purchase-approve").startswith("批准或驳回已提交的采购订单")
    assert zh.label_text("db.roles.select").startswith("查看")
    zh_text = text_of(client.get(role_url(acme)).text)
    assert (
        "插件 Inventory" in zh_text and "采购订单 purchase_order" in zh_text and "通配符及其他授权" in zh_text
    )


def test_grants_without_a_box_are_listed_with_notes_and_warnings(client: Any, acme: dict[str, Any]) -> None:
    page = client.get(role_url(acme))
    form = Form(page.text)
    assert form.patterns.split() == [
        "db.customer.select",
        "db.ghost.*",
        "db.nothing.select",
        "db.purchase_order.*",
    ]
    text = text_of(page.text)
    assert "db.ghost.* — Warning: matches no known permission" in text
    assert "db.nothing.select — Warning: not a known permission" in text
    assert "db.customer.select — belongs to the plugin crm, which is not enabled in this tenant." in text
    assert "db.purchase_order.* — covers 4 known permissions." in text
    assert "db.inventory_item.select —" not in text  # it has a box


def test_build_matrix_warns_only_when_nothing_matches() -> None:
    registry = [
        Permission(code="db.roles.select", description="View roles", module="base", scope="tenant"),
        Permission(code="plugin:admin", description="Plugins", module="base", scope="platform"),
    ]
    m = build_matrix(
        registry, ["db.roles.*", "db.rolez.*", "plugin:*", "*", "plugin:admin"], [], include_platform=False
    )
    kinds = {n.pattern: (n.kind, n.matches) for n in m.notes}
    assert kinds == {
        "db.roles.*": ("wildcard", 1),
        "db.rolez.*": ("unknown", 0),
        "plugin:*": ("unknown", 0),  # plugin:admin counts only in the system tenant
        "*": ("wildcard", 1),
        "plugin:admin": ("platform", 1),
    }
    assert [n.pattern for n in m.warnings] == ["db.rolez.*", "plugin:*"]
    system = build_matrix(registry, ["plugin:*"], [], include_platform=True)
    assert [n.kind for n in system.notes] == ["wildcard"] and "plugin:admin" in system.shown


def test_saving_the_form_grants_exactly_what_it_holds(client: Any, app: Any, acme: dict[str, Any]) -> None:
    form = Form(client.get(role_url(acme)).text)
    sent = form.post(
        tick=("db.supplier.select", "ui.inventory.purchase-approve"), untick=("db.inventory_item.select",)
    )
    saved = post_form(client, f"{role_url(acme)}/grants", sent, follow_redirects=True)
    assert saved.status_code == 200 and "Saved: 2 granted, 1 revoked" in text_of(saved.text)
    # The hidden grants came back through the text box: nothing was lost that had no box.
    assert grants_of(app, acme["buyer"]) == sorted(
        [
            "db.customer.select",
            "db.ghost.*",
            "db.nothing.select",
            "db.purchase_order.*",
            "db.supplier.select",
            "ui.inventory.purchase-approve",
        ]
    )
    after = Form(saved.text)
    assert (
        after.boxes["db.supplier.select"]["checked"]
        and not after.boxes["db.inventory_item.select"]["checked"]
    )
    # The flash follows the reader's language.
    speak(client, "zh")
    again = post_form(
        client,
        f"{role_url(acme)}/grants",
        Form(client.get(role_url(acme)).text).post(untick=("db.supplier.select",)),
        follow_redirects=True,
    )
    assert "已保存：授予 0 项，撤销 1 项" in text_of(again.text)


def test_the_post_needs_its_csrf_token(client: Any, app: Any, acme: dict[str, Any]) -> None:
    r = client.post(f"{role_url(acme)}/grants", data={"perm": "db.roles.delete"})
    assert r.status_code == 403
    assert "db.roles.delete" not in grants_of(app, acme["buyer"])


def test_a_refused_save_keeps_what_was_sent(client: Any, app: Any, acme: dict[str, Any]) -> None:
    before = grants_of(app, acme["buyer"])
    form = Form(client.get(role_url(acme)).text)
    sent = form.post(tick=("db.roles.select",))
    sent[-1] = ("patterns", form.patterns + "\ndb.*.select\n")
    refused = post_form(client, f"{role_url(acme)}/grants", sent)
    assert refused.status_code == 422
    text = text_of(refused.text)
    assert "Not a permission or wildcard: db.*.select. A wildcard may only end a grant" in text
    shown = Form(refused.text)
    assert shown.boxes["db.roles.select"]["checked"]  # the tick is kept...
    assert "db.*.select" in shown.patterns.split()  # ...and so is the typed line
    assert grants_of(app, acme["buyer"]) == before  # nothing saved


def test_the_admin_role_keeps_everything(client: Any, app: Any, acme: dict[str, Any]) -> None:
    page = client.get(role_url(acme, "admin_role"))
    form = Form(page.text)
    assert all(b["disabled"] for b in form.boxes.values()) and "Save permissions" not in page.text
    assert "it cannot be narrowed" in text_of(page.text)
    refused = post_form(client, f"{role_url(acme, 'admin_role')}/grants", [("perm", "db.roles.select")])
    assert refused.status_code == 422
    assert "The built-in role Admin always grants everything (*)" in text_of(refused.text)
    token = api_token(client, "alice@acme.test", PW)
    api = client.put(
        f"/api/v1/roles/{acme['admin_role']}/permissions",
        json={"permissions": ["db.roles.select"]},
        headers=bearer(token, "acme"),
    )
    assert api.status_code == 422
    assert grants_of(app, acme["admin_role"]) == ["*"]
    # Adding to it is harmless and allowed; the platform admin is held to the same rule.
    client.cookies.clear()
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert post_form(client, f"{role_url(acme, 'admin_role')}/grants", [("patterns", "")]).status_code == 422
    assert grants_of(app, acme["admin_role"]) == ["*"]


def test_the_system_tenant_shows_platform_permissions(client: Any, acme: dict[str, Any]) -> None:
    client.cookies.clear()
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = client.get("/t/system/admin/roles")
    member = next(
        line.split('href="/t/system/admin/roles/')[1].split('"')[0]
        for line in page.text.splitlines()
        if ">Member<" in line
    )
    form = Form(client.get(f"/t/system/admin/roles/{member}").text)
    assert "db.tenants.select" in form.boxes and "plugin:admin" in form.boxes
    assert "inventory" not in form.groups  # not enabled in the system tenant


def test_enabled_plugins_decide_the_rows(app: Any, acme: dict[str, Any]) -> None:
    """The same role seen where crm is enabled too: its entities become rows, its grant a box."""

    async def work(s: Any) -> Any:
        await lifecycle.enable(s, ACTOR, acme["acme"], "crm")
        plugins = await runtime.enabled_for(s, acme["acme"])
        from app.access.matrix import role_matrix

        return await role_matrix(s, BUYER_GRANTS, plugins, include_platform=False)

    m = in_db(app, work)
    assert [g.key for g in m.groups][-2:] == ["crm", "inventory"]  # by plugin name: CRM, Inventory
    crm = next(g for g in m.groups if g.key == "crm")
    assert [r.family for r in crm.entities] == [
        "customer",
        "contact",
        "tag",
        "customer_tag",
    ]  # manifest order
    assert crm.entities[0].cells["select"].granted and "db.customer.select" not in m.extra
