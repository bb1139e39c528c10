"""Reading the permission registry for the role matrix and the API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.permissions import pattern_matches
from app.core.models import Permission


@dataclass(frozen=True)
class MatrixCell:
    code: str
    description: str
    granted: bool  # granted by exactly this code
    via: str | None  # a wildcard grant that covers it


async def all_permissions(session: AsyncSession) -> list[Permission]:
    return list(
        (await session.scalars(select(Permission).order_by(Permission.module, Permission.code))).all()
    )


async def grouped_registry(
    session: AsyncSession, grants: list[str], *, include_platform: bool
) -> list[tuple[str, list[tuple[str, list[MatrixCell]]]]]:
    """Registry grouped by module, then by table/element family, with the role's grant state."""
    modules: dict[str, dict[str, list[MatrixCell]]] = {}
    wildcards = [g for g in grants if g.endswith("*")]
    for perm in await all_permissions(session):
        if perm.scope == "platform" and not include_platform:
            continue
        family = perm.code.split(".")[1] if perm.code.count(".") >= 2 else perm.code.split(":")[0]
        via = next((w for w in wildcards if pattern_matches(w, perm.code)), None)
        cell = MatrixCell(perm.code, perm.description, perm.code in grants, via)
        modules.setdefault(perm.module, {}).setdefault(family, []).append(cell)
    return [
        (m, sorted(f.items())) for m, f in sorted(modules.items(), key=lambda kv: (kv[0] != "base", kv[0]))
    ]
