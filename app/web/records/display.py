"""Values as people read them on record pages: reference labels instead of ids, titles, input steps."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from app.core.i18n import N_
from app.manifest import FieldSpec
from app.manifest.vocabulary import STANDARD_FIELD_LABELS
from app.plugins import runtime
from app.plugins.runtime import EntityRef
from app.records.service import RecordService
from app.records.values import display
from app.web.records.target import Target

STANDARD_LABELS = STANDARD_FIELD_LABELS


def as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def step(spec: FieldSpec) -> str:
    """The `step` of a number input for an integer or decimal field."""
    if spec.type == "integer":
        return "1"
    scale = spec.scale if spec.scale is not None else 2
    return "1" if scale == 0 else "0." + "0" * (scale - 1) + "1"


async def reference_labels(
    svc: RecordService, target: Target, specs: Iterable[FieldSpec | None], rows: list[dict[str, Any]]
) -> dict[str, dict[Any, str]]:
    """Display names of referenced rows, one query per reference field."""
    out: dict[str, dict[Any, str]] = {}
    for spec in specs:
        if spec is None or spec.type != "reference" or spec.name in out:
            continue
        ref = runtime.find_entity(target.plugins, spec.entity or "")
        out[spec.name] = await svc.labels(ref, [r.get(spec.name) for r in rows]) if ref is not None else {}
    return out


def value_text(spec: FieldSpec | None, value: Any, labels: Mapping[Any, str] | None = None) -> str:
    if spec is not None and spec.type == "reference" and value is not None:
        return (labels or {}).get(value) or str(value)
    return display(spec, value)


def title(ref: EntityRef, row: Mapping[str, Any], labels: dict[str, dict[Any, str]] | None = None) -> str:
    """A record named for people: "Item Widget", a Msg whose entity label is shown in the reader's
    language (the `t` filter, flash messages)."""
    value = row.get(ref.spec.display_field)
    if value in (None, ""):
        return ref.spec.label
    shown = (labels or {}).get(ref.spec.display_field, {}).get(value, value)
    return N_("%(entity)s %(name)s", entity=ref.spec.label, name=str(shown))
