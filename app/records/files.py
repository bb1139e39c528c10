"""Files of file and image fields, on the record service's path.

Every operation first reaches the record through the record service (tenant, ``db.<entity>.*``
permission, data scope, live rows only), so a file is visible exactly when its record is: a soft-deleted
record hides its files, a restored one shows them again. Attaching or removing writes the field's
summary (``[{id, name, size, content_type, thumbnail}]``) into the record's column, bumps its version and
journals the change (audit row and ``updated`` event) like any other write.

Uploads are checked from their content: the first bytes name the type (:func:`sniff`, a signature table;
the file name and the type the client claims are ignored), then the field's ``accept`` and ``max_size``.
Images are re-encoded (app.records.images). Bytes are stored by sha256 (app.core.blobs: the database or
a bucket): the same content is stored once.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import sqlalchemy as sa

from app.core import attachments as stored
from app.core import blobs
from app.core.attachments import Attachment
from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_, message_of, phrase
from app.manifest import FieldSpec
from app.manifest.vocabulary import FILE_MULTIPLE_MAX, IMAGE_CONTENT_TYPES
from app.records.images import ImageRefused, reencode

if TYPE_CHECKING:
    from app.plugins.runtime import EntityRef
    from app.records.service import RecordService

#: (signature at offset 0, content type); WebP is RIFF....WEBP (checked apart).
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
)
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def sniff(content: bytes, filename: str = "") -> str | None:
    """The content type the bytes show, or None when unrecognised. Text is UTF-8 without control
    characters; it is ``text/csv`` when the name ends in .csv (both are served as downloads)."""
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    for magic, content_type in SIGNATURES:
        if content.startswith(magic):
            return content_type
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or _TEXT_CONTROLS.search(text):
        return None
    return "text/csv" if filename.lower().endswith(".csv") else "text/plain"


class FileRefused(ValidationFailed):
    """An upload the field refuses; ``status_code`` 413 (too large), 415 (type) or 422."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__({field: message})
        self.status_code = status


@dataclass(frozen=True)
class Upload:
    """A file as received: its name (only shown) and bytes. The claimed content type is not kept."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class Prepared:
    filename: str
    content_type: str
    content: bytes
    thumbnail: bytes | None


def clean_name(filename: str) -> str:
    """A file name safe to show and to put in Content-Disposition: no path, no control characters."""
    name = unicodedata.normalize("NFC", filename.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    return name[:200] or "file"


async def prepare(spec: FieldSpec, upload: Upload, store: blobs.BlobStore | None = None) -> Prepared:
    """Check one upload against its field and re-encode images; raise :class:`FileRefused`. With a
    `store`, the bytes are staged there now (an S3 upload), before the record's writes take locks."""
    prepared = await _checked(spec, upload)
    if store is not None:
        await store.stage(prepared.content)
        if prepared.thumbnail is not None:
            await store.stage(prepared.thumbnail)
    return prepared


async def _checked(spec: FieldSpec, upload: Upload) -> Prepared:
    max_size = spec.max_size or 0
    if not upload.content:
        raise FileRefused(spec.name, N_("The file is empty."))
    if len(upload.content) > max_size:
        raise FileRefused(
            spec.name,
            N_(
                "The file is %(size)s; at most %(max_size)s is allowed.",
                size=_size(len(upload.content)),
                max_size=_size(max_size),
            ),
            413,
        )
    name = clean_name(upload.filename)
    content_type = sniff(upload.content, name)
    if content_type is None or (spec.accept and content_type not in spec.accept):
        allowed = ", ".join(spec.accept) if spec.accept else phrase(N_("a recognised type"))
        shown = content_type or phrase(N_("an unrecognised type"))
        raise FileRefused(
            spec.name,
            N_(
                "The file's content is %(shown)s; this field accepts %(allowed)s.",
                shown=shown,
                allowed=allowed,
            ),
            415,
        )
    if content_type not in IMAGE_CONTENT_TYPES:
        return Prepared(name, content_type, upload.content, None)
    try:
        image = await anyio.to_thread.run_sync(reencode, upload.content, content_type)
    except ImageRefused as exc:
        raise FileRefused(spec.name, message_of(exc), 415) from exc
    return Prepared(name, content_type, image.content, image.thumbnail)


def _size(n: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def summary(rows: Iterable[Attachment]) -> list[dict[str, Any]]:
    """A field's value as the record's column holds it."""
    return [
        {
            "id": str(a.id),
            "name": a.filename,
            "size": a.size,
            "content_type": a.content_type,
            "thumbnail": a.thumbnail_sha256 is not None,
        }
        for a in rows
    ]


class RecordFiles:
    """Files of one service's tenant, user and scope."""

    def __init__(self, records: RecordService) -> None:
        self.records = records
        self.db = records.db

    def _key(self, entity: EntityRef) -> str:
        return f"{entity.plugin_id}.{entity.name}"

    def _field(self, entity: EntityRef, field: str) -> FieldSpec:
        if not entity.spec.has_field(field) or not entity.spec.field(field).is_file:
            raise NotFound(
                N_("%(label)s has no file field '%(field)s'", label=entity.spec.label, field=field)
            )
        return entity.spec.field(field)

    async def live(
        self, entity: EntityRef, record_id: uuid.UUID, field: str | None = None
    ) -> list[Attachment]:
        stmt = (
            sa.select(Attachment)
            .where(
                Attachment.tenant_id == self.records.tenant_id,
                Attachment.entity == self._key(entity),
                Attachment.record_id == record_id,
                Attachment.deleted_at.is_(None),
            )
            .order_by(Attachment.field, Attachment.position, Attachment.created_at)
        )
        if field is not None:
            stmt = stmt.where(Attachment.field == field)
        return list((await self.db.scalars(stmt)).all())

    async def change(
        self,
        entity: EntityRef,
        record_id: uuid.UUID | str,
        field: str,
        *,
        add: Sequence[Prepared] = (),
        remove: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Attach ``add`` and remove the attachments ``remove`` (ids) of one file field, in the caller's
        transaction; a single-file field's new file replaces the old. Returns the record after."""
        spec = self._field(entity, field)
        self.records.require(entity, "update")
        before = await self.records._load(entity, record_id)
        await self.records._check_in_scope(entity, before)
        current = await self.live(entity, before["id"], field)
        gone = {str(i) for i in remove}
        if add and not spec.multiple:
            gone |= {str(a.id) for a in current}
            add = add[-1:]
        keep = [a for a in current if str(a.id) not in gone]
        if len(keep) + len(add) > FILE_MULTIPLE_MAX:
            raise FileRefused(
                field,
                N_("A field holds at most %(file_multiple_max)s files.", file_multiple_max=FILE_MULTIPLE_MAX),
            )
        now = dt.datetime.now(dt.UTC)
        removed = [a for a in current if str(a.id) in gone]
        for a in removed:
            a.deleted_at = now
        position = max((a.position for a in keep), default=0)
        added: list[Attachment] = []
        store = blobs.store_of(self.db)
        for i, item in enumerate(add, start=1):
            sha = await store.put(self.db, item.content)
            thumb = await store.put(self.db, item.thumbnail) if item.thumbnail is not None else None
            added.append(
                Attachment(
                    tenant_id=self.records.tenant_id,
                    entity=self._key(entity),
                    record_id=before["id"],
                    field=field,
                    position=position + i,
                    filename=item.filename,
                    content_type=item.content_type,
                    size=len(item.content),
                    sha256=sha,
                    thumbnail_sha256=thumb,
                    uploaded_by=self.records.actor.user_id,
                    created_at=now,
                )
            )
        if not added and not removed:
            return before
        self.db.add_all(added)
        await self.db.flush()
        value = summary([*keep, *added])
        return await self._store(entity, before, field, value, added, removed)

    async def _store(
        self,
        entity: EntityRef,
        before: dict[str, Any],
        field: str,
        value: list[dict[str, Any]],
        added: Sequence[Attachment],
        removed: Sequence[Attachment],
    ) -> dict[str, Any]:
        t = entity.table
        changes = {
            field: value,
            "updated_at": dt.datetime.now(dt.UTC),
            "updated_by": self.records.actor.user_id,
            "version": before["version"] + 1,
        }
        await self.records._write(
            sa.update(t)
            .where(
                t.c.id == before["id"],
                t.c.tenant_id == self.records.tenant_id,
                t.c.version == before["version"],
            )
            .values(**changes),
            entity,
        )
        after = {**before, **changes}
        label = before.get(entity.spec.display_field, before["id"])
        words = [f"attached {a.filename}" for a in added] + [f"removed {a.filename}" for a in removed]
        await self.records._journal(
            entity,
            "attach" if added else "detach",
            "updated",
            after,
            {field: before.get(field)},
            {field: value},
            f"{entity.spec.label} {label}: {', '.join(words)}",
        )
        return after

    async def open(
        self,
        entity: EntityRef,
        record_id: uuid.UUID | str,
        attachment_id: uuid.UUID | str,
        *,
        thumbnail: bool = False,
    ) -> tuple[Attachment, bytes]:
        """An attachment and its bytes (or its thumbnail's), read through the record: NotFound unless
        the user may see the live record."""
        record = await self.records.get(entity, record_id)
        try:
            aid = attachment_id if isinstance(attachment_id, uuid.UUID) else uuid.UUID(str(attachment_id))
        except ValueError as exc:
            raise NotFound(N_("No such file")) from exc
        found = await self.db.scalar(
            sa.select(Attachment).where(
                Attachment.id == aid,
                Attachment.tenant_id == self.records.tenant_id,
                Attachment.entity == self._key(entity),
                Attachment.record_id == record["id"],
                Attachment.deleted_at.is_(None),
            )
        )
        if found is None or (thumbnail and found.thumbnail_sha256 is None):
            raise NotFound(N_("No such file"))
        sha = found.thumbnail_sha256 if thumbnail and found.thumbnail_sha256 else found.sha256
        return found, await blobs.store_of(self.db).get(self.db, sha)

    async def purge(self, entity: EntityRef, record_ids: Iterable[uuid.UUID]) -> int:
        """Remove the attachment rows of soft-deleted records for good (their blobs too when nothing
        else uses them). Live records' files are left alone."""
        self.records.require(entity, "delete")
        t = entity.table
        wanted = list(record_ids)
        ids = list(
            await self.db.scalars(
                sa.select(t.c.id).where(
                    t.c.id.in_(wanted), t.c.tenant_id == self.records.tenant_id, t.c.deleted_at.is_not(None)
                )
            )
        )
        if not ids:
            return 0
        return await stored.purge(
            self.db,
            sa.and_(
                Attachment.tenant_id == self.records.tenant_id,
                Attachment.entity == self._key(entity),
                Attachment.record_id.in_(ids),
            ),
        )


def file_value(value: Any) -> list[Mapping[str, Any]]:
    """A file field's stored value as a list (None and non-lists: no files)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
