"""The file-read host function through a real component (tests/fixtures/guests/probe): a plugin with
`files = true` reads a record's file (metadata and bytes) through the record service; another tenant's
file is out of reach, and a plugin without the capability is refused."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest

from app.audit import Actor
from app.identity import directory
from app.plugins import runtime
from app.records.files import RecordFiles, Upload, prepare
from app.records.service import RecordService
from tests.helpers import text_of
from tests.integration.test_record_pages import in_db
from tests.integration.test_sandbox import install_probes, probe_packages  # noqa: F401 (fixture)
from tests.storage import BOTH_STORES

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def note_with_file(client: Any, app: Any, probe_packages: dict[str, Path]) -> dict[str, str]:
    install_probes(client, app, probe_packages)

    async def work(s: Any) -> dict[str, str]:
        tenant = await directory.get_tenant(s, "acme")
        ref = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
        svc = RecordService(s, tenant.id, Actor(None, "test"), lambda _p: True)
        row = await svc.insert(ref, {"title": "with a file"})
        after = await RecordFiles(svc).change(
            ref, row["id"], "doc", add=[await prepare(ref.spec.field("doc"), Upload("c.pdf", PDF))]
        )
        return {"id": str(row["id"]), "file": after["doc"][0]["id"]}

    return in_db(app, work)  # type: ignore[no-any-return]


def shown(response: Any) -> str:
    return html.unescape(text_of(response.text))


@BOTH_STORES
def test_a_plugin_reads_a_records_file(client: Any, note_with_file: dict[str, str]) -> None:
    params = {"mode": "file", **note_with_file}
    page = shown(client.get("/t/acme/p/probe/probe", params=params))
    assert f"file=c.pdf application/pdf {len(PDF)} read={len(PDF)} b'%PDF-'" in page, page[:600]
    # Another tenant's call cannot reach acme's record or its file.
    other = shown(client.get("/t/globex/p/probe/probe", params=params))
    assert "refused: file-read: No Note with id" in other, other[:600]
    # A plugin without `files = true` is refused, whatever it asks.
    nodb = shown(client.get("/t/acme/p/probe-nodb/probe-nodb", params=params))
    assert "does not have the 'files' capability" in nodb, nodb[:600]
