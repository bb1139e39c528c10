"""JSON API for plugin records: the same RecordService as the generated pages."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, delete, get, patch, post, put
from litestar.exceptions import PermissionDeniedException
from litestar.params import Parameter

from app.core.i18n import N_
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records import children
from app.records.query import text_matches
from app.records.service import ListQuery, RecordService, StaleVersion
from app.records.values import to_json
from app.web.context import RequestContext
from app.web.errors import problem
from app.web.records import files_api
from app.web.records.files_api import file_json

TENANT_HEADER = Parameter(
    header="X-Tenant", required=False, description="Tenant slug or id; defaults to your only tenant"
)
RESERVED_PARAMS = {"q", "sort", "page", "size", "deleted", "expand"}
RULE = {"auth": True}  # the db.<entity>.<op> permission is checked by the record service
NESTED = (
    "An entity with child sets (`children` in its manifest, e.g. a purchase order's `lines`) takes them "
    'nested: `{..., "lines": [{"id": ..., "version": 2, "quantity": 5}, {"item_id": ...}]}`. '
    "The list is the whole set, in order: a row with `id` (and the `version` you read) updates that child, "
    "a row without one is added, a child left out is deleted; parent and children are written in one "
    "transaction or not at all. Errors are located (`lines[2].quantity`); a stale child answers 409 with "
    "its `current` row. The answer carries the written sets."
)


def record_json(row: dict[str, Any], ref: EntityRef | None = None) -> dict[str, Any]:
    """A row as JSON; child sets attached by `expand` (lists of rows) as lists of the same; with the
    entity, file fields as [{id, name, size, content_type, url}] (app.web.records.files_api)."""
    out = {
        k: [record_json(c) for c in v] if isinstance(v, list) else to_json(v)
        for k, v in row.items()
        if k != "tenant_id"
    }
    return file_json(ref, out, row) if ref is not None else out


def _expand(request: Request) -> list[str]:
    """`?expand=lines,notes` (or repeated): the child sets to nest into each record."""
    names = [n.strip() for value in request.query_params.getall("expand", []) for n in value.split(",")]
    return [n for n in names if n][:20]


async def _write(
    service: RecordService, ref: EntityRef, record_id: str | None, body: dict[str, Any], version: int | None
) -> dict[str, Any]:
    values, sets = children.split(ref, body)
    if sets:
        return await children.save(service, ref, record_id, values, version, sets)
    if record_id is None:
        return await service.insert(ref, values)
    return await service.update(ref, record_id, values, version)


def _stale_child(exc: children.ChildStale) -> Response[Any]:
    return problem(
        409, exc.title, exc.detail, errors={exc.path: exc.detail}, current=record_json(exc.current)
    )


async def _entity(ctx: RequestContext, plugin_id: str, entity: str) -> tuple[RecordService, EntityRef]:
    if ctx.tenant is None:
        raise PermissionDeniedException(detail=N_("Say which tenant with the X-Tenant header (slug or id)"))
    ref = await runtime.entity_in_tenant(ctx.db, ctx.tenant.id, plugin_id, entity)
    return ctx.records(), ref


async def _page_filters(ctx: RequestContext, ref: EntityRef) -> tuple[dict[str, Any], ...] | None:
    """The declared filters of the entity's crud page (their `match`), so the API filters like the page."""
    assert ctx.tenant is not None
    for plugin in await runtime.enabled_for(ctx.db, ctx.tenant.id):
        if plugin.id == ref.plugin_id:
            for page in plugin.manifest.pages:
                if page.type == "crud" and page.entity == ref.name:
                    return page.filters
    return None


def _int(value: str | None, default: int, name: str) -> int:
    from app.core.errors import ValidationFailed

    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValidationFailed({name: N_("Enter a whole number.")}) from exc


@get(
    "/{plugin_id:str}/{entity:str}",
    opt=RULE,
    summary="List records (filters: any field name, field__from, field__to; text fields match contains)",
)
async def list_records(
    request: Request, ctx: RequestContext, plugin_id: str, entity: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    service, ref = await _entity(ctx, plugin_id, entity)
    params = request.query_params
    query = ListQuery(
        q=(params.get("q") or "")[:200],
        filters={k: v for k, v in params.items() if k not in RESERVED_PARAMS},
        sort=params.get("sort") or "-created_at",
        page=_int(params.get("page"), 1, "page"),
        size=_int(params.get("size"), 25, "size"),
        deleted=(params.get("deleted") or "").lower() in {"1", "true", "yes"},
        contains=text_matches(ref, await _page_filters(ctx, ref)),
    )
    result = await service.list(ref, query)
    if expand := _expand(request):
        await children.expand(service, ref, result.rows, expand)
    return {
        "items": [record_json(r, ref) for r in result.rows],
        "total": result.total,
        "total_is_lower_bound": result.capped,
        "page": query.page,
        "size": query.size,
    }


@post("/{plugin_id:str}/{entity:str}", opt=RULE, summary="Create a record", description=NESTED)
async def create_record(
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    data: dict[str, Any],
    x_tenant: str | None = TENANT_HEADER,
) -> Response[Any]:
    service, ref = await _entity(ctx, plugin_id, entity)
    try:
        row = await _write(service, ref, None, data, None)
    except children.ChildStale as exc:  # a row naming an id is not new: it cannot be stale, but say so
        return _stale_child(exc)
    return Response(record_json(row, ref), status_code=201)


@get(
    "/{plugin_id:str}/{entity:str}/{record_id:str}",
    opt=RULE,
    summary="Read one record",
    description="`?expand=lines` nests the record's child set `lines` (comma-separated for several).",
)
async def get_record(
    request: Request,
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    record_id: str,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    service, ref = await _entity(ctx, plugin_id, entity)
    row = await service.get(ref, record_id)
    if expand := _expand(request):
        await children.expand(service, ref, [row], expand)
    return record_json(row, ref)


async def _update(
    ctx: RequestContext, plugin_id: str, entity: str, record_id: str, data: dict[str, Any]
) -> Response[Any]:
    service, ref = await _entity(ctx, plugin_id, entity)
    values = dict(data)
    version = values.pop("version", None)
    if isinstance(version, float) and version.is_integer():  # JSON's 3.0 is the integer 3
        version = int(version)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        from app.core.errors import ValidationFailed

        raise ValidationFailed({"version": N_("Send the integer version you read.")})
    try:
        row = await _write(service, ref, record_id, values, version)
    except StaleVersion as exc:
        return problem(409, exc.title, exc.detail, current=record_json(exc.current))
    except children.ChildStale as exc:
        return _stale_child(exc)
    return Response(record_json(row, ref))


@put(
    "/{plugin_id:str}/{entity:str}/{record_id:str}",
    opt=RULE,
    summary="Update a record; body carries the `version` it was read at (409 when stale)",
    description="Fields left out keep their values. " + NESTED,
)
async def update_record(
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    record_id: str,
    data: dict[str, Any],
    x_tenant: str | None = TENANT_HEADER,
) -> Response[Any]:
    return await _update(ctx, plugin_id, entity, record_id, data)


@patch(
    "/{plugin_id:str}/{entity:str}/{record_id:str}",
    opt=RULE,
    summary="Update some fields of a record (as PUT: fields left out keep their values)",
    description="Carries the `version` it was read at (409 when stale). " + NESTED,
)
async def patch_record(
    ctx: RequestContext,
    plugin_id: str,
    entity: str,
    record_id: str,
    data: dict[str, Any],
    x_tenant: str | None = TENANT_HEADER,
) -> Response[Any]:
    return await _update(ctx, plugin_id, entity, record_id, data)


@delete(
    "/{plugin_id:str}/{entity:str}/{record_id:str}", opt=RULE, status_code=204, summary="Soft-delete a record"
)
async def delete_record(
    ctx: RequestContext, plugin_id: str, entity: str, record_id: str, x_tenant: str | None = TENANT_HEADER
) -> None:
    service, ref = await _entity(ctx, plugin_id, entity)
    await service.delete(ref, record_id)


@post(
    "/{plugin_id:str}/{entity:str}/{record_id:str}/restore", opt=RULE, summary="Restore a soft-deleted record"
)
async def restore_record(
    ctx: RequestContext, plugin_id: str, entity: str, record_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    service, ref = await _entity(ctx, plugin_id, entity)
    return record_json(await service.restore(ref, record_id), ref)


router = Router(
    path="/api/v1/plugins",
    route_handlers=[
        list_records,
        create_record,
        get_record,
        update_record,
        patch_record,
        delete_record,
        restore_record,
    ],
    tags=["records"],
)
ROUTES: list[Any] = [router, *files_api.ROUTES]
