"""The fields of a record form as the templates draw them (`FormField`: label, help, input kind, step,
options), laid out from the page's `form`, and the options of reference pickers. Shared by the record
form (app.web.records.forms) and its inline child rows (app.web.records.inline)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.manifest import FieldSpec, PageSpec
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.service import RecordService
from app.web.context import RequestContext
from app.web.records.display import as_uuid, step
from app.web.records.target import Target

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
    "file": "file",
    "image": "file",
}


@dataclass
class FormField:
    spec: FieldSpec
    label: str
    help: str | None
    readonly: bool
    input: (
        str  # text | textarea | number | checkbox | date | datetime-local | select | reference | json | file
    )
    step: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    lookup: bool = False  # reference picker with search-as-you-type


@dataclass
class FormGroup:
    title: str | None
    fields: list[FormField]


def form_field(fspec: FieldSpec, label: str, help_text: str | None, readonly: bool) -> FormField:
    # Formulas and rollups are kept by the record service: shown, never typed. Files are uploaded.
    shown_only = fspec.computed and not fspec.is_file
    ff = FormField(fspec, label, help_text, readonly or shown_only, INPUTS.get(fspec.type, "text"))
    if fspec.type in {"integer", "decimal"}:
        ff.step = step(fspec)
    if fspec.type == "select":
        ff.options = [(o.value, o.label) for o in fspec.options]
    return ff


def form_layout(ref: EntityRef, spec: PageSpec) -> list[FormGroup]:
    def make(item: Mapping[str, Any] | FieldSpec) -> FormField:
        if isinstance(item, FieldSpec):
            return form_field(item, item.label, item.help, False)
        fspec = ref.spec.field(item["field"])
        return form_field(fspec, item["label"] or fspec.label, item.get("help"), bool(item.get("readonly")))

    if spec.form is None:
        return [FormGroup(None, [make(f) for f in ref.spec.fields])]
    groups = [
        FormGroup(g.get("title"), [make(i) for i in g["fields"]]) for g in spec.form.get("groups") or ()
    ]
    loose = [make(i) for i in spec.form.get("fields") or ()]
    if loose:
        groups.append(FormGroup(None, loose))
    return [g for g in groups if g.fields]


def form_fields(groups: list[FormGroup]) -> list[FormField]:
    return [f for g in groups for f in g.fields]


async def prepare_picker(
    svc: RecordService, ctx: RequestContext, target: Target, ff: FormField, currents: Iterable[str]
) -> None:
    """A reference field's options: the first few target rows plus the current choices (ids as typed);
    a plain text input for the id when the user may not list the targets."""
    ref = runtime.find_entity(target.plugins, ff.spec.entity or "")
    if ref is None or not ctx.can(ref.permission("select")):
        ff.input = "text"  # no way to list the targets: type the id
        return
    ff.lookup = True
    options = [(str(i), label) for i, label in await svc.search_labels(ref, "", PICKER_PRELOAD)]
    listed = {v for v, _ in options}
    missing = [c for c in dict.fromkeys(currents) if c and c not in listed]
    if missing:
        known = await svc.labels(ref, [u for c in missing if (u := as_uuid(c)) is not None])
        by_text = {str(k): v for k, v in known.items()}
        options[:0] = [(c, by_text.get(c, c)) for c in missing]
    ff.options = options
