"""The keys of ``file`` and ``image`` fields: ``accept`` (content types), ``max_size`` (bytes) and
``multiple``. Their values are attachment lists the platform keeps (app.records.files), so the keys
that set a plain value (``required``, ``unique``, ``default``, ``searchable``) do not apply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.i18n import N_
from app.core.validation import ix, kind, one_of
from app.manifest.reader import ManifestReader
from app.manifest.vocabulary import (
    FILE_CONTENT_TYPES,
    FILE_DEFAULT_MAX_SIZE,
    FILE_FIELD_TYPES,
    FILE_MAX_SIZE,
    IMAGE_CONTENT_TYPES,
)

#: ``accept`` entries: a recognised content type or ``image/*``.
ACCEPT_VALUES: tuple[str, ...] = (*FILE_CONTENT_TYPES, "image/*")


def read_file_keys(
    r: ManifestReader, raw: Mapping[str, Any], path: str, ftype: str
) -> tuple[tuple[str, ...], int | None, bool]:
    """``(accept, max_size, multiple)`` of a file/image field; ``((), None, False)`` for other types
    (TYPE_SPECIFIC already reported keys that do not apply)."""
    if ftype not in FILE_FIELD_TYPES:
        return (), None, False
    for key in ("required", "unique", "default"):  # searchable: reported with SEARCHABLE_TYPES
        if key in raw:
            r.add(
                f"{path}.{key}",
                N_(
                    "'%(key)s' does not apply to %(ftype)s fields (their files are uploaded)",
                    key=key,
                    ftype=ftype,
                ),
            )
    accept: list[str] = []
    if "accept" in raw:
        value = raw["accept"]
        if not isinstance(value, list) or not value:
            r.add(
                f"{path}.accept",
                N_("expected a non-empty array of content types, got %(kind)s", kind=kind(value)),
            )
        else:
            for i, item in enumerate(value):
                item_path = ix(f"{path}.accept", i)
                if not isinstance(item, str) or item not in ACCEPT_VALUES:
                    shown = item if isinstance(item, str) else kind(item)
                    r.add(
                        item_path,
                        N_(
                            "'%(shown)s' is not a content type the host recognises (one of: %(choices)s)",
                            shown=shown,
                            choices=one_of(ACCEPT_VALUES),
                        ),
                    )
                elif ftype == "image" and item not in (*IMAGE_CONTENT_TYPES, "image/*"):
                    r.add(
                        item_path,
                        N_(
                            "image fields accept images only (%(choices)s)",
                            choices=one_of(IMAGE_CONTENT_TYPES),
                        ),
                    )
                elif item in accept:
                    r.add(item_path, N_("'%(item)s' is listed twice", item=item))
                else:
                    accept.append(item)
    expanded: list[str] = []
    for item in accept or (["image/*"] if ftype == "image" else []):
        for one in IMAGE_CONTENT_TYPES if item == "image/*" else (item,):
            if one not in expanded:
                expanded.append(one)
    max_size = r.integer(raw, "max_size", path, 1, FILE_MAX_SIZE) or FILE_DEFAULT_MAX_SIZE
    multiple = bool(r.flag(raw, "multiple", path))
    return tuple(expanded), max_size, multiple
