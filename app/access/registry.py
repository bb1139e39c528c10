"""Reading the permission registry (the role matrix, app.access.matrix, and the API)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.models import Permission


async def all_permissions(session: AsyncSession) -> list[Permission]:
    return list(
        (await session.scalars(select(Permission).order_by(Permission.module, Permission.code))).all()
    )
