"""Files attached to plugin records (file and image fields): one row per file of a record's field,
its bytes (and an image's thumbnail) stored by sha256 (app.core.blobs), so equal files are
stored once and every host over the database serves them. app.records.files writes and reads them on
the record service's path; this module holds the table and what plugin removal needs (purge)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from advanced_alchemy.base import UUIDBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import BigInteger, Index, Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import PluginBackup, PluginPackage, TenantScoped, utcnow


class Attachment(TenantScoped, UUIDBase):
    """One file of one record's file field (``entity`` is ``plugin.entity``)."""

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_record", "tenant_id", "entity", "record_id"),
        Index("ix_attachments_sha256", "sha256"),
    )

    entity: Mapped[str] = mapped_column(String(130))
    record_id: Mapped[uuid.UUID] = mapped_column(GUID)
    field: Mapped[str] = mapped_column(String(63))
    position: Mapped[int] = mapped_column(Integer, default=0)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(GUID, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    # Removed from its field (the row is kept until the record or its plugin is purged).
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)


async def purge(session: AsyncSession, where: sa.ColumnElement[bool]) -> int:
    """Delete the attachment rows matching ``where``, then the blobs no longer referenced by any
    attachment, plugin package or backup. Returns the number of rows deleted."""
    shas = {
        sha
        for row in (
            await session.execute(select(Attachment.sha256, Attachment.thumbnail_sha256).where(where))
        )
        for sha in row
        if sha
    }
    result = await session.execute(delete(Attachment).where(where))
    await collect_unreferenced(session, shas)
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_plugin(session: AsyncSession, plugin_id: str) -> int:
    """Every tenant's attachments of a plugin's entities (its tables are being dropped)."""
    return await purge(session, Attachment.entity.startswith(f"{plugin_id}.", autoescape=True))


async def collect_unreferenced(session: AsyncSession, shas: Iterable[str]) -> None:
    """Delete the blobs among ``shas`` that nothing references any more (an S3 object once the
    transaction commits)."""
    from app.core.blobs import store_of  # blobs -> errors -> i18n -> db -> this module: not at import

    unused = []
    for sha in set(shas):
        used = await session.scalar(
            select(Attachment.id)
            .where((Attachment.sha256 == sha) | (Attachment.thumbnail_sha256 == sha))
            .limit(1)
        )
        used = used or await session.scalar(
            select(PluginBackup.id).where(PluginBackup.blob_sha256 == sha).limit(1)
        )
        if used is None and not await _in_a_package(session, sha):
            unused.append(sha)
    await store_of(session).forget(session, unused)


async def _in_a_package(session: AsyncSession, sha: str) -> bool:
    # Package files are a JSON map name -> sha256 per plugin: few rows, read whole.
    for files, wasm in await session.execute(select(PluginPackage.package_files, PluginPackage.wasm_sha256)):
        if wasm == sha or sha in (files or {}).values():
            return True
    return False
