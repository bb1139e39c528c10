"""Demo data for a first look: tenant `demo` with an admin, a member, a buyer and her manager, the
bundled plugins, rows, and a purchase-order approval process (orders above 1000 need the buyer's
manager; its end actions set the order's status — read-only to the buyer — and the inventory plugin's
handle-event notes the decision)."""

from __future__ import annotations

import datetime
import io
import logging
import random
import tomllib
from decimal import Decimal
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import workflow
from app.access import roles
from app.audit import Actor
from app.core.models import PluginPackage
from app.core.settings import Settings
from app.identity import directory, hierarchy
from app.installs import lifecycle
from app.manifest import parse_version
from app.plugins import runtime
from app.plugins.packages import read_source_folder
from app.records import children
from app.records.files import RecordFiles, Upload, prepare
from app.records.service import RecordService, app_hooks
from app.sandbox.build import BuildError, package_from

log = logging.getLogger("portal.demo")
DEMO_PASSWORD = "demo-pass-2026"
DEMO_ORDERS = 40  # past purchase orders beside PO-0001: more than a page of them
DEMO_USERS = (
    ("alice@demo.test", "Alice Admin", "Admin"),
    ("bob@demo.test", "Bob Member", "Member"),
    ("carol@demo.test", "Carol Buyer", "Buyer"),
    ("dave@demo.test", "Dave Manager", "Manager"),
)
# Roles the demo adds (grant patterns); carol reports to dave, who approves her larger orders.
DEMO_ROLES = {
    "Buyer": (
        "Creates purchase orders and submits them for approval",
        [
            "db.purchase_order.*",
            "db.purchase_order_line.*",
            "db.supplier.select",
            "db.inventory_item.select",
            "db.inventory_category.select",
        ],
    ),
    "Manager": (
        "Approves the purchase orders of the people reporting to them",
        [
            "db.purchase_order.select",
            "db.purchase_order_line.select",
            "db.supplier.select",
            "db.inventory_item.select",
        ],
    ),
}
DEMO_REPORTS_TO = {"carol@demo.test": "dave@demo.test"}
APPROVAL_THRESHOLD = "1000.00"
DEMO_PROCESS = {
    "name": "Purchase order approval",
    # The end actions make `status` the approval's (read-only to the Buyer: app.workflow.guard); the
    # inventory plugin also sets it from its handle-event, and notes the decision.
    "on_approve": {"field": "status", "value": "approved"},
    "on_reject": {"field": "status", "value": "rejected"},
    "steps": [
        {
            "name": "Manager approval",
            "selector": {"kind": "manager"},
            "condition": {
                "kind": "fields",
                "config": {"all": [{"field": "total_amount", "op": "gt", "value": APPROVAL_THRESHOLD}]},
            },
        }
    ],
}
BUNDLED = Path(__file__).resolve().parents[1] / "plugins"


# Per category (in the order the categories are created): name, unit and a plausible price range.
DEMO_CATALOGUE: tuple[tuple[tuple[str, str, float, float], ...], ...] = (
    (  # Hardware
        ("Hex bolt M8", "pcs", 0.1, 0.6),
        ("Hex nut M8", "pcs", 0.05, 0.3),
        ("Washer 8mm", "pcs", 0.02, 0.2),
        ("Wood screws 4x40", "box", 3, 9),
        ("Wall plugs 6mm", "bag", 2, 6),
        ("Hinge 80mm", "pcs", 1.5, 6),
        ("Padlock 40mm", "pcs", 6, 18),
        ("Cable ties 200mm", "bag", 2, 7),
        ("Claw hammer", "pcs", 9, 25),
        ("Screwdriver set", "set", 12, 35),
        ("Tape measure 5m", "pcs", 5, 15),
        ("Work gloves", "pair", 3, 10),
    ),
    (  # Office supplies
        ("A4 paper", "ream", 3, 7),
        ("Stapler", "pcs", 6, 20),
        ("Staples 24/6", "box", 1, 3),
        ("Ballpoint pens", "box", 3, 9),
        ("Highlighters", "set", 3, 8),
        ("Sticky notes", "pack", 2, 6),
        ("Lever arch file", "pcs", 2, 5),
        ("Envelopes C5", "box", 6, 15),
        ("Whiteboard markers", "set", 4, 11),
        ("Desk organiser", "pcs", 8, 25),
        ("Printer toner", "pcs", 45, 90),
        ("Scissors", "pcs", 3, 9),
    ),
    (  # Electronics
        ("USB-C cable 1m", "pcs", 4, 12),
        ("HDMI cable 2m", "pcs", 5, 15),
        ("Label printer", "pcs", 60, 150),
        ("Wireless mouse", "pcs", 10, 30),
        ("Keyboard", "pcs", 15, 60),
        ("USB hub 4-port", "pcs", 10, 30),
        ("Power strip 6-way", "pcs", 12, 35),
        ("AA batteries", "pack", 4, 10),
        ("Headset", "pcs", 20, 80),
        ("Webcam", "pcs", 25, 90),
        ("Barcode scanner", "pcs", 40, 120),
        ("Monitor 24in", "pcs", 110, 220),
    ),
)


DEMO_COLOURS = ("#7a5c3e", "#2f6f9f", "#3c7a4a")  # per category


def demo_photo(name: str, colour: str) -> bytes:
    """A small product tile: the item's initials on its category's colour (PNG)."""
    image = Image.new("RGB", (160, 160), colour)
    draw = ImageDraw.Draw(image)
    initials = "".join(word[0] for word in name.split()[:2]).upper()
    font = ImageFont.load_default(size=64)
    draw.text((80, 80), initials, fill="white", font=font, anchor="mm")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def install_bundled(session: AsyncSession, settings: Settings, actor: Actor) -> list[str]:
    """Install every plugin folder under plugins/ that is not installed yet (dependencies first), and
    upgrade an installed bundled plugin whose folder has a newer version."""
    done = []
    folders = sorted(p for p in BUNDLED.iterdir() if (p / "plugin.toml").is_file())
    for folder in folders:
        try:
            package = package_from(folder)  # builds the guest (cached by source hash)
        except BuildError as exc:
            log.warning("Installing %s without its page code: %s", folder.name, exc)
            package = read_source_folder(folder, None)
        plugin_id = lifecycle._plugin_id_of(package.manifest_text)
        row = await session.scalar(select(PluginPackage).where(PluginPackage.plugin_id == plugin_id))
        if row is not None and row.status == "installed" and row.deleted_at is None:
            version = str(tomllib.loads(package.manifest_text).get("plugin", {}).get("version") or "0.0.0")
            if not row.bundled or parse_version(version) <= parse_version(row.version):
                continue
            # A newer bundled version (e.g. inventory 1.1.0 reacting to approvals) replaces the old one.
            await lifecycle.upgrade(session, actor, package, settings)
            done.append(str(plugin_id))
            continue
        await lifecycle.upload(session, actor, package, settings, bundled=True, install_now=True)
        done.append(str(plugin_id))
    return done


async def ensure_demo(session: AsyncSession, settings: Settings) -> bool:
    """Create tenant `demo` with Alice (Admin), Bob (Member), both bundled plugins and some rows.

    Returns False when the demo tenant already exists."""
    actor = Actor(None, "demo")
    await install_bundled(session, settings, actor)
    if await directory.find_tenant(session, "demo"):
        return False
    tenant = await directory.create_tenant(session, actor, "demo", "Demo Company")
    for plugin_id in ("inventory", "crm"):  # first: the roles below grant the plugins' permissions
        await lifecycle.enable(session, actor, tenant.id, plugin_id)
    for role_name, (description, grants) in DEMO_ROLES.items():
        role = await roles.create_role(session, actor, tenant.id, role_name, description)
        await roles.set_role_grants(session, actor, role, grants)
    alice = None
    for email, name, role_name in DEMO_USERS:
        user = await directory.find_user(session, email) or await directory.create_user(
            session, actor, email, DEMO_PASSWORD, name
        )
        await directory.add_member(
            session, actor, tenant.id, user, await roles.get_role(session, tenant.id, role_name)
        )
        alice = alice or user
    for email, manager in DEMO_REPORTS_TO.items():
        member = await directory.find_user(session, email)
        assert member is not None
        await hierarchy.set_manager(session, actor, tenant.id, member.id, manager)
    assert alice is not None
    records = RecordService(
        session, tenant.id, Actor(alice.id, alice.email), lambda _p: True, hooks=app_hooks(session)
    )
    plugins = await runtime.enabled_for(session, tenant.id)

    def ref(name: str) -> runtime.EntityRef:
        found = runtime.find_entity(plugins, name)
        assert found is not None, name
        return found

    rng = random.Random(2026)
    categories = [
        await records.insert(ref("inventory_category"), {"name": n, "code": c})
        for n, c in (("Hardware", "HW"), ("Office supplies", "OFF"), ("Electronics", "EL"))
    ]
    suppliers = [
        await records.insert(ref("supplier"), {"name": n, "code": c, "email": e})
        for n, c, e in (
            ("Northwind Traders", "NW", "orders@northwind.test"),
            ("Contoso Supply", "CS", "sales@contoso.test"),
        )
    ]
    # A catalogue a buyer would recognise: each item in its own category, more than one page of them.
    sku = 1000
    catalogue = []
    for category, items in zip(categories, DEMO_CATALOGUE, strict=True):
        for name, unit, low, high in items:
            sku += 1
            item = await records.insert(
                ref("inventory_item"),
                {
                    "sku": f"SKU-{sku}",
                    "name": name,
                    "unit": unit,
                    "quantity": rng.randint(0, 120),
                    "category_id": str(category["id"]),
                    "unit_price": f"{rng.uniform(low, high):.2f}",
                },
            )
            catalogue.append(item)
    # A photo for every item, so the items list shows its thumbnails.
    files, spec = RecordFiles(records), ref("inventory_item").spec.field("photo")
    for index, item in enumerate(catalogue):
        colour = DEMO_COLOURS[index // len(DEMO_CATALOGUE[0])]
        upload = Upload(f"{item['sku']}.png", demo_photo(str(item["name"]), colour))
        await files.change(ref("inventory_item"), item["id"], "photo", add=[await prepare(spec, upload)])
    await workflow.save_process(session, tenant.id, actor, ref("purchase_order"), DEMO_PROCESS)
    # The order and its lines in one save (as its form does): amounts come from the line formula, the
    # order's lines total from the rollup, the line numbers from the lines' order.
    await children.save(
        records,
        ref("purchase_order"),
        None,
        {"order_no": "PO-0001", "supplier_id": str(suppliers[0]["id"]), "total_amount": "1250.00"},
        None,
        {
            "lines": [
                {"item_id": str(item["id"]), "quantity": quantity, "unit_price": str(item["unit_price"])}
                for item, quantity in zip(rng.sample(catalogue, 3), (10, 4, 25), strict=True)
            ]
        },
    )
    # A purchasing history, so that the orders list pages and sorts like a real one: older orders
    # received, recent ones approved or still drafts; each total is what its lines add up to.
    today = datetime.date.today()
    for number in range(2, DEMO_ORDERS + 2):
        age = (DEMO_ORDERS + 2 - number) * 3  # days: PO-0002 is the oldest
        picked = [(item, rng.randint(1, 20)) for item in rng.sample(catalogue, rng.randint(1, 3))]
        lines = [
            {"item_id": str(item["id"]), "quantity": quantity, "unit_price": str(item["unit_price"])}
            for item, quantity in picked
        ]
        total = sum((Decimal(str(item["unit_price"])) * quantity for item, quantity in picked), Decimal(0))
        status = "received" if age > 30 else rng.choice(("approved", "draft", "submitted"))
        await children.save(
            records,
            ref("purchase_order"),
            None,
            {
                "order_no": f"PO-{number:04d}",
                "supplier_id": str(rng.choice(suppliers)["id"]),
                "status": status,
                "total_amount": f"{total:.2f}",
                "order_date": (today - datetime.timedelta(days=age)).isoformat(),
            },
            None,
            {"lines": lines},
        )
    # Customers with their contacts and tags, each saved in one go as the customer form does.
    tags = {
        name: await records.insert(ref("tag"), {"name": name, "color": color})
        for name, color in (("VIP", "purple"), ("Wholesale", "blue"))
    }
    for name, email, status, tagged in (
        ("Acme Retail", "hello@acme-retail.test", "active", ("VIP", "Wholesale")),
        ("Globex", "info@globex.test", "lead", ()),
    ):
        await children.save(
            records,
            ref("customer"),
            None,
            {"name": name, "email": email, "status": status, "code": name[:3].upper()},
            None,
            {
                "contacts": [{"name": f"{name} buyer", "email": f"buyer@{email.split('@')[1]}"}],
                "tags": [{"tag_id": str(tags[t]["id"])} for t in tagged],
            },
        )
    return True


def demo_logins() -> str:
    """One line for the console: who to sign in as in the demo tenant."""
    users = ", ".join(
        f"{email} ({role}{', reports to ' + DEMO_REPORTS_TO[email] if email in DEMO_REPORTS_TO else ''})"
        for email, _, role in DEMO_USERS
    )
    return f"Demo tenant /t/demo: {users}; password {DEMO_PASSWORD}"
