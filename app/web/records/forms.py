"""Record forms: the layout from the page's `form` (groups, read-only fields, help), reference pickers,
the entity's child rows inline (app.web.records.inline), create and edit with inline errors (422) or a
clash (409), and the optimistic-lock conflict page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from litestar import Response
from litestar.datastructures import FormMultiDict
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from sqlalchemy.exc import IntegrityError

from app.core.errors import Conflict, ValidationFailed
from app.core.i18n import N_
from app.manifest.labels import pick_label
from app.records import children
from app.records.service import RecordService, StaleVersion
from app.records.values import TRUE, FieldError, default_for, parse, to_input, to_json
from app.web.context import RequestContext
from app.web.records import files as web_files
from app.web.records import inline
from app.web.records.display import reference_labels, title, value_text
from app.web.records.form_fields import MAX_VALUE_LENGTH, FormGroup, form_fields, form_layout, prepare_picker
from app.web.records.target import Target, atomic, common, need_action
from app.web.render import page, redirect
from app.workflow import guard as workflow_guard


async def layout(ctx: RequestContext, target: Target) -> list[FormGroup]:
    """The form layout, with the fields an approval process decides read-only to users who may not set them."""
    groups = form_layout(target.ref, target.spec)
    decided = await workflow_guard.readonly_fields(ctx.db, ctx.tenant_id, target.ref, ctx.can)
    for ff in form_fields(groups):
        ff.readonly = ff.readonly or ff.spec.name in decided
    return groups


async def prepare_pickers(
    svc: RecordService,
    ctx: RequestContext,
    target: Target,
    groups: list[FormGroup],
    values: Mapping[str, str],
) -> None:
    """Options of the reference pickers: the current choice plus the first few target rows."""
    for ff in form_fields(groups):
        if ff.spec.type == "reference":
            await prepare_picker(svc, ctx, target, ff, [values.get(ff.spec.name) or ""])


def values_from_form(groups: list[FormGroup], form: FormMultiDict) -> tuple[dict[str, str], dict[str, str]]:
    """(data for the service, raw values to show again) from a submitted record form."""
    data: dict[str, str] = {}
    for ff in form_fields(groups):
        if ff.readonly or ff.input == "file":  # files: app.web.records.files
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
    sets: list[inline.InlineSet] | None = None,
) -> Template:
    svc = ctx.records()
    groups = await layout(ctx, target)
    await prepare_pickers(svc, ctx, target, groups, values)
    if sets is None:  # a form as it starts: the saved child rows (none for a new record)
        sets = await inline.sets_for(ctx, target)
        if row is not None:
            await inline.load_rows(ctx, target, sets, row)
    await inline.prepare(ctx, target, sets)
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
    row_errors = sum(len(r.errors) for st in sets for r in st.rows) + sum(1 for st in sets if st.error)
    return await page(
        request,
        ctx,
        "records/form.html",
        status_code=status_code,
        **common(ctx, target),
        groups=groups,
        values=values,
        errors=errors,
        error_count=len(errors) + row_errors,
        stray=stray,
        row=row,
        version=version,
        action=action,
        readonly=readonly,
        form_error=form_error,
        lookup_url=f"{target.url}/lookup",
        inline_sets=sets,
        inline_url=f"{target.url}/inline",
        files=web_files.existing(target, row),
        multipart=any(ff.input == "file" for ff in form_fields(groups)),
        title=_heading(ctx, target, row),
    )


def _heading(ctx: RequestContext, target: Target, row: dict[str, Any] | None) -> str:
    """ "New Purchase order" / "Edit Purchase order PO-1", in the reader's language."""
    entity = pick_label(target.ref.spec.label, ctx.language)
    if row is None:
        return N_("New %(entity)s", entity=entity)
    value = row.get(target.ref.spec.display_field)
    return N_("Edit %(title)s", title=entity if value in (None, "") else f"{entity} {value}")


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


async def _submitted(
    ctx: RequestContext, target: Target, form: FormMultiDict
) -> tuple[list[FormGroup], dict[str, str], dict[str, str], list[inline.InlineSet]]:
    """A posted record form: the layout, the data for the service, the values to show again, and the
    child sets it carried with their rows as typed."""
    groups = await layout(ctx, target)
    data, values = values_from_form(groups, form)
    sets = inline.posted(await inline.sets_for(ctx, target), form)
    inline.from_form(sets, form)
    return groups, data, values, sets


async def _recover(ctx: RequestContext, exc: Conflict) -> None:
    """A unique value taken by a concurrent transaction aborts the (PostgreSQL) transaction: roll it
    back and reload what the page still reads. Other conflicts (an approval's lock, say) wrote nothing,
    and rolling back would only expire the request's tenant and user under the page."""
    if not isinstance(exc.__cause__, IntegrityError):
        return
    await ctx.db.rollback()
    for obj in (ctx.tenant, ctx.user):
        if obj is not None and obj in ctx.db:
            await ctx.db.refresh(obj)


async def create(request: HTMXRequest, ctx: RequestContext, target: Target) -> Response[Any]:
    need_action(ctx, target, "create")
    svc = ctx.records()
    svc.require(target.ref, "insert")
    groups, data, values, sets = await _submitted(ctx, target, form := await request.form())
    if inline.press(sets, form):  # "Add" or a move without script: the same form again, nothing saved
        return await form_page(request, ctx, target, row=None, values=values, sets=sets)
    posted = await web_files.from_form(groups, form, ctx.services.blob_store)
    if posted.errors:  # checked before anything is written; the typed values stay on the form
        return await form_page(
            request,
            ctx,
            target,
            row=None,
            values=values,
            errors=posted.errors,
            status_code=posted.status,
            sets=sets,
        )
    rows, keys = inline.payload(sets)
    try:
        if sets:  # one transaction for the record and its rows (savepoint inside)
            row = await children.save(svc, target.ref, None, data, None, rows)
        else:
            # No savepoint on the hot path: validation fails before any write, and a unique clash
            # (which aborts a PostgreSQL transaction) rolls the whole request back before re-rendering.
            row = await svc.insert(target.ref, data)
        await web_files.apply(svc, target.ref, row["id"], posted)
    except ValidationFailed as exc:
        errors = inline.place_errors(sets, exc.errors, keys)
        return await form_page(
            request,
            ctx,
            target,
            row=None,
            values=values,
            errors=errors,
            status_code=exc.status_code,
            sets=sets,
        )
    except Conflict as exc:
        if not sets:
            await _recover(ctx, exc)
        return await form_page(
            request, ctx, target, row=None, values=values, form_error=exc.detail, status_code=409, sets=sets
        )
    return redirect(f"{target.url}/{row['id']}", N_("%(record)s created", record=title(target.ref, row)))


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
    groups, data, values, sets = await _submitted(ctx, target, form)
    raw_version = form.get("version")
    version = (
        int(raw_version)
        if isinstance(raw_version, str) and re.fullmatch(r"[0-9]{1,18}", raw_version)
        else None
    )
    if inline.press(sets, form):
        current = await svc.get(target.ref, record_id)
        return await form_page(request, ctx, target, row=current, values=values, version=version, sets=sets)
    posted = await web_files.from_form(groups, form, ctx.services.blob_store)
    rows, keys = inline.payload(sets)
    try:
        if posted.errors:
            raise web_files.Refused(posted)
        if sets:
            async with atomic(ctx):
                row = await children.save(svc, target.ref, record_id, data, version, rows)
                await web_files.apply(svc, target.ref, row["id"], posted)
        else:
            # No savepoint on the hot path (two round trips on PostgreSQL): a refused update writes
            # nothing; a unique clash raised by the database rolls the request back (below).
            row = await svc.update(target.ref, record_id, data, version)
            await web_files.apply(svc, target.ref, row["id"], posted)
    except StaleVersion as exc:
        return await conflict(request, ctx, target, groups, exc.current, values, inline.carried(sets, form))
    except children.ChildStale as exc:
        inline.stale(sets, exc, keys)
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
            sets=sets,
        )
    except ValidationFailed as exc:
        current = await svc.get(target.ref, record_id)
        return await form_page(
            request,
            ctx,
            target,
            row=current,
            values=values,
            errors=inline.place_errors(sets, exc.errors, keys),
            version=version,
            status_code=exc.status_code,
            sets=sets,
        )
    except Conflict as exc:
        if not sets:
            await _recover(ctx, exc)
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
            sets=sets,
        )
    return redirect(f"{target.url}/{row['id']}", N_("%(record)s saved", record=title(target.ref, row)))


async def conflict(
    request: HTMXRequest,
    ctx: RequestContext,
    target: Target,
    groups: list[FormGroup],
    current: dict[str, Any],
    mine: dict[str, str],
    carry: list[tuple[str, str]] | None = None,
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
        carry=carry or [],
        title=title(target.ref, current),
        action=f"{target.url}/{current['id']}",
    )
