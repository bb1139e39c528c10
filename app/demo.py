"""Demo data for a first look: a tenant with an admin and a member."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.access import roles
from app.audit import Actor
from app.identity import directory
from app.settings import Settings

DEMO_PASSWORD = "demo-pass-2026"
DEMO_USERS = (("alice@demo.test", "Alice Admin", "Admin"), ("bob@demo.test", "Bob Member", "Member"))


async def ensure_demo(session: AsyncSession, settings: Settings) -> bool:
    """Create tenant `demo` with Alice (Admin) and Bob (Member); False when it already exists."""
    if await directory.find_tenant(session, "demo"):
        return False
    actor = Actor(None, "demo")
    tenant = await directory.create_tenant(session, actor, "demo", "Demo Company")
    for email, name, role_name in DEMO_USERS:
        user = await directory.find_user(session, email) or await directory.create_user(
            session, actor, email, DEMO_PASSWORD, name)
        await directory.add_member(session, actor, tenant.id, user, await roles.get_role(session, tenant.id, role_name))
    return True
