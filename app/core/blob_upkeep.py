"""Moving stored files into a bucket and clearing a bucket of objects nothing names (`portal storage`).

Both work in short transactions: rows are read (or updated) in one, objects are written (or listed and
deleted) between them, so no transaction stays open while bytes travel to the object store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.blob_s3 import S3BlobStore
from app.core.blobs import DATABASE, hashed
from app.core.models import StoredBlob


@dataclass
class Moved:
    copied: int = 0
    bytes: int = 0
    damaged: list[str] = field(default_factory=list)  # rows whose content has another hash: left as they are


async def copy_into(
    session: AsyncSession,
    store: S3BlobStore,
    batch: int = 20,
    progress: Callable[[Moved], None] | None = None,
) -> Moved:
    """Copy every blob kept in the database into `store`'s bucket, then empty its row's content (the
    row says "s3"). Per batch: read in one transaction, upload with none open, update in another; a row
    changed meanwhile (another host moved it) is left alone. Safe to stop and run again."""
    moved = Moved()
    skip: set[str] = set()
    while True:
        rows = (
            await session.execute(
                select(StoredBlob.sha256, StoredBlob.content)
                .where(StoredBlob.location == DATABASE, StoredBlob.sha256.not_in(skip or {""}))
                .order_by(StoredBlob.sha256)
                .limit(batch)
            )
        ).all()
        await session.commit()  # nothing open while the bytes go to the bucket
        if not rows:
            return moved
        done = []
        for sha, content in rows:
            data = bytes(content or b"")
            if await hashed(data) != sha:
                moved.damaged.append(sha)
                skip.add(sha)
                continue
            await store.stage(data)
            done.append((sha, len(data)))
        for sha, size in done:
            await session.execute(
                update(StoredBlob)
                .where(StoredBlob.sha256 == sha, StoredBlob.location == DATABASE)
                .values(location=store.location, content=None)
            )
            moved.copied += 1
            moved.bytes += size
        await session.commit()
        if progress is not None:
            progress(moved)


async def sweep(session: AsyncSession, store: S3BlobStore, older_than: dt.timedelta) -> list[str]:
    """Delete the objects under the store's prefix that no row names and that are older than
    `older_than` (a younger one may belong to an upload whose row is not committed yet). Returns their
    sha256s. Objects whose removal after a purge failed end here."""
    cutoff = dt.datetime.now(dt.UTC) - older_than
    gone: list[str] = []
    for page in await store.listing():
        old = {sha for sha, modified in page if modified < cutoff}
        if not old:
            continue
        named = set(await session.scalars(select(StoredBlob.sha256).where(StoredBlob.sha256.in_(old))))
        await session.commit()
        unnamed = sorted(old - named)
        await store.remove(unnamed)
        gone.extend(unnamed)
    return gone
