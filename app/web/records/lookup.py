"""The reference picker's search-as-you-type: `<option>`s of the target entity's rows."""

from __future__ import annotations

from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.core.errors import NotFound
from app.core.i18n import N_
from app.plugins import runtime
from app.records.query import declared
from app.web.context import RequestContext
from app.web.records.display import as_uuid
from app.web.records.target import Target

LOOKUP_LIMIT = 20


async def lookup(request: HTMXRequest, ctx: RequestContext, target: Target) -> Template:
    params = request.query_params
    name = params.get("field") or ""
    fspec = declared(target.ref, name)
    child = target.ref.spec.child(params.get("child") or "")
    if child is not None:  # a picker in an inline row: the field is the child entity's
        ref = target.plugin.entities.get(child.entity)
        fspec = declared(ref, name) if ref is not None and name in child.fields else None
    # The picker's own input (`lines-<key>-item_id` in an inline row) holds the current choice.
    current_key = params.get("input") or name
    wanted = params.get("entity")
    if fspec is None or fspec.type != "reference" or (wanted and wanted != fspec.entity):
        raise NotFound(N_("No such reference field on this page"))
    ref = runtime.find_entity(target.plugins, fspec.entity or "")
    if ref is None:
        raise NotFound(N_("%(entity)s is not available in this tenant", entity=fspec.entity))
    svc = ctx.records()
    q = (params.get("q") or params.get("_q") or "").replace("\x00", "").strip()[:200]
    found = await svc.search_labels(ref, q, LOOKUP_LIMIT)
    options = [(str(i), label) for i, label in found]
    selected = params.get(current_key) or ""
    if q and options:
        selected = options[0][0]  # typing means choosing: preselect the best match (the old one stays listed)
    previous = params.get(current_key) or ""
    if previous and previous not in {v for v, _ in options} and as_uuid(previous):
        known = await svc.labels(ref, [as_uuid(previous)])
        if known:
            options.append((previous, next(iter(known.values()))))
    return Template(
        template_name="records/_options.html",
        context={"options": options, "selected": selected, "required": fspec.required, "empty": not found},
    )
