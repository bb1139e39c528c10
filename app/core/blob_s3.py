"""Stored files in an S3-compatible bucket (PORTAL_STORAGE_URL=s3://...), through boto3.

The object of a blob is ``<prefix><sha256>``; its stored_blobs row (location "s3", no content) is what
references and purges see (app.core.blobs). Objects are written before their row: an object is the same
whoever writes it, so writing it twice, or leaving one behind when the transaction rolls back, is
harmless — a row never names an object that was not written. Objects of deleted rows go after the
commit, so a rollback keeps both.

boto3 is synchronous: every call runs in the store's own small thread pool, never on the event loop.
Errors become StorageUnavailable (503, naming the bucket) or BlobMissing (no such object).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.blobs import BlobMissing, BlobStore, StorageUnavailable, hashed
from app.core.i18n import N_
from app.core.settings import StorageSettings

log = logging.getLogger("portal.storage")
T = TypeVar("T")
_REMOVE_KEY = "portal_blob_objects_to_remove"
# Objects this process wrote lately: a put right after its stage (the same request) uploads nothing again.
# Short, because another host may purge the object meanwhile; then the next upload must write it again.
_STAGED_KEPT = 1024
_STAGED_SECONDS = 120.0
_MISSING = {"NoSuchKey", "404", "NotFound"}
_SHA256 = re.compile(r"[0-9a-f]{64}")


class S3BlobStore(BlobStore):
    location = "s3"

    def __init__(self, storage: StorageSettings, threads: int = 4) -> None:
        self.storage = storage
        self.name = storage.name
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None  # made at first use, again after close()
        self._lock = threading.Lock()
        self._client: Any = None
        self._staged: OrderedDict[str, float] = OrderedDict()  # sha256 -> time.monotonic() written
        self._removals: set[Future[None]] = set()

    def client(self) -> Any:
        """The boto3 client, made at first use (making one reads boto's service models: ~0.1 s)."""
        with self._lock:
            if self._client is None:
                s = self.storage
                session = boto3.session.Session(
                    aws_access_key_id=s.access_key or None,
                    aws_secret_access_key=s.secret_key or None,
                    aws_session_token=s.session_token or None,
                    region_name=s.region or None,
                )
                self._client = session.client(
                    "s3",
                    endpoint_url=s.endpoint or None,
                    config=Config(
                        connect_timeout=5,
                        read_timeout=60,
                        retries={"max_attempts": 3, "mode": "standard"},
                        s3={"addressing_style": s.addressing or "auto"},
                    ),
                )
            return self._client

    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="portal-s3")
            return self._executor

    def key(self, sha256: str) -> str:
        return f"{self.storage.prefix}{sha256}"

    async def _call(self, work: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool(), work)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in _MISSING:
                raise
            raise StorageUnavailable(
                self.name, f"{error.get('Code')}: {error.get('Message', '')}".strip()
            ) from exc
        except NoCredentialsError as exc:
            raise StorageUnavailable(
                self.name, N_("no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
            ) from exc
        except EndpointConnectionError as exc:
            raise StorageUnavailable(
                self.name, N_("cannot connect to %(endpoint)s", endpoint=self.storage.endpoint or "AWS S3")
            ) from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(self.name, str(exc)) from exc

    def _note_staged(self, sha256: str) -> None:
        with self._lock:
            self._staged[sha256] = time.monotonic()
            self._staged.move_to_end(sha256)
            while len(self._staged) > _STAGED_KEPT:
                self._staged.popitem(last=False)

    def _written_lately(self, sha256: str) -> bool:
        with self._lock:
            at = self._staged.get(sha256)
        return at is not None and time.monotonic() - at < _STAGED_SECONDS

    async def stage(self, content: bytes) -> str:
        sha = await hashed(content)
        if not self._written_lately(sha):
            await self._upload(sha, content)
        return sha

    async def _upload(self, sha256: str, content: bytes) -> None:
        client = await self._call(self.client)
        await self._call(
            functools.partial(
                client.put_object,
                Bucket=self.storage.bucket,
                Key=self.key(sha256),
                Body=content,
                ContentType="application/octet-stream",
                Metadata={"sha256": sha256},
            )
        )
        self._note_staged(sha256)

    async def _write(self, sha256: str, content: bytes) -> bytes | None:
        # Staged moments ago (the same request): a HEAD instead of the bytes again, as another host may
        # have purged the object since (its row was gone, which is why this put writes one).
        if not (self._written_lately(sha256) and await self._held(sha256)):
            await self._upload(sha256, content)
        return None

    async def _held(self, sha256: str) -> bool:
        client = await self._call(self.client)
        try:
            await self._call(
                functools.partial(client.head_object, Bucket=self.storage.bucket, Key=self.key(sha256))
            )
        except ClientError:  # 404 (the others are StorageUnavailable)
            return False
        return True

    async def _read(self, sha256: str) -> bytes:
        client = await self._call(self.client)

        def read() -> bytes:
            response = client.get_object(Bucket=self.storage.bucket, Key=self.key(sha256))
            return bytes(response["Body"].read())

        try:
            return await self._call(read)
        except ClientError as exc:
            raise BlobMissing(
                N_("The stored file %(sha256)s is missing from %(store)s", sha256=sha256, store=self.name)
            ) from exc

    def _remove_after_commit(self, session: AsyncSession, shas: list[str]) -> None:
        sync = session.sync_session
        wanted: set[str] | None = sync.info.get(_REMOVE_KEY)
        if wanted is None:
            wanted = sync.info[_REMOVE_KEY] = set()

            def committed(_session: Any) -> None:
                gone = sorted(sync.info.pop(_REMOVE_KEY, ()))
                if gone:  # in the store's threads: done even when the caller's event loop ends first
                    future = self.pool().submit(self._remove, gone)
                    self._removals.add(future)
                    future.add_done_callback(self._removals.discard)

            def rolled_back(_session: Any) -> None:
                sync.info.pop(_REMOVE_KEY, None)
                if event.contains(sync, "after_commit", committed):
                    event.remove(sync, "after_commit", committed)

            event.listen(sync, "after_commit", committed, once=True)
            event.listen(sync, "after_rollback", rolled_back, once=True)
        wanted.update(shas)

    def _remove(self, shas: list[str]) -> None:
        with self._lock:
            for sha in shas:
                self._staged.pop(sha, None)
        try:
            client = self.client()
            for start in range(0, len(shas), 1000):  # DeleteObjects takes at most 1000 keys
                client.delete_objects(
                    Bucket=self.storage.bucket,
                    Delete={
                        "Objects": [{"Key": self.key(s)} for s in shas[start : start + 1000]],
                        "Quiet": True,
                    },
                )
        except (BotoCoreError, ClientError) as exc:
            # The rows are gone; the objects stay until the next `portal storage sweep`.
            log.error("could not remove %d object(s) from %s: %s", len(shas), self.name, exc)

    async def listing(self) -> list[list[tuple[str, dt.datetime]]]:
        """The objects under the prefix, (sha256, last modified), a page (≤ 1000) per list; keys that are
        not a sha256 (someone else's objects under the prefix) are left out."""
        client = await self._call(self.client)

        def pages() -> list[list[tuple[str, dt.datetime]]]:
            found = []
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.storage.bucket, Prefix=self.storage.prefix):
                found.append(
                    [
                        (o["Key"][len(self.storage.prefix) :], o["LastModified"])
                        for o in page.get("Contents", [])
                        if _SHA256.fullmatch(o["Key"][len(self.storage.prefix) :])
                    ]
                )
            return found

        return await self._call(pages)

    async def remove(self, shas: list[str]) -> None:
        if shas:
            await asyncio.wrap_future(self.pool().submit(self._remove, shas))

    async def check(self) -> None:
        client = await self._call(self.client)
        try:
            await self._call(functools.partial(client.head_bucket, Bucket=self.storage.bucket))
        except ClientError as exc:  # 404 from HeadBucket: the bucket does not exist
            raise StorageUnavailable(
                self.name, N_("there is no bucket %(bucket)s", bucket=self.storage.bucket)
            ) from exc

    async def drain(self) -> None:
        for future in list(self._removals):
            await asyncio.wrap_future(future)

    def close(self) -> None:
        """Wait for the removals under way and stop the threads (the next use starts new ones)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
