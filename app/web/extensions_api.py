"""The JSON API of extension configurations (/api/v1/extensions/...): the points and implementations a
tenant has, and its named configurations (create, read, change, delete)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from litestar import delete, get, patch, post
from litestar.exceptions import PermissionDeniedException

from app import extensions
from app.core.errors import NotFound, ValidationFailed
from app.core.i18n import N_
from app.extensions import store
from app.manifest import EXTENSION_POINTS
from app.plugins import config_values
from app.plugins.config_values import secret_box
from app.web.api import TENANT_HEADER
from app.web.context import RequestContext

ADMIN = {"permission": extensions.ADMIN_PERMISSION}


def tenant_of(ctx: RequestContext) -> uuid.UUID:
    if ctx.tenant is None:
        raise PermissionDeniedException(detail=N_("Say which tenant with the X-Tenant header (slug or id)"))
    return ctx.tenant.id


def impl_json(impl: extensions.Implementation) -> dict[str, Any]:
    return {
        "key": impl.key,
        "point": impl.point,
        "plugin": impl.plugin_id or None,
        "name": impl.name,
        "label": impl.label,
        "description": impl.description,
        "entities": list(impl.entities) or None,
        "config_fields": [
            {
                "key": f.key,
                "type": f.type,
                "label": f.label,
                "help": f.help,
                "required": f.required,
                "secret": f.secret,
                "default": None
                if f.default is None
                else str(f.default)
                if not isinstance(f.default, bool | int)
                else f.default,
                "options": [o.value for o in f.options] or None,
            }
            for f in impl.fields
        ],
    }


async def _views(ctx: RequestContext, point: str | None = None) -> list[dict[str, Any]]:
    tenant_id = tenant_of(ctx)
    available = {i.key: i for i in await extensions.implementations(ctx.db, tenant_id)}
    rows = await store.list_configs(ctx.db, tenant_id, point)
    return [store.view(r, available.get(f"{r.plugin_id or 'base'}:{r.implementation}")) for r in rows]


def _request(data: dict[str, Any], *, creating: bool) -> store.SaveRequest:
    if not isinstance(data, dict):
        raise ValidationFailed({"": N_("send a JSON object")})
    values = data.get("values")
    if values is not None and not isinstance(values, dict):
        raise ValidationFailed({"values": N_("must be an object of key -> value")})
    enabled = data.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ValidationFailed({"enabled": N_("true or false")})
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValidationFailed({"version": N_("the version number you read")})
    return store.SaveRequest(
        values=values if values is not None else ({} if creating else None),  # type: ignore[arg-type]
        name=data.get("name"),
        implementation=data.get("implementation"),
        version=version,
        enabled=enabled,
    )


@get(
    "/api/v1/extensions/points",
    opt=ADMIN,
    tags=["extensions"],
    summary="Extension point types and the implementations available in the tenant",
)
async def api_points(ctx: RequestContext, x_tenant: str | None = TENANT_HEADER) -> dict[str, Any]:
    impls = await extensions.implementations(ctx.db, tenant_of(ctx))
    return {
        "items": [
            {
                "point": p,
                "label": extensions.POINT_LABELS[p],
                "description": extensions.POINT_HELP[p],
                "implementations": [impl_json(i) for i in impls if i.point == p],
            }
            for p in EXTENSION_POINTS
        ]
    }


@get(
    "/api/v1/extensions/configs",
    opt=ADMIN,
    tags=["extensions"],
    summary="The tenant's extension configurations",
)
async def api_configs(
    ctx: RequestContext,
    point: Literal["condition", "user-selector", "record-validator", "auth-verifier"] | None = None,
    x_tenant: str | None = TENANT_HEADER,
) -> dict[str, Any]:
    if point is not None and point not in EXTENSION_POINTS:
        raise ValidationFailed(
            {"point": N_("one of %(extension_points)s", extension_points=", ".join(EXTENSION_POINTS))}
        )
    return {"items": await _views(ctx, point)}


async def _one(ctx: RequestContext, config_id: str) -> dict[str, Any]:
    row = await store.get(ctx.db, tenant_of(ctx), config_id)
    try:
        extensions_impl, _plugin = await extensions.implementation(
            ctx.db, row.tenant_id, f"{row.plugin_id or 'base'}:{row.implementation}"
        )
    except NotFound:
        extensions_impl = None
    return store.view(row, extensions_impl)


@get(
    "/api/v1/extensions/configs/{config_id:str}", opt=ADMIN, tags=["extensions"], summary="One configuration"
)
async def api_config(
    ctx: RequestContext, config_id: str, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    return await _one(ctx, config_id)


class ConfigCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new configuration. Which implementations exist is the tenant's state (GET .../points): an
    unknown one, or a name already taken, answers 409."""

    implementation: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$",
            max_length=200,
            description="plugin:name, e.g. base:amount-above",
        ),
    ]
    name: Annotated[str, msgspec.Meta(pattern=config_values.NAME_PATTERN, max_length=config_values.NAME_MAX)]
    values: dict[str, Any] = msgspec.field(default_factory=dict)
    enabled: bool | None = None


@post(
    "/api/v1/extensions/configs",
    opt=ADMIN,
    tags=["extensions"],
    status_code=201,
    summary="Create a configuration: {implementation, name, values[, enabled]} (auto-login verifiers start disabled)",
)
async def api_create(
    ctx: RequestContext, data: ConfigCreate, x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    req = store.SaveRequest(
        values=data.values,
        name=data.name,
        implementation=data.implementation,
        version=None,
        enabled=data.enabled,
    )
    row = await store.create(ctx.db, ctx.actor, secret_box(ctx.settings.secret_key), tenant_of(ctx), req)
    return await _one(ctx, str(row.id))


@patch(
    "/api/v1/extensions/configs/{config_id:str}",
    opt=ADMIN,
    tags=["extensions"],
    summary="Change name, values or enabled ({version} required; a secret sent as *** or left out is kept)",
)
async def api_update(
    ctx: RequestContext, config_id: str, data: dict[str, Any], x_tenant: str | None = TENANT_HEADER
) -> dict[str, Any]:
    row = await store.update(
        ctx.db,
        ctx.actor,
        secret_box(ctx.settings.secret_key),
        tenant_of(ctx),
        config_id,
        _request(data, creating=False),
    )
    return await _one(ctx, str(row.id))


@delete(
    "/api/v1/extensions/configs/{config_id:str}",
    opt=ADMIN,
    tags=["extensions"],
    status_code=204,
    summary="Delete a configuration (?version= checks it is unchanged)",
)
async def api_delete(
    ctx: RequestContext, config_id: str, version: int | None = None, x_tenant: str | None = TENANT_HEADER
) -> None:
    await store.delete(ctx.db, ctx.actor, tenant_of(ctx), config_id, version)


API_ROUTES = [api_points, api_configs, api_config, api_create, api_update, api_delete]
