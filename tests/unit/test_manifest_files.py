"""File and image fields in the manifest: accept, max_size, multiple, with located errors."""

from __future__ import annotations

from typing import Any

import pytest

from app.manifest import ManifestError, parse_manifest
from app.manifest.vocabulary import FILE_DEFAULT_MAX_SIZE, FILE_MAX_SIZE, IMAGE_CONTENT_TYPES
from tests.unit.test_manifest import base

F = "schema.entities[2].fields"


def doc(*fields: dict[str, Any], page: dict[str, Any] | None = None) -> dict[str, Any]:
    d = base()
    d["schema"]["entities"].append(
        {"name": "folder", "fields": [{"name": "title", "type": "string"}, *fields]}
    )
    if page is not None:
        d["ui"]["pages"].append(
            {"name": "Folders", "path": "/demo/folders", "type": "crud", "entity": "folder"} | page
        )
    return d


def issues_of(d: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(d)
    return [(i.path, i.message) for i in caught.value.issues]


def test_file_and_image_fields_parse_with_defaults() -> None:
    m = parse_manifest(
        doc(
            {"name": "contract", "type": "file", "accept": ["application/pdf"], "max_size": 2_000_000},
            {"name": "photo", "type": "image"},
            {"name": "scans", "type": "file", "multiple": True, "accept": ["image/*", "text/plain"]},
        )
    )
    folder = m.entity("folder")
    contract, photo, scans = folder.field("contract"), folder.field("photo"), folder.field("scans")
    assert contract.accept == ("application/pdf",) and contract.max_size == 2_000_000
    assert not contract.multiple and contract.is_file and contract.computed
    assert photo.accept == IMAGE_CONTENT_TYPES and photo.max_size == FILE_DEFAULT_MAX_SIZE
    assert scans.multiple and scans.accept == (*IMAGE_CONTENT_TYPES, "text/plain")
    assert not contract.sortable and not contract.filterable and not photo.sortable
    assert not folder.field("title").is_file


@pytest.mark.parametrize(
    ("field", "path", "fragment"),
    [
        (
            {"accept": ["application/x-msdownload"]},
            f"{F}[1].accept[0]",
            "not a content type the host recognises",
        ),
        ({"accept": "application/pdf"}, f"{F}[1].accept", "expected a non-empty array"),
        ({"accept": []}, f"{F}[1].accept", "expected a non-empty array"),
        ({"accept": ["text/plain", "text/plain"]}, f"{F}[1].accept[1]", "listed twice"),
        ({"max_size": 0}, f"{F}[1].max_size", "out of range"),
        ({"max_size": FILE_MAX_SIZE + 1}, f"{F}[1].max_size", "out of range"),
        ({"max_size": "1MB"}, f"{F}[1].max_size", "expected an integer"),
        ({"multiple": "yes"}, f"{F}[1].multiple", "expected true or false"),
        ({"required": True}, f"{F}[1].required", "does not apply to file fields"),
        ({"unique": True}, f"{F}[1].unique", "does not apply to file fields"),
        ({"default": "x"}, f"{F}[1].default", "does not apply to file fields"),
        ({"searchable": True}, f"{F}[1].searchable", "fields can be searchable"),
    ],
)
def test_bad_file_keys_are_located(field: dict[str, Any], path: str, fragment: str) -> None:
    found = issues_of(doc({"name": "att", "type": "file"} | field))
    assert any(p == path and fragment in msg for p, msg in found), found


def test_image_fields_accept_images_only_and_keys_need_a_file_type() -> None:
    found = issues_of(doc({"name": "pic", "type": "image", "accept": ["application/pdf"]}))
    assert (
        f"{F}[1].accept[0]",
        "image fields accept images only (image/png, image/jpeg, image/gif or image/webp)",
    ) in [(p, m) for p, m in found] or any(p == f"{F}[1].accept[0]" and "images only" in m for p, m in found)
    found = issues_of(doc({"name": "size", "type": "integer", "max_size": 10}))
    assert any(p == f"{F}[1].max_size" and "does not apply to integer" in m for p, m in found), found


def test_files_cannot_be_filtered_sorted_or_indexed() -> None:
    found = issues_of(doc({"name": "att", "type": "file"}, page={"filters": ["att"]}))
    assert any(p == "ui.pages[2].filters[0]" and "file field 'att' cannot be a filter" in m for p, m in found)
    d = doc({"name": "att", "type": "image"})
    d["schema"]["entities"][2]["indexes"] = [["att"]]
    found = issues_of(d)
    assert any(
        p == "schema.entities[2].indexes[0][0]" and "image field 'att' cannot be indexed" in m
        for p, m in found
    )
    found = issues_of(doc({"name": "att", "type": "file"}, page={"board": {"field": "att"}}))
    assert any(p.startswith("ui.pages[2].board") for p, _ in found), found
