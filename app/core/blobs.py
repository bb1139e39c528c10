"""Bytes in the database by their sha256 (StoredBlob): what every host over one database can read —
plugin package files and backups. Written once (the same content is stored once), checked on read."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.models import StoredBlob


class BlobMissing(Exception):
    """The database holds no (intact) blob with this hash."""


async def put(session: AsyncSession, content: bytes) -> str:
    """Store `content` (once) and return its sha256. Another host storing the same bytes at the same
    moment is fine: the unique hash keeps one row."""
    sha = hashlib.sha256(content).hexdigest()
    if await session.scalar(select(StoredBlob.id).where(StoredBlob.sha256 == sha)) is not None:
        return sha
    try:
        async with session.begin_nested():
            session.add(StoredBlob(sha256=sha, size=len(content), content=content))
    except IntegrityError:
        pass  # stored by someone else meanwhile
    return sha


async def get(session: AsyncSession, sha256: str) -> bytes:
    content = await session.scalar(select(StoredBlob.content).where(StoredBlob.sha256 == sha256))
    if content is None:
        raise BlobMissing(f"no stored file with sha256 {sha256}")
    content = bytes(content)
    if hashlib.sha256(content).hexdigest() != sha256:
        raise BlobMissing(f"the stored file {sha256} is damaged (its content has another hash)")
    return content


async def exists(session: AsyncSession, sha256: str) -> bool:
    return await session.scalar(select(StoredBlob.id).where(StoredBlob.sha256 == sha256)) is not None
