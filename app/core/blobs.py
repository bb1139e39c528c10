"""Stored files by their sha256: what every host reads — record files and thumbnails, plugin package
files, backups. Content-addressed (the same bytes are stored once) and checked on every read.

Where the bytes live is pluggable (PORTAL_STORAGE_URL, app.core.settings.StorageSettings): in the
database (`DatabaseBlobStore`, the default) or in an S3-compatible bucket (app.core.blob_s3). Either way
`stored_blobs` keeps one row per blob (sha256, size, location) in the caller's transaction, so what
references a blob and what purges it (app.core.attachments) work the same; an S3 blob's row has no
content, its object is ``<prefix><sha256>``. A row says where its bytes are, so blobs written before a
switch to S3 stay readable (and `portal storage copy` moves them).

The store is chosen from the settings at the composition root (app.server; app.core.db for the CLI) and
bound to every session of that SQLAlchemy config (`store_of(session)`), like the app's services.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import PortalError
from app.core.i18n import N_
from app.core.models import StoredBlob
from app.core.settings import Settings

log = logging.getLogger("portal.storage")
# Key under which every session carries its config's blob store in its `info`.
BLOB_STORE_KEY = "portal_blob_store"
DATABASE = "database"


class BlobMissing(PortalError):
    """The store holds no (intact) blob with this hash: a 503 (the file is unreadable now), not a 500."""

    status_code = 503
    title = N_("Stored file unavailable")


class StorageUnavailable(PortalError):
    """The store could not be reached or refused the request: a 503 naming the store (never a 500)."""

    status_code = 503
    title = N_("Storage unavailable")

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(
            N_("The file store %(store)s is unavailable: %(reason)s", store=store, reason=reason)
        )
        self.store = store


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def hashed(content: bytes) -> str:
    """sha256_of off the event loop for large content (hashlib releases the GIL: ~2 ms per MB)."""
    if len(content) < 1_000_000:
        return sha256_of(content)
    return await asyncio.to_thread(sha256_of, content)


async def checked(sha256: str, content: bytes) -> bytes:
    if await hashed(content) != sha256:
        raise BlobMissing(
            N_("The stored file %(sha256)s is damaged (its content has another hash)", sha256=sha256)
        )
    return content


class BlobStore:
    """Rows in stored_blobs, and the bytes where the subclass keeps them (`_write`, `_read`)."""

    name: str  # how errors, logs and /health name it
    location: str  # what its rows' `location` says

    async def stage(self, content: bytes) -> str:
        """Make `content` readable by its hash ahead of the transaction that will reference it, so slow
        work (an upload to S3) runs before the caller's writes take locks. Returns the sha256."""
        return await hashed(content)

    async def _write(self, sha256: str, content: bytes) -> bytes | None:
        """Put the bytes where this store keeps them; returns what the row's `content` holds."""
        raise NotImplementedError

    async def _read(self, sha256: str) -> bytes:
        """The bytes of a row whose location is not the database."""
        raise NotImplementedError

    def _remove_after_commit(self, session: AsyncSession, shas: list[str]) -> None:
        """Remove the objects of deleted rows once `session` commits."""
        raise NotImplementedError

    async def check(self) -> None:
        """Raise StorageUnavailable unless the store answers (the database's own check is /health's)."""

    async def drain(self) -> None:
        """Wait for removals started after commits (tests, shutdown)."""

    def close(self) -> None:
        """Release what the store holds (clients, threads)."""

    async def put(self, session: AsyncSession, content: bytes) -> str:
        """Store `content` (once) and return its sha256. Another host storing the same bytes at the same
        moment is fine: the unique hash keeps one row, and an object written twice is the same object."""
        sha = await hashed(content)
        if await session.scalar(select(StoredBlob.id).where(StoredBlob.sha256 == sha)) is not None:
            return sha
        kept = await self._write(sha, content)
        try:
            async with session.begin_nested():
                session.add(StoredBlob(sha256=sha, size=len(content), content=kept, location=self.location))
        except IntegrityError:
            pass  # stored by someone else meanwhile
        return sha

    async def get(self, session: AsyncSession, sha256: str) -> bytes:
        row = (
            await session.execute(
                select(StoredBlob.location, StoredBlob.content).where(StoredBlob.sha256 == sha256)
            )
        ).first()
        if row is None:
            raise BlobMissing(N_("No stored file has the sha256 %(sha256)s", sha256=sha256))
        location, content = row
        if location == DATABASE:
            if content is None:
                raise BlobMissing(N_("The stored file %(sha256)s has no content", sha256=sha256))
            return await checked(sha256, bytes(content))
        return await checked(sha256, await self._read(sha256))

    async def forget(self, session: AsyncSession, shas: Iterable[str]) -> None:
        """Delete the rows of `shas` (nothing references them any more); objects in a bucket go once the
        transaction commits — a rollback keeps them, as it keeps the rows."""
        wanted = sorted(set(shas))
        if not wanted:
            return
        elsewhere = list(
            await session.scalars(
                select(StoredBlob.sha256).where(
                    StoredBlob.sha256.in_(wanted), StoredBlob.location != DATABASE
                )
            )
        )
        await session.execute(delete(StoredBlob).where(StoredBlob.sha256.in_(wanted)))
        if elsewhere:
            self._remove_after_commit(session, elsewhere)


class DatabaseBlobStore(BlobStore):
    """The bytes in the row itself (stored_blobs.content): nothing else to run or reach."""

    name = "the database"
    location = DATABASE

    async def _write(self, sha256: str, content: bytes) -> bytes | None:
        return content

    async def _read(self, sha256: str) -> bytes:
        raise BlobMissing(
            N_(
                "The stored file %(sha256)s is in an object store, but PORTAL_STORAGE_URL names none",
                sha256=sha256,
            )
        )

    def _remove_after_commit(self, session: AsyncSession, shas: list[str]) -> None:
        log.warning("%d object(s) left in an object store no longer configured: %s", len(shas), shas[:5])


def store_for(settings: Settings) -> BlobStore:
    """The store PORTAL_STORAGE_URL names (`settings.storage`, app.core.settings.StorageSettings)."""
    if settings.storage.kind == "s3":
        from app.core.blob_s3 import S3BlobStore  # boto3 is imported only when S3 is configured

        return S3BlobStore(settings.storage)
    return DatabaseBlobStore()


def store_of(session: AsyncSession) -> BlobStore:
    """The blob store bound to the config that opened `session` (app.core.db)."""
    store: BlobStore | None = session.info.get(BLOB_STORE_KEY)
    if store is None:
        raise RuntimeError(
            "this session carries no blob store (open it from app.core.db.make_alchemy_config)"
        )
    return store
