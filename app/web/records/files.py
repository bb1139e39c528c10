"""File fields on generated pages: uploads from the record form, checked before anything is saved (a
refused file leaves every typed value on the form, the error at its field), downloads and thumbnails
read through the record service (tenant, permission, data scope, live records only), and the links the
record page, lists and CSV exports show."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from litestar import Response
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.plugins.htmx import HTMXRequest

from app.core.attachments import Attachment
from app.core.blobs import BlobStore
from app.core.errors import ValidationFailed
from app.manifest import FieldSpec
from app.manifest.vocabulary import IMAGE_CONTENT_TYPES
from app.plugins.runtime import EntityRef
from app.records.files import FileRefused, Prepared, RecordFiles, Upload, file_value, prepare
from app.records.service import RecordService
from app.web.context import RequestContext
from app.web.records.form_fields import FormGroup, form_fields
from app.web.records.target import Target

#: A record form's body at most (Litestar's default is 10 MB): a file field's own limit is at most 50 MB.
FORM_MAX_BYTES = 64 * 1024 * 1024
REMOVE = "__remove"  # `<field>__remove`: the ids of attachments ticked for removal


@dataclass
class Posted:
    """The files a record form carried: new ones (checked and prepared) and ids to remove, per field."""

    adds: dict[str, list[Prepared]] = field(default_factory=dict)
    removes: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    status: int = 422


class Refused(ValidationFailed):
    """The form's refused files, raised where the form's other refusals are handled."""

    def __init__(self, posted: Posted) -> None:
        super().__init__(posted.errors)
        self.status_code = posted.status


async def from_form(groups: list[FormGroup], form: FormMultiDict, store: BlobStore | None = None) -> Posted:
    """The form's files checked (and staged in `store`, before the record's writes)."""
    posted = Posted()
    for ff in form_fields(groups):
        if ff.input != "file" or ff.readonly:
            continue
        name = ff.spec.name
        uploads = [v for v in form.getall(name, []) if isinstance(v, UploadFile) and v.filename]
        if not ff.spec.multiple:
            uploads = uploads[-1:]
        for upload in uploads:
            try:
                posted.adds.setdefault(name, []).append(
                    await prepare(ff.spec, Upload(upload.filename, await upload.read()), store)
                )
            except FileRefused as exc:
                posted.errors[name] = exc.errors[name]
                posted.status = exc.status_code
        removes = [v for v in form.getall(name + REMOVE, []) if isinstance(v, str)]
        if removes:
            posted.removes[name] = removes
    return posted


async def apply(svc: RecordService, ref: EntityRef, record_id: Any, posted: Posted) -> None:
    """Attach and remove what the form carried, in the record's transaction."""
    files = RecordFiles(svc)
    for name in dict.fromkeys([*posted.adds, *posted.removes]):
        await files.change(
            ref, record_id, name, add=posted.adds.get(name, ()), remove=posted.removes.get(name, ())
        )


def file_links(base: str, record_id: Any, spec: FieldSpec, value: Any) -> list[dict[str, Any]]:
    """A file field's files as the templates show them: name, size, download URL, thumbnail URL."""
    out = []
    for item in file_value(value):
        url = f"{base}/{record_id}/files/{item.get('id')}"
        out.append(
            {
                "id": item.get("id"),
                "name": item.get("name"),
                "size": item.get("size"),
                "content_type": item.get("content_type"),
                "url": url,
                "thumbnail": f"{url}/thumbnail" if item.get("thumbnail") else None,
            }
        )
    return out


def file_response(meta: Attachment, content: bytes, *, inline: bool = False) -> Response[bytes]:
    """The bytes as a download; nothing the host did not re-encode is ever shown inline, and nosniff
    keeps browsers from guessing another type."""
    shown_inline = inline and meta.content_type in IMAGE_CONTENT_TYPES
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in meta.filename)
    disposition = f"{'inline' if shown_inline else 'attachment'}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(meta.filename)}"
    return Response(
        content,
        media_type=meta.content_type,
        headers={
            "content-disposition": disposition,
            "x-content-type-options": "nosniff",
            "cache-control": "private, max-age=300",
            "content-security-policy": "default-src 'none'; sandbox",
        },
    )


async def download(
    request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str, attachment_id: str
) -> Response[Any]:
    meta, content = await RecordFiles(ctx.records()).open(target.ref, record_id, attachment_id)
    return file_response(meta, content, inline=request.query_params.get("inline") == "1")


async def thumbnail(
    request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str, attachment_id: str
) -> Response[Any]:
    meta, content = await RecordFiles(ctx.records()).open(
        target.ref, record_id, attachment_id, thumbnail=True
    )
    return file_response(meta, content, inline=True)


def existing(target: Target, row: Mapping[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """The files a record's form lists (with a remove checkbox each)."""
    if row is None:
        return {}
    return {
        f.name: file_links(target.url, row["id"], f, row.get(f.name))
        for f in target.ref.spec.fields
        if f.is_file
    }
