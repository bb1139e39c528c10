"""Record forms: the layout from the page's `form` (groups, read-only fields, help), reference pickers,
create and edit with inline errors (422) or a clash (409), and the optimistic-lock conflict page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from litestar import Response
from litestar.datastructures import FormMultiDict
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.core.errors import Conflict, ValidationFailed
from app.manifest import FieldSpec, PageSpec
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.service import RecordService, StaleVersion
from app.records.values import TRUE, FieldError, default_for, parse, to_input, to_json
from app.web.context import RequestContext
from app.web.records.display import as_uuid, reference_labels, step, title, value_text
from app.web.records.target import Target, atomic, common, need_action
from app.web.render import page, redirect
from app.workflow import guard as workflow_guard

PICKER_PRELOAD = 50
MAX_VALUE_LENGTH = 100_000
INPUTS = {
    "string": "text",
    "uuid": "text",
    "text": "textarea",
    "json": "json",
    "integer": "number",
    "decimal": "number",
    "boolean": "checkbox",
    "date": "date",
    "datetime": "datetime-local",
    "select": "select",
    "reference": "reference",
}


@dataclass
class FormField:
    spec: FieldSpec
    label: str
    help: str | None
    readonly: bool
    input: str  # text | textarea | number | checkbox | date | datetime-local | select | reference | json
    step: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    lookup: bool = False  # reference picker with search-as-you-type


@dataclass
class FormGroup:
    title: str | None
    fields: list[FormField]


def form_layout(ref: EntityRef, spec: PageSpec) -> list[FormGroup]:
    def make(item: Mapping[str, Any] | FieldSpec) -> FormField:
        if isinstance(item, FieldSpec):
            fspec, label, help_text, readonly = item, item.label, item.help, False
        else:
            fspec = ref.spec.field(item["field"])
            label, help_text, readonly = (
                item["label"] or fspec.label,
                item.get("help"),
                bool(item.get("readonly")),
            )
        ff = FormField(fspec, label, help_text, readonly, INPUTS.get(fspec.type, "text"))
        if fspec.type in {"integer", "decimal"}:
            ff.step = step(fspec)
        if fspec.type == "select":
            ff.options = [(o.value, o.label) for o in fspec.options]
        return ff

    if spec.form is None:
        return [FormGroup(None, [make(f) for f in ref.spec.fields])]
    groups = [
        FormGroup(g.get("title"), [make(i) for i in g["fields"]]) for g in spec.form.get("groups") or ()
    ]
    loose = [make(i) for i in spec.form.get("fields") or ()]
    if loose:
        groups.append(FormGroup(None, loose))
    return [g for g in groups if g.fields]


async def layout(ctx: RequestContext, target: Target) -> list[FormGroup]:
    """The form layout, with the fields an approval process decides read-only to users who may not set them."""
    groups = form_layout(target.ref, target.spec)
    decided = await workflow_guard.readonly_fields(ctx.db, ctx.tenant_id, target.ref, ctx.can)
    for ff in form_fields(groups):
        ff.readonly = ff.readonly or ff.spec.name in decided
    return groups


def form_fields(groups: list[FormGroup]) -> list[FormField]:
    return [f for g in groups for f in g.fields]


async def prepare_pickers(
    svc: RecordService,
    ctx: RequestContext,
    target: Target,
    groups: list[FormGroup],
    values: Mapping[str, str],
) -> None:
    """Options of the reference pickers: the current choice plus the first few target rows."""
    for ff in form_fields(groups):
        if ff.spec.type != "reference":
            continue
        ref = runtime.find_entity(target.plugins, ff.spec.entity or "")
        if ref is None or not ctx.can(ref.permission("select")):
            ff.input = "text"  # no way to list the targets: type the id
            continue
        ff.lookup = True
        options = [(str(i), label) for i, label in await svc.search_labels(ref, "", PICKER_PRELOAD)]
        current = values.get(ff.spec.name) or ""
        if current and current not in {v for v, _ in options}:
            known = await svc.labels(ref, [as_uuid(current)])
            options.insert(0, (current, next(iter(known.values()), current)))
        ff.options = options


def values_from_form(groups: list[FormGroup], form: FormMultiDict) -> tuple[dict[str, str], dict[str, str]]:
    """(data for the service, raw values to show again) from a submitted record form."""
    data: dict[str, str] = {}
    for ff in form_fields(groups):
        if ff.readonly:
            continue
        name = ff.spec.name
        if ff.spec.type == "boolean":
            data[name] = "true" if any(str(v).lower() in TRUE for v in form.getall(name, [])) else "false"
            continue
        if name not in form:
            continue
        raw = form.get(name)
        data[name] = raw[:MAX_VALUE_LENGTH] if isinstance(raw, str) else ""
    return data, dict(data)


async def form_page(
    request: HTMXRequest,
    ctx: RequestContext,
    target: Target,
    *,
    row: dict[str, Any] | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    version: Any = None,
    status_code: int = 200,
    form_error: str | None = None,
) -> Template:
    svc = ctx.records()
    groups = await layout(ctx, target)
    await prepare_pickers(svc, ctx, target, groups, values)
    errors = errors or {}
    known = {ff.spec.name for ff in form_fields(groups)}
    stray = {k: v for k, v in errors.items() if k not in known}
    readonly = {}
    if row is not None:
        labels = await reference_labels(
            svc, target, [ff.spec for ff in form_fields(groups) if ff.readonly], [row]
        )
        readonly = {
            ff.spec.name: value_text(ff.spec, row.get(ff.spec.name), labels.get(ff.spec.name))
            for ff in form_fields(groups)
            if ff.readonly
        }
    # Posting to .../new keeps a refused create on the form's own URL (a reload shows the form).
    action = f"{target.url}/new" if row is None else f"{target.url}/{row['id']}"
    return await page(
        request,
        ctx,
        "records/form.html",
        status_code=status_code,
        **common(ctx, target),
        groups=groups,
        values=values,
        errors=errors,
        stray=stray,
        row=row,
        version=version,
        action=action,
        readonly=readonly,
        form_error=form_error,
        lookup_url=f"{target.url}/lookup",
        title=(f"New {target.ref.spec.label}" if row is None else f"Edit {title(target.ref, row)}"),
    )


async def new(request: HTMXRequest, ctx: RequestContext, target: Target) -> Template:
    need_action(ctx, target, "create")
    ctx.records().require(target.ref, "insert")
    values = {f.name: to_input(f, default_for(f)) for f in target.ref.spec.fields}
    # Links may pre-fill the form (a related list's "New contact" carries the customer): only fields the
    # user may set here, as typed text the form parses like any input.
    params = request.query_params
    for ff in form_fields(await layout(ctx, target)):
        given = params.get(ff.spec.name)
        if given is not None and not ff.readonly:
            values[ff.spec.name] = given[:MAX_VALUE_LENGTH]
    return await form_page(request, ctx, target, row=None, values=values)


async def create(request: HTMXRequest, ctx: RequestContext, target: Target) -> Response[Any]:
    need_action(ctx, target, "create")
    svc = ctx.records()
    svc.require(target.ref, "insert")
    data, values = values_from_form(await layout(ctx, target), await request.form())
    try:
        # No savepoint on the hot path: validation fails before any write, and a unique clash
        # (which aborts a PostgreSQL transaction) rolls the whole request back before re-rendering.
        row = await svc.insert(target.ref, data)
    except ValidationFailed as exc:
        return await form_page(
            request, ctx, target, row=None, values=values, errors=exc.errors, status_code=422
        )
    except Conflict as exc:
        await ctx.db.rollback()
        return await form_page(
            request, ctx, target, row=None, values=values, form_error=exc.detail, status_code=409
        )
    return redirect(f"{target.url}/{row['id']}", f"{title(target.ref, row)} created")


async def edit(request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str) -> Template:
    need_action(ctx, target, "edit")
    svc = ctx.records()
    svc.require(target.ref, "update")
    row = await svc.get(target.ref, record_id)
    values = {f.name: to_input(f, row.get(f.name)) for f in target.ref.spec.fields}
    return await form_page(request, ctx, target, row=row, values=values, version=row["version"])


async def update(request: HTMXRequest, ctx: RequestContext, target: Target, record_id: str) -> Response[Any]:
    need_action(ctx, target, "edit")
    svc = ctx.records()
    svc.require(target.ref, "update")
    form = await request.form()
    groups = await layout(ctx, target)
    data, values = values_from_form(groups, form)
    raw_version = form.get("version")
    version = (
        int(raw_version)
        if isinstance(raw_version, str) and re.fullmatch(r"[0-9]{1,18}", raw_version)
        else None
    )
    try:
        async with atomic(ctx):
            row = await svc.update(target.ref, record_id, data, version)
    except StaleVersion as exc:
        return await conflict(request, ctx, target, groups, exc.current, values)
    except ValidationFailed as exc:
        current = await svc.get(target.ref, record_id)
        return await form_page(
            request,
            ctx,
            target,
            row=current,
            values=values,
            errors=exc.errors,
            version=version,
            status_code=422,
        )
    except Conflict as exc:
        current = await svc.get(target.ref, record_id)
        return await form_page(
            request,
            ctx,
            target,
            row=current,
            values=values,
            version=version,
            form_error=exc.detail,
            status_code=409,
        )
    return redirect(f"{target.url}/{row['id']}", f"{title(target.ref, row)} saved")


async def conflict(
    request: HTMXRequest,
    ctx: RequestContext,
    target: Target,
    groups: list[FormGroup],
    current: dict[str, Any],
    mine: dict[str, str],
) -> Template:
    """Someone saved first: show their values next to ours; the user decides, nothing is overwritten."""
    svc = ctx.records()
    fields = [ff for ff in form_fields(groups) if not ff.readonly]
    labels = await reference_labels(svc, target, [ff.spec for ff in fields], [current])
    mine_parsed: dict[str, Any] = {}
    for ff in fields:
        if ff.spec.name in mine:
            try:
                mine_parsed[ff.spec.name] = parse(ff.spec, mine[ff.spec.name])
            except FieldError:
                mine_parsed[ff.spec.name] = mine[ff.spec.name]
    ref_ids = {
        ff.spec.name: [v]
        for ff in fields
        if ff.spec.type == "reference" and isinstance(v := mine_parsed.get(ff.spec.name), uuid.UUID)
    }
    mine_labels = (
        await reference_labels(
            svc,
            target,
            [ff.spec for ff in fields if ff.spec.name in ref_ids],
            [{k: v[0] for k, v in ref_ids.items()}],
        )
        if ref_ids
        else {}
    )
    rows = []
    for ff in fields:
        name = ff.spec.name
        theirs = current.get(name)
        if name not in mine:
            continue
        yours = mine_parsed.get(name)
        rows.append(
            {
                "label": ff.label,
                "theirs": value_text(ff.spec, theirs, labels.get(name)),
                "yours": value_text(ff.spec, yours, mine_labels.get(name)),
                "differs": to_json(theirs) != to_json(yours),
            }
        )
    return await page(
        request,
        ctx,
        "records/conflict.html",
        status_code=409,
        **common(ctx, target),
        row=current,
        rows=rows,
        mine=mine,
        title=title(target.ref, current),
        action=f"{target.url}/{current['id']}",
    )
