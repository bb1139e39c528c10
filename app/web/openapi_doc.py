"""OpenAPI documents a person can read and a machine can trust.

* ``/api/v1/openapi.json``: Litestar's generated document of the whole JSON API, with every operation's
  error answers (RFC 9457 problem details) added.
* ``/t/{tenant}/api/openapi.json`` (signed in) and ``/api/v1/records/openapi.json`` (bearer token and
  ``X-Tenant``): the generated record API of one tenant, one path per entity of its
  enabled plugins, with request and response schemas built from the plugins' manifests: field types,
  required fields, lengths, options, number ranges, references (uuid strings), the ``version`` that
  optimistic locking needs and the child sets ``?expand=`` nests. Request schemas carry the constraints
  the record service enforces (app.records.values), so a request the schema allows is one the server
  takes, unless the data's state refuses it (a taken unique value, a stale version: 409).
* ``/t/{tenant}/api/docs``: the documents rendered by the vendored Swagger UI (static/vendor, no CDN).
"""

from __future__ import annotations

import copy
from typing import Any

from litestar import Request, get
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app import PLATFORM_VERSION
from app.manifest.model import EntitySpec, FieldSpec, Manifest
from app.plugins import runtime
from app.records.values import INT64
from app.web.context import TenantContext
from app.web.forms import T
from app.web.render import page

Schema = dict[str, Any]
PROBLEM = "application/problem+json"
RECORDS = "/api/v1/plugins"
# The error answers every operation may give, and what each means.
ERRORS: dict[str, str] = {
    "400": "Bad request: the body or a parameter is malformed",
    "401": "A valid bearer token is required",
    "403": "Forbidden: no permission, no such tenant membership, or a read-only token",
    "404": "Not found",
    "409": "Conflict: a stale version (with the `current` row), or a unique value already taken",
    "412": "Precondition failed",
    "413": "The file is larger than the field's max_size",
    "415": "The file's content (or the request's media type) is not a type the field accepts",
    "422": "Validation failed: `errors` maps each field to its message",
}
PROBLEM_SCHEMA: Schema = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"description": "Field name (or location, `lines[2].quantity`) to message"},
        "current": {"type": "object", "description": "The record as it is now (409 on a stale version)"},
    },
}
NO_NUL = "^[^\\x00]*$"  # the record service refuses NUL characters in text
FILE_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "size": {"type": "integer"},
        "content_type": {"type": "string"},
        "url": {"type": "string", "description": "GET: the file, as an attachment"},
        "thumbnail_url": {"type": "string", "description": "Images: a thumbnail"},
    },
}


def _error_responses(codes: tuple[str, ...] = tuple(ERRORS)) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Problem"}
    return {c: {"description": ERRORS[c], "content": {PROBLEM: {"schema": ref}}} for c in codes}


# --- the base document (Litestar's) ----------------------------------------------------------------


def base_document(generated: dict[str, Any]) -> dict[str, Any]:
    """Litestar's document with every operation's problem answers (and no HTML pages)."""
    doc = copy.deepcopy(generated)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    # Litestar's own schema router (/api/schema/...) is not part of the API.
    doc["paths"] = {k: v for k, v in doc.get("paths", {}).items() if not k.startswith("/api/schema")}
    for item in doc["paths"].values():
        for method, op in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            target = schemas.get(str(body.get("$ref", "")).rsplit("/", 1)[-1])
            if target and target.get("type") == "object" and "additionalProperties" not in target:
                target["additionalProperties"] = False  # Litestar refuses unknown fields (400)
            responses = op.setdefault("responses", {})
            for code, answer in _error_responses().items():
                responses[code] = answer  # Litestar's own 400 says application/json: the server sends this
    return doc


# --- the tenant's record API -----------------------------------------------------------------------


def _value(field: FieldSpec, *, request: bool) -> Schema:
    """One field's value as JSON Schema; `request`: what the record service takes."""
    kind = field.type
    out: Schema
    if kind in {"string", "text"}:
        out = {"type": "string"}
        if request:
            # Stripped, then empty means no value: a required field needs a character that is not a space.
            out["pattern"] = "^[^\\x00]*[^\\s\\x00][^\\x00]*$" if field.required else NO_NUL
            if kind == "string" and field.max_length:
                out["maxLength"] = field.max_length
    elif kind == "integer":
        out = {"type": "integer"}
        if request:
            out |= {"minimum": -INT64, "maximum": INT64}
    elif kind == "decimal":
        scale = field.scale if field.scale is not None else 2
        whole = (field.precision or 18) - scale
        fraction = f"(\\.[0-9]{{1,{scale}}})?" if scale else ""
        out = {
            "type": "string",
            "format": "decimal",
            "description": f"Up to {whole} digits, {scale} decimals",
        }
        if request:
            out["pattern"] = f"^-?[0-9]{{1,{whole}}}{fraction}$"
    elif kind == "boolean":
        out = {"type": "boolean"}
    elif kind == "date":
        out = {"type": "string", "format": "date"}
    elif kind == "datetime":
        out = {"type": "string", "format": "date-time"}
    elif kind in {"uuid", "reference"}:
        out = {"type": "string", "format": "uuid"}
        if kind == "reference":
            out["description"] = f"The id of a {field.entity} record"
    elif kind == "select":
        out = {"type": "string", "enum": list(field.option_values)}
    elif field.is_file:
        out = {"type": "array", "readOnly": True, "items": FILE_SCHEMA}
        out["description"] = "Uploaded with POST …/{record_id}/files/" + field.name
    else:  # json
        out = {}
    if field.label:
        out.setdefault("title", str(field.label))
    if field.help:
        out.setdefault("description", str(field.help))
    return out


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]} if schema else schema


SYSTEM: dict[str, Schema] = {
    "id": {"type": "string", "format": "uuid"},
    "version": {"type": "integer", "description": "Send it back on update: optimistic locking"},
    "created_at": {"type": "string", "format": "date-time"},
    "updated_at": {"type": "string", "format": "date-time"},
    "created_by": {"type": ["string", "null"]},
    "updated_by": {"type": ["string", "null"]},
    "deleted_at": {"type": ["string", "null"]},
}


def _name(plugin_id: str, entity: str) -> str:
    return "".join(p.capitalize() for p in plugin_id.replace("-", "_").split("_")) + "_" + entity


def _entity_schemas(manifest: Manifest, spec: EntitySpec) -> dict[str, Schema]:
    """Read, create and update schemas of one entity (and its child sets)."""
    name = _name(manifest.id, spec.name)
    read: Schema = {
        "type": "object",
        "title": str(spec.label),
        "properties": {
            **SYSTEM,
            **{
                f.name: _value(f, request=False) if f.is_file else _nullable(_value(f, request=False))
                for f in spec.fields
            },
        },
        "required": ["id", "version"],
    }
    writable = [f for f in spec.fields if not f.computed]
    props = {
        f.name: _value(f, request=True) if f.required else _nullable(_value(f, request=True))
        for f in writable
    }
    required = [f.name for f in writable if f.required and not f.has_default]
    for cs in spec.children:
        child = manifest.entity(cs.entity)
        read["properties"][cs.name] = {
            "type": "array",
            "items": {"$ref": f"#/components/schemas/{_name(manifest.id, child.name)}"},
            "description": f"With ?expand={cs.name}",
        }
        new_rows = {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                f.name: _value(f, request=True) if f.required else _nullable(_value(f, request=True))
                for f in child.fields
                if not f.computed and f.name != cs.via
            },
            "required": [
                f.name for f in child.fields if f.required and not f.has_default and f.name != cs.via
            ],
        }
        props[cs.name] = {
            "type": "array",
            "maxItems": 20,
            "description": "The whole set, in order (rows with `id` and `version` update that child)",
            "items": new_rows,
        }
    create = {"type": "object", "additionalProperties": False, "properties": props, "required": required}
    update = {
        "type": "object",
        "additionalProperties": False,
        "properties": {**props, "version": {"type": "integer", "minimum": 1, "maximum": INT64}},
        "required": ["version"],
    }
    return {name: read, f"{name}_create": create, f"{name}_update": update}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _entity_paths(manifest: Manifest, spec: EntitySpec, tenant: Schema) -> dict[str, Any]:
    name = _name(manifest.id, spec.name)
    tag = f"{manifest.id}: {spec.label}"
    base = f"{RECORDS}/{manifest.id}/{spec.name}"
    record_id = {
        "name": "record_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    expand_names = [c.name for c in spec.children]
    expand = {
        "name": "expand",
        "in": "query",
        "description": "Child sets to nest, comma-separated",
        "schema": {"type": "string", "enum": expand_names}
        if expand_names
        else {"type": "string", "maxLength": 0},
    }
    sortable = [f.name for f in spec.fields if f.sortable] + ["created_at", "updated_at"]
    list_params = [
        tenant,
        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200, "pattern": NO_NUL}},
        {
            "name": "sort",
            "in": "query",
            "schema": {"type": "string", "enum": sortable + [f"-{s}" for s in sortable]},
        },
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10_000}},
        {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
        {
            "name": "deleted",
            "in": "query",
            "description": "Soft-deleted records",
            "schema": {"type": "boolean"},
        },
        expand,
    ]
    page = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
            "total": {"type": "integer"},
            "total_is_lower_bound": {"type": "boolean"},
            "page": {"type": "integer"},
            "size": {"type": "integer"},
        },
    }

    def op(summary: str, answers: dict[str, Any], params: list[Schema], body: str | None = None) -> Schema:
        out: Schema = {
            "tags": [tag],
            "summary": summary,
            "operationId": f"{summary.split()[0].lower()}_{name}",
            "parameters": params,
            "responses": {**answers, **_error_responses()},
        }
        if body:
            out["requestBody"] = {"required": True, "content": _json(body)}
        return out

    one = {"200": {"description": str(spec.label), "content": _json(name)}}
    return {
        base: {
            "get": op(
                "List " + str(spec.label),
                {"200": {"description": "A page", "content": {"application/json": {"schema": page}}}},
                list_params,
            ),
            "post": op(
                "Create " + str(spec.label),
                {"201": {"description": "Created", "content": _json(name)}},
                [tenant],
                f"{name}_create",
            ),
        },
        base + "/{record_id}": {
            "get": op("Read " + str(spec.label), one, [tenant, record_id, expand]),
            "put": op("Update " + str(spec.label), one, [tenant, record_id], f"{name}_update"),
            "patch": op("Patch " + str(spec.label), one, [tenant, record_id], f"{name}_update"),
            "delete": op(
                "Delete " + str(spec.label), {"204": {"description": "Soft-deleted"}}, [tenant, record_id]
            ),
        },
        base + "/{record_id}/restore": {"post": op("Restore " + str(spec.label), one, [tenant, record_id])},
        **_file_paths(spec, base, tag, name, [tenant, record_id], one),
    }


def _file_paths(
    spec: EntitySpec, base: str, tag: str, name: str, params: list[Schema], one: Schema
) -> dict[str, Any]:
    """Per file field: the multipart upload, and per attachment its download and removal."""
    out: dict[str, Any] = {}
    attachment = {
        "name": "attachment_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    for field in (f for f in spec.fields if f.is_file):
        accepts = ", ".join(field.accept) or "any recognised type"
        upload = {
            "tags": [tag],
            "summary": f"Upload to {field.label}",
            "operationId": f"upload_{name}_{field.name}",
            "description": f"Accepts {accepts}, recognised from the content; at most {field.max_size} bytes"
            + ("; several files." if field.multiple else "; one file (it replaces the current one)."),
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {"type": "string", "format": "binary"},
                                }
                            },
                        }
                    }
                },
            },
            "responses": {**one, **_error_responses()},
        }
        download = {
            "tags": [tag],
            "summary": f"Download a file of {field.label}",
            "operationId": f"download_{name}_{field.name}",
            "parameters": [*params, attachment],
            "responses": {
                "200": {
                    "description": "The file (Content-Disposition: attachment; X-Content-Type-Options: nosniff)",
                    "content": {
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                    },
                },
                **_error_responses(),
            },
        }
        remove = {
            "tags": [tag],
            "summary": f"Remove a file of {field.label}",
            "operationId": f"remove_{name}_{field.name}",
            "parameters": [*params, attachment],
            "responses": {**one, **_error_responses()},
        }
        out[f"{base}/{{record_id}}/files/{field.name}"] = {"post": upload}
        out[f"{base}/{{record_id}}/files/{field.name}/{{attachment_id}}"] = {
            "get": download,
            "delete": remove,
        }
    return out


def tenant_document(slug: str, manifests: list[Manifest]) -> dict[str, Any]:
    """The record API of a tenant whose enabled plugins have these manifests."""
    tenant: Schema = {
        "name": "X-Tenant",
        "in": "header",
        "required": True,
        "description": "The tenant",
        "schema": {"type": "string", "enum": [slug]},
    }
    paths: dict[str, Any] = {}
    schemas: dict[str, Schema] = {"Problem": PROBLEM_SCHEMA}
    for manifest in manifests:
        for spec in manifest.entities:
            schemas |= _entity_schemas(manifest, spec)
            paths |= _entity_paths(manifest, spec, tenant)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"Portal record API: {slug}",
            "version": PLATFORM_VERSION,
            "description": "The records of this tenant's enabled plugins. Authenticate with "
            "`Authorization: Bearer <token>` (your API tokens page) and send `X-Tenant`. "
            "Errors are RFC 9457 problem details.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


# --- routes ----------------------------------------------------------------------------------------


@get("/api/v1/openapi.json", opt={"public": True}, include_in_schema=False, media_type="application/json")
async def base_openapi(request: Request) -> dict[str, Any]:
    return base_document(request.app.openapi_schema.to_schema())


@get(
    [T("/api/openapi.json"), "/api/v1/records/openapi.json"],
    opt={"auth": True},
    include_in_schema=False,
    media_type="application/json",
)
async def tenant_openapi(ctx: TenantContext) -> dict[str, Any]:
    plugins = await runtime.enabled_for(ctx.db, ctx.tenant.id)
    return tenant_document(ctx.tenant.slug, [p.manifest for p in plugins])


@get(T("/api/docs"), opt={"auth": True}, include_in_schema=False)
async def api_docs(request: HTMXRequest, ctx: TenantContext) -> Template:
    return await page(request, ctx, "api_docs.html")


ROUTES = [base_openapi, tenant_openapi, api_docs]
