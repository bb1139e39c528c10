"""Files of file and image fields on the one record path, on both databases: uploads checked from their
content (type sniffed, size limit, accept), images re-encoded with a thumbnail, equal bytes stored once,
tenant isolation, data scope and soft delete on download, purge."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from app.access import roles, scopes
from app.access.scopes import ScopeRule
from app.audit import Actor
from app.core.attachments import Attachment
from app.core.errors import NotFound
from app.core.models import AuditEntry, StoredBlob
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from app.records.files import FileRefused, RecordFiles, Upload, prepare, sniff
from app.records.service import RecordService
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.helpers import api_token, bearer, csrf, login, logout, post_form, text_of
from tests.integration.test_record_pages import UUID, created_id, ids_on, in_db
from tests.storage import BOTH_STORES, check_placement, objects

MANIFEST = """
[plugin]
id = "docs"
name = "Docs"
version = "1.0.0"
min_platform_version = "1.0.0"

[dependencies]
modules = ["auth"]

[[schema.entities]]
name = "folder"
label = "Folder"
display_field = "title"
fields = [
  { name = "title", type = "string", required = true },
  { name = "contract", type = "file", accept = ["application/pdf"], max_size = 4000 },
  { name = "photos", type = "image", multiple = true },
]

[[ui.pages]]
name = "Folders"
path = "/docs/folders"
type = "crud"
entity = "folder"
columns = ["title", "contract", "photos"]
"""
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def png(color: str = "red", size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def install_docs(app: Any, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "plugin.toml").write_text(MANIFEST, "utf-8")

    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        await lifecycle.upload(s, actor, read_folder(folder), app.state.settings, install_now=True)
        for slug in ("acme", "globex"):
            t = await directory.create_tenant(s, actor, slug, slug.title())
            await lifecycle.enable(s, actor, t.id, "docs")

    in_db(app, work)


@pytest.fixture
def docs(app: Any, tmp_path: Path) -> Any:
    install_docs(app, tmp_path)
    return app


async def service(s: Any, slug: str = "acme") -> tuple[RecordService, Any]:
    tenant = await directory.get_tenant(s, slug)
    ref = await runtime.entity_in_tenant(s, tenant.id, "docs", "folder")
    return RecordService(s, tenant.id, Actor(None, "test"), lambda _p: True), ref


def test_the_type_comes_from_the_content() -> None:
    assert sniff(PDF, "x.txt") == "application/pdf"
    assert sniff(png(), "x.pdf") == "image/png"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "") == "image/webp"
    assert sniff(b"a,b\n1,2\n", "t.csv") == "text/csv" and sniff(b"hello", "t.pdf") == "text/plain"
    assert sniff(b"MZ\x90\x00\x03\x00\x00\x00", "setup.pdf") is None  # an executable named .pdf
    assert sniff(b"\xff\xfe\x00<\x00h", "") is None


@BOTH_STORES
def test_upload_checks_sniffing_size_and_dedup(docs: Any) -> None:
    async def work(s: Any) -> dict[str, Any]:
        svc, ref = await service(s)
        files = RecordFiles(svc)
        contract = ref.spec.field("contract")
        # A script named contract.pdf: refused by its content (415), nothing stored.
        with pytest.raises(FileRefused) as refused:
            await prepare(contract, Upload("contract.pdf", b"<script>alert(1)</script>"))
        assert refused.value.status_code == 415 and "contract" in refused.value.errors
        with pytest.raises(FileRefused) as refused:
            await prepare(contract, Upload("big.pdf", PDF + b"0" * 5000))
        assert refused.value.status_code == 413
        with pytest.raises(FileRefused) as refused:
            await prepare(ref.spec.field("photos"), Upload("fake.png", b"\x89PNG\r\n\x1a\nnot an image"))
        assert refused.value.status_code == 415

        blobs_before = await s.scalar(sa.select(sa.func.count()).select_from(StoredBlob))  # the package's
        one = await svc.insert(ref, {"title": "One"})
        two = await svc.insert(ref, {"title": "Two"})
        after = await files.change(
            ref, one["id"], "contract", add=[await prepare(contract, Upload("c.pdf", PDF))]
        )
        assert after["version"] == 2
        assert [(f["name"], f["content_type"], f["size"]) for f in after["contract"]] == [
            ("c.pdf", "application/pdf", len(PDF))
        ]
        await files.change(
            ref, two["id"], "contract", add=[await prepare(contract, Upload("../../c2.pdf", PDF))]
        )
        photo = await prepare(ref.spec.field("photos"), Upload("p.png", png()))
        assert photo.thumbnail is not None and Image.open(io.BytesIO(photo.thumbnail)).size == (256, 192)
        after = await files.change(ref, one["id"], "photos", add=[photo, photo])
        assert [f["thumbnail"] for f in after["photos"]] == [True, True]
        # Equal content is stored once: one blob for both PDFs, one for the photo, one for its thumbnail.
        pdf_blobs = await s.scalar(sa.select(sa.func.count()).select_from(StoredBlob))
        assert pdf_blobs == blobs_before + 3
        assert await check_placement(s, docs) == pdf_blobs  # in the row, or in the bucket (one object)
        row = await svc.get(ref, two["id"])
        assert row["contract"][0]["name"] == "c2.pdf"  # no path in a stored name
        # Replacing a single file removes the old one from the field (kept until purged).
        again = await files.change(
            ref, one["id"], "contract", add=[await prepare(contract, Upload("new.pdf", PDF))]
        )
        assert [f["name"] for f in again["contract"]] == ["new.pdf"]
        gone = await files.change(ref, one["id"], "photos", remove=[after["photos"][0]["id"]])
        assert len(gone["photos"]) == 1 and gone["version"] == 5
        actions = list(
            await s.scalars(sa.select(AuditEntry.action).where(AuditEntry.target_id == str(one["id"])))
        )
        assert actions.count("record.attach") == 3 and actions.count("record.detach") == 1
        meta, content = await files.open(ref, one["id"], again["contract"][0]["id"])
        assert content == PDF and meta.content_type == "application/pdf"
        _, thumb = await files.open(ref, one["id"], gone["photos"][0]["id"], thumbnail=True)
        assert thumb == photo.thumbnail
        return {"one": one["id"], "file": again["contract"][0]["id"]}

    in_db(docs, work)


@BOTH_STORES
def test_tenants_soft_delete_and_purge(docs: Any) -> None:
    async def setup(s: Any) -> dict[str, Any]:
        svc, ref = await service(s)
        files = RecordFiles(svc)
        rec = await svc.insert(ref, {"title": "A"})
        after = await files.change(
            ref, rec["id"], "contract", add=[await prepare(ref.spec.field("contract"), Upload("a.pdf", PDF))]
        )
        return {"id": rec["id"], "file": after["contract"][0]["id"]}

    made = in_db(docs, setup)

    async def elsewhere(s: Any) -> None:
        svc, ref = await service(s, "globex")
        with pytest.raises(NotFound):
            await RecordFiles(svc).open(ref, made["id"], made["file"])

    in_db(docs, elsewhere)

    async def delete_then_purge(s: Any) -> None:
        svc, ref = await service(s)
        blobs_before = await s.scalar(sa.select(sa.func.count()).select_from(StoredBlob))
        files = RecordFiles(svc)
        assert await files.purge(ref, [made["id"]]) == 0  # a live record's files stay
        await svc.delete(ref, made["id"])
        with pytest.raises(NotFound):
            await files.open(ref, made["id"], made["file"])
        await svc.restore(ref, made["id"])
        assert (await files.open(ref, made["id"], made["file"]))[1] == PDF  # back with its record
        await svc.delete(ref, made["id"])
        assert await files.purge(ref, [made["id"]]) == 1
        assert await s.scalar(sa.select(sa.func.count()).select_from(Attachment)) == 0
        assert await s.scalar(sa.select(sa.func.count()).select_from(StoredBlob)) == blobs_before - 1

    sha = hashlib.sha256(PDF).hexdigest()
    assert (sha in objects(docs)) is (docs.state.settings.storage.kind == "s3")
    in_db(docs, delete_then_purge)
    asyncio.run(docs.state.services.blob_store.drain())  # an object goes after the purge's commit
    assert sha not in objects(docs)
    assert uuid.UUID(str(made["id"]))


# --- generated pages -------------------------------------------------------------------------------

FOLDERS = "/t/acme/p/docs/docs/folders"
BOB = ("bob@acme.test", "bob-password-1")
CAROL = ("carol@acme.test", "carol-password-1")


@pytest.fixture
def pages(client: Any, app: Any, tmp_path: Path) -> Any:
    """Docs in acme and globex; Bob and Carol are Members of acme who see their own folders only."""
    install_docs(app, tmp_path)

    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        acme = await directory.get_tenant(s, "acme")
        member = await roles.get_role(s, acme.id, "Member")
        await roles.grant(s, actor, member, ["db.folder.*"])
        await scopes.set_role_scopes(
            s, actor, member, {"folder": ScopeRule("own")}, await scopes.scope_entities(s)
        )
        for email, password in (BOB, CAROL):
            user = await directory.create_user(s, actor, email, password)
            await directory.add_member(s, actor, acme.id, user, member)

    in_db(app, work)
    return client


def upload_form(client: Any, url: str, data: dict[str, str], files: dict[str, Any]) -> Any:
    return client.post(url, data={**data, "_csrf_token": csrf(client)}, files=files, follow_redirects=False)


@BOTH_STORES
def test_form_upload_detail_download_csv_and_refusals(pages: Any) -> None:
    client = pages
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    form = client.get(f"{FOLDERS}/new").text
    assert 'enctype="multipart/form-data"' in form and 'type="file"' in form and "data-dropzone" in form
    assert 'accept="application/pdf"' in form and "data-upload-progress" in form

    # A script named .pdf: refused at its field (415), the typed title stays, nothing is saved.
    refused = upload_form(
        client,
        f"{FOLDERS}/new",
        {"title": "Typed title"},
        {"contract": ("c.pdf", b"<html><script>x</script>", "application/pdf")},
    )
    assert refused.status_code == 415
    assert 'value="Typed title"' in refused.text and "this field accepts application/pdf" in refused.text
    assert ids_on(client.get(FOLDERS).text) == []
    too_big = upload_form(
        client,
        f"{FOLDERS}/new",
        {"title": "Big"},
        {"contract": ("c.pdf", PDF + b"0" * 5000, "application/pdf")},
    )
    assert too_big.status_code == 413 and 'value="Big"' in too_big.text

    made = upload_form(
        client,
        f"{FOLDERS}/new",
        {"title": "Deal"},
        {"contract": ("deal.pdf", PDF, "text/plain"), "photos": ("p.png", png(), "image/png")},
    )
    record = created_id(made)
    detail = client.get(f"{FOLDERS}/{record}").text
    links = re.findall(rf'href="({FOLDERS}/{record}/files/{UUID})" download>deal.pdf', detail)
    assert len(links) == 1
    thumbs = re.findall(rf'src="({FOLDERS}/{record}/files/{UUID}/thumbnail)"', detail)
    assert len(thumbs) == 1
    got = client.get(links[0])
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith('attachment; filename="deal.pdf"')
    assert got.headers["x-content-type-options"] == "nosniff"
    thumb = client.get(thumbs[0])
    assert thumb.headers["content-type"] == "image/png" and thumb.headers["content-disposition"].startswith(
        "inline"
    )
    assert Image.open(io.BytesIO(thumb.content)).size == (256, 192)

    # The list links the contract and shows the photo's thumbnail; the CSV export gives download URLs.
    listed = client.get(FOLDERS).text
    assert f'<a href="{links[0]}">deal.pdf</a>' in listed
    assert re.search(rf'<img class="thumb" src="{thumbs[0]}" alt="p.png" loading="lazy"', listed)
    exported = client.get(f"{FOLDERS}/export.csv").text
    assert f"http://testserver.local{links[0]}" in exported

    # Edit: remove the photo, keep the contract, change the title (version check as usual).
    edit = client.get(f"{FOLDERS}/{record}/edit").text
    photo_id = re.search(rf'name="photos__remove" value="({UUID})"', edit)
    assert photo_id and "deal.pdf" in edit
    version = re.search(r'name="version" value="(\d+)"', edit)
    assert version
    saved = upload_form(
        client,
        f"{FOLDERS}/{record}",
        {"title": "Deal 2", "version": version.group(1), "photos__remove": photo_id.group(1)},
        {},
    )
    assert saved.status_code == 303, text_of(saved.text)[:500]
    detail = client.get(f"{FOLDERS}/{record}").text
    assert "Deal 2" in detail and "/thumbnail" not in detail and "deal.pdf" in detail
    assert client.get(thumbs[0]).status_code == 404


@BOTH_STORES
def test_downloads_follow_tenant_scope_and_soft_delete(pages: Any) -> None:
    client = pages
    login(client, *BOB)
    record = created_id(
        upload_form(
            client, f"{FOLDERS}/new", {"title": "Bob's"}, {"contract": ("b.pdf", PDF, "application/pdf")}
        )
    )
    link = re.findall(rf'href="({FOLDERS}/{record}/files/{UUID})"', client.get(f"{FOLDERS}/{record}").text)[0]
    assert client.get(link).status_code == 200
    logout(client)
    login(client, *CAROL)  # same tenant, own scope: Bob's folder and its file are out of reach
    assert client.get(link).status_code == 404
    logout(client)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert client.get(link).status_code == 200
    assert client.get(link.replace("/t/acme/", "/t/globex/")).status_code == 404  # another tenant
    assert post_form(client, f"{FOLDERS}/{record}/delete", {}, follow_redirects=False).status_code == 303
    assert client.get(link).status_code == 404  # hidden with its record


# --- JSON API --------------------------------------------------------------------------------------

API = "/api/v1/plugins/docs/folder"


@BOTH_STORES
def test_api_upload_read_download_remove_and_problems(pages: Any) -> None:
    client = pages
    h = bearer(api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD), "acme")
    made = client.post(API, json={"title": "Via API", "contract": "ignored"}, headers=h)
    assert made.status_code == 201 and made.json()["contract"] == []
    rid = made.json()["id"]
    up = client.post(f"{API}/{rid}/files/contract", files={"file": ("api.pdf", PDF, "image/png")}, headers=h)
    assert up.status_code == 200, up.text
    (item,) = up.json()["contract"]
    assert set(item) == {"id", "name", "size", "content_type", "url"}
    assert (item["name"], item["size"], item["content_type"]) == ("api.pdf", len(PDF), "application/pdf")
    assert item["url"] == f"{API}/{rid}/files/contract/{item['id']}"
    got = client.get(item["url"], headers=h)
    assert got.content == PDF and got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment")
    listed = client.get(API, headers=h).json()["items"][0]
    assert listed["contract"][0]["url"] == item["url"]
    photos = client.post(
        f"{API}/{rid}/files/photos",
        files=[("file", ("a.png", png("red"), "image/png")), ("file", ("b.png", png("blue"), "image/png"))],
        headers=h,
    ).json()["photos"]
    assert len(photos) == 2 and all("thumbnail_url" in p for p in photos)
    assert client.get(photos[0]["thumbnail_url"], headers=h).headers["content-type"] == "image/png"

    # Problem details, never a 500.
    def status(response: Any) -> tuple[int, str]:
        return response.status_code, response.headers["content-type"].split(";")[0]

    assert status(
        client.post(
            f"{API}/{rid}/files/contract",
            files={"file": ("x.pdf", b"MZ\x90\x00exe", "application/pdf")},
            headers=h,
        )
    ) == (415, "application/problem+json")
    assert status(
        client.post(
            f"{API}/{rid}/files/contract",
            files={"file": ("x.pdf", PDF + b"0" * 5000, "application/pdf")},
            headers=h,
        )
    ) == (413, "application/problem+json")
    assert (
        status(
            client.post(
                f"{API}/{rid}/files/contract",
                content=b"%PDF-",
                headers=h | {"content-type": "application/pdf"},
            )
        )[0]
        == 415
    )
    assert status(
        client.post(
            f"{API}/{rid}/files/contract", files={"other": ("x.pdf", PDF, "application/pdf")}, headers=h
        )
    ) == (422, "application/problem+json")
    assert (
        client.post(f"{API}/{rid}/files/title", files={"file": ("x.pdf", PDF, "a/b")}, headers=h).status_code
        == 404
    )
    assert (
        client.post(
            f"{API}/{uuid.uuid4()}/files/contract", files={"file": ("x.pdf", PDF, "a/b")}, headers=h
        ).status_code
        == 404
    )
    assert client.get(f"{API}/{rid}/files/contract/not-a-uuid", headers=h).status_code == 404
    assert client.get(item["url"].replace("/contract/", "/photos/"), headers=h).status_code == 404

    removed = client.delete(item["url"], headers=h)
    assert removed.status_code == 200 and removed.json()["contract"] == []
    assert client.get(item["url"], headers=h).status_code == 404

    # The tenant's OpenAPI document describes the file fields and their endpoints.
    doc = client.get("/api/v1/records/openapi.json", headers=h).json()
    assert "post" in doc["paths"][f"{API}/{{record_id}}/files/contract"]
    assert set(doc["paths"][f"{API}/{{record_id}}/files/photos/{{attachment_id}}"]) == {"get", "delete"}
    schema = doc["components"]["schemas"]
    assert any(
        "contract" in s.get("properties", {}) and s["properties"]["contract"]["type"] == "array"
        for s in schema.values()
    )
