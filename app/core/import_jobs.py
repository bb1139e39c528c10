"""Background CSV imports (app.records.import_jobs runs them): one row per import a user started, so its
progress survives page reloads and any host over the same database can show it. The uploaded file is
kept in `source` from the preview until the import ends (then dropped); the refused rows accumulate in
`refused_csv` batch by batch."""

from __future__ import annotations

import datetime as dt
import uuid

from advanced_alchemy.base import UUIDBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import Boolean, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import TenantScoped, utcnow

# preview: file kept, waiting for "Import"; running; done; failed (stopped: `problem` says why);
# cancelled (stopped on request between two batches).
STATUSES = ("preview", "running", "done", "failed", "cancelled")


class ImportJob(TenantScoped, UUIDBase):
    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_user", "tenant_id", "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(GUID)
    entity: Mapped[str] = mapped_column(String(130))  # the entity's name (runtime.find_entity)
    page_url: Mapped[str] = mapped_column(String(500))  # the crud page it imports into
    filename: Mapped[str] = mapped_column(String(255), default="")
    key: Mapped[str | None] = mapped_column(String(63), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="preview")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    refused_csv: Mapped[str] = mapped_column(Text, default="")
    problem: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    # Written with every committed batch: a running job whose beat is old lost its process.
    beat_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
