"""The JSON API's file endpoints: a multipart upload per record field, a download (and an image's
thumbnail) per attachment, and removal; all through the record service like the record endpoints.
Records read through the API show file fields as ``[{id, name, size, content_type, url}]``
(:func:`file_json`). Refusals are problem details: 413 too large, 415 a type the field does not accept
(recognised from the content), 422 anything else."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import PermissionDeniedException
from litestar.params import Parameter

from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.files import RecordFiles, Upload, file_value, prepare
from app.records.service import RecordService
from app.web.context import RequestContext
from app.web.errors import problem
from app.web.records.files import FORM_MAX_BYTES, file_response

TENANT_HEADER = Parameter(
    header="X-Tenant", required=False, description="Tenant slug or id; defaults to your only tenant"
)
RULE = {"auth": True}
BASE = "/api/v1/plugins"
UPLOAD = (
    "Send `multipart/form-data` with one or more parts named `file` (one for a single-file field: it "
    "replaces the current file). The type is recognised from the content, never from the name or the "
    "part's Content-Type: 415 when the field does not accept it, 413 over the field's `max_size`. "
    "Images are re-encoded and get a thumbnail. Answers the record, file fields as "
    "`[{id, name, size, content_type, url}]`."
)


def file_json(ref: EntityRef, record: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """``record`` (a row as JSON) with each file field as ``[{id, name, size, content_type, url}]``."""
    for spec in ref.spec.fields:
        if spec.is_file:
            base = f"{BASE}/{ref.plugin_id}/{ref.name}/{row['id']}/files/{spec.name}"
            record[spec.name] = [
                {
                    "id": f.get("id"),
                    "name": f.get("name"),
                    "size": f.get("size"),
                    "content_type": f.get("content_type"),
                    "url": f"{base}/{f.get('id')}",
                }
                | ({"thumbnail_url": f"{base}/{f.get('id')}/thumbnail"} if f.get("thumbnail") else {})
                for f in file_value(row.get(spec.name))
            ]
    return record


async def _entity(ctx: RequestContext, plugin_id: str, entity: str) -> tuple[RecordService, EntityRef]:
    if ctx.tenant is None:
        raise PermissionDeniedException(detail=N_("Say which tenant with the X-Tenant header (slug or id)"))
    return ctx.records(), await runtime.entity_in_tenant(ctx.db, ctx.tenant.id, plugin_id, entity)


def _file_field(ref: EntityRef, field: str) -> None:
    if not ref.spec.has_field(field) or not ref.spec.field(field).is_file:
        raise NotFound(N_("%(label)s has no file field '%(field)s'", label=ref.spec.label, field=field))


@post(
    f"{BASE}/{{plugin_id:str}}/{{entity:str}}/{{record_id:str}}/files/{{field:str}}",
    opt=RULE,
    summary="Upload files to a record's file field",
    description=UPLOAD,
    status_code=200,
    request_max_body_size=FORM_MAX_BYTES,
    tags=["records"],
)
async def upload_files(
    request: Request[Any, Any, Any],
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    record_id: str,
    field: str,
    x_tenant: str | None = TENANT_HEADER,
) -> Response[Any]:
    from app.web.records.api import record_json  # the record endpoints' JSON, shared

    service, ref = await _entity(ctx, plugin_id, entity)
    _file_field(ref, field)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return problem(
            415, "Unsupported media type", "Send the file as multipart/form-data (a part named file)"
        )
    service.require(ref, "update")
    await service.get(ref, record_id)  # 404 before reading the bytes when the record is out of reach
    form = await request.form()
    parts = [v for v in form.getall("file", []) if isinstance(v, UploadFile)]
    if not parts:
        raise ValidationFailed({"file": N_("Send the file in a multipart part named file.")})
    spec = ref.spec.field(field)
    store = ctx.services.blob_store  # staged there now, before the record's writes
    prepared = [await prepare(spec, Upload(p.filename or "file", await p.read()), store) for p in parts]
    row = await RecordFiles(service).change(ref, record_id, field, add=prepared)
    return Response(file_json(ref, record_json(row), row))


@get(
    f"{BASE}/{{plugin_id:str}}/{{entity:str}}/{{record_id:str}}/files/{{field:str}}/{{attachment_id:str}}",
    opt=RULE,
    summary="Download a file of a record (Content-Disposition: attachment, nosniff)",
    tags=["records"],
)
async def download_file(
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    record_id: str,
    field: str,
    attachment_id: str,
    x_tenant: str | None = TENANT_HEADER,
) -> Response[bytes]:
    return await _serve(ctx, plugin_id, entity, record_id, field, attachment_id, thumbnail=False)


@get(
    f"{BASE}/{{plugin_id:str}}/{{entity:str}}/{{record_id:str}}/files/{{field:str}}/{{attachment_id:str}}/thumbnail",
    opt=RULE,
    summary="An image's thumbnail (re-encoded by the host, so shown inline)",
    tags=["records"],
)
async def download_thumbnail(
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    record_id: str,
    field: str,
    attachment_id: str,
    x_tenant: str | None = TENANT_HEADER,
) -> Response[bytes]:
    return await _serve(ctx, plugin_id, entity, record_id, field, attachment_id, thumbnail=True)


async def _serve(
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    record_id: str,
    field: str,
    attachment_id: str,
    *,
    thumbnail: bool,
) -> Response[bytes]:
    """A file (or an image's re-encoded thumbnail, the only bytes shown inline) through the record
    service; a file of another field of the record is not found here."""
    service, ref = await _entity(ctx, plugin_id, entity)
    _file_field(ref, field)
    meta, content = await RecordFiles(service).open(ref, record_id, attachment_id, thumbnail=thumbnail)
    if meta.field != field:
        raise NotFound(N_("No such file"))
    return file_response(meta, content, inline=thumbnail)


@delete(
    f"{BASE}/{{plugin_id:str}}/{{entity:str}}/{{record_id:str}}/files/{{field:str}}/{{attachment_id:str}}",
    opt=RULE,
    status_code=200,
    summary="Remove a file from a record's file field (answers the record)",
    tags=["records"],
)
async def remove_file(
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    record_id: str,
    field: str,
    attachment_id: str,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    from app.web.records.api import record_json

    service, ref = await _entity(ctx, plugin_id, entity)
    _file_field(ref, field)
    files = RecordFiles(service)
    row = await service.get(ref, record_id)
    if attachment_id not in {str(a.id) for a in await files.live(ref, row["id"], field)}:
        raise NotFound(N_("No such file"))
    row = await files.change(ref, record_id, field, remove=[attachment_id])
    return file_json(ref, record_json(row), row)


ROUTES = [upload_files, download_file, download_thumbnail, remove_file]
