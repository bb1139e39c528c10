"""Demo data for a first look: tenant `demo` with an admin, a member, the bundled plugins and rows."""

from __future__ import annotations

import logging
import random
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import roles
from app.audit import Actor
from app.db.models import PluginPackage
from app.identity import directory
from app.plugins import lifecycle, runtime
from app.plugins.packages import read_source_folder
from app.records.service import RecordService
from app.sandbox.build import BuildError, package_from
from app.settings import Settings

log = logging.getLogger("portal.demo")
DEMO_PASSWORD = "demo-pass-2026"
DEMO_USERS = (("alice@demo.test", "Alice Admin", "Admin"), ("bob@demo.test", "Bob Member", "Member"))
BUNDLED = Path(__file__).resolve().parents[1] / "plugins"


async def install_bundled(session: AsyncSession, settings: Settings, actor: Actor) -> list[str]:
    """Install every plugin folder under plugins/ that is not installed yet (dependencies first)."""
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
    alice = None
    for email, name, role_name in DEMO_USERS:
        user = await directory.find_user(session, email) or await directory.create_user(
            session, actor, email, DEMO_PASSWORD, name)
        await directory.add_member(session, actor, tenant.id, user, await roles.get_role(session, tenant.id, role_name))
        alice = alice or user
    for plugin_id in ("inventory", "crm"):
        await lifecycle.enable(session, actor, tenant.id, plugin_id)
    assert alice is not None
    records = RecordService(session, tenant.id, Actor(alice.id, alice.email), lambda _p: True)
    plugins = await runtime.enabled_for(session, tenant.id)

    def ref(name: str) -> runtime.EntityRef:
        found = runtime.find_entity(plugins, name)
        assert found is not None, name
        return found

    rng = random.Random(2026)
    categories = [await records.insert(ref("inventory_category"), {"name": n, "code": c})
                  for n, c in (("Hardware", "HW"), ("Office supplies", "OFF"), ("Electronics", "EL"))]
    suppliers = [await records.insert(ref("supplier"), {"name": n, "code": c, "email": e})
                 for n, c, e in (("Northwind Traders", "NW", "orders@northwind.test"),
                                 ("Contoso Supply", "CS", "sales@contoso.test"))]
    for i, (name, unit) in enumerate([("Hex bolt M8", "pcs"), ("Washer 8mm", "pcs"), ("A4 paper", "ream"),
                                      ("Stapler", "pcs"), ("USB-C cable", "pcs"), ("Label printer", "pcs"),
                                      ("Cable ties", "bag"), ("Wood screws", "box")]):
        await records.insert(ref("inventory_item"), {
            "sku": f"SKU-{1001 + i}", "name": name, "unit": unit, "quantity": rng.randint(0, 120),
            "category_id": str(categories[i % 3]["id"]), "unit_price": f"{rng.uniform(0.2, 90):.2f}"})
    await records.insert(ref("purchase_order"), {"order_no": "PO-0001", "supplier_id": str(suppliers[0]["id"]),
                                                 "total_amount": "1250.00"})
    for name, email, status in (("Acme Retail", "hello@acme-retail.test", "active"),
                                ("Globex", "info@globex.test", "lead")):
        customer = await records.insert(ref("customer"), {"name": name, "email": email, "status": status,
                                                          "code": name[:3].upper()})
        await records.insert(ref("contact"), {"customer_id": str(customer["id"]), "name": f"{name} buyer",
                                              "email": f"buyer@{email.split('@')[1]}"})
    return True
