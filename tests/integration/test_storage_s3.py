"""Stored files in an S3-compatible bucket (moto's server, started by the tests), on both databases:
two hosts over one database and one bucket serve the same file, stored once; a purge removes the object
after its commit (a rollback keeps it); a store that is missing or unreachable gives a 503 naming it
and a /health that says so; a damaged object is refused; `portal storage copy` moves files kept in the
database into the bucket and `sweep` clears objects nothing names. (The file-field, plugin package and
several-host tests run over the bucket too: tests.storage.BOTH_STORES.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from litestar.testing import TestClient

from app.cli import main
from app.core import blob_upkeep
from app.core.blobs import store_of
from app.core.models import StoredBlob
from app.core.settings import SettingsError, storage_settings
from app.records.files import RecordFiles
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, WASM_CACHE, _settings_env
from tests.helpers import api_token, bearer
from tests.integration.test_record_files import API, PDF, install_docs, service
from tests.integration.test_record_pages import in_db
from tests.integration.test_several_hosts import _host
from tests.storage import check_placement, free_port, new_bucket, objects, s3_client

SHA = hashlib.sha256(PDF).hexdigest()


def _client(app: Any) -> TestClient[Any]:
    return TestClient(app=app, base_url="http://testserver.local")


def _record_with_file(client: TestClient[Any], h: dict[str, str]) -> str:
    """A folder with PDF in its contract field (through the API); returns the file's URL."""
    made = client.post(API, json={"title": "Shared"}, headers=h)
    assert made.status_code == 201, made.text
    up = client.post(
        f"{API}/{made.json()['id']}/files/contract", files={"file": ("c.pdf", PDF, "a/b")}, headers=h
    )
    assert up.status_code == 200, up.text
    return str(up.json()["contract"][0]["url"])


def test_two_hosts_over_one_database_and_one_bucket_see_the_same_file(
    db_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    bucket = new_bucket(s3_endpoint)
    app_a = _host(db_url, tmp_path / "a", WASM_CACHE, bucket)
    app_b = _host(db_url, tmp_path / "b", WASM_CACHE, bucket)
    install_docs(app_a, tmp_path)
    with _client(app_a) as client_a, _client(app_b) as client_b:
        h_a = bearer(api_token(client_a, ADMIN_EMAIL, ADMIN_PASSWORD), "acme")
        url = _record_with_file(client_a, h_a)
        h_b = bearer(api_token(client_b, ADMIN_EMAIL, ADMIN_PASSWORD), "acme")
        got = client_b.get(url, headers=h_b)
        assert got.status_code == 200 and got.content == PDF
        again = _record_with_file(client_b, h_b)  # the same bytes uploaded on B: stored once
        assert client_a.get(again, headers=h_a).content == PDF
    assert SHA in objects(app_a)
    rows = in_db(app_b, lambda s: check_placement(s, app_b))  # every row: no content, an object
    assert rows == len(objects(app_a))  # one object per stored file, the PDF's once
    for host in ("a", "b"):  # nothing of the files under either host's data dir
        assert not [p for p in (tmp_path / host).rglob("*") if p.is_file() and p.read_bytes() == PDF]


async def _purge_record(s: Any, record_id: str) -> None:
    svc, ref = await service(s)
    await svc.delete(ref, record_id)
    assert await RecordFiles(svc).purge(ref, [uuid.UUID(record_id)]) == 1


def test_bytes_purged_on_one_host_are_written_again_by_the_other(
    db_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    """Host A staged the PDF moments ago; host B purges it (row and object); A's next upload of the
    same bytes must write the object again, not trust what it wrote before."""
    bucket = new_bucket(s3_endpoint)
    app_a = _host(db_url, tmp_path / "a", WASM_CACHE, bucket)
    app_b = _host(db_url, tmp_path / "b", WASM_CACHE, bucket)
    install_docs(app_a, tmp_path)
    with _client(app_a) as client_a:
        h = bearer(api_token(client_a, ADMIN_EMAIL, ADMIN_PASSWORD), "acme")
        first = _record_with_file(client_a, h)
        in_db(app_b, lambda s: _purge_record(s, first.split("/")[-4]))
        asyncio.run(app_b.state.services.blob_store.drain())
        assert SHA not in objects(app_a)
        again = _record_with_file(client_a, h)
        assert SHA in objects(app_a) and client_a.get(again, headers=h).content == PDF


def test_a_purge_removes_the_object_after_its_commit_only(
    db_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    app = _host(db_url, tmp_path / "h", WASM_CACHE, new_bucket(s3_endpoint))
    install_docs(app, tmp_path)
    with _client(app) as client:
        url = _record_with_file(client, bearer(api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD), "acme"))
    record_id = url.split("/")[-4]

    class RolledBack(Exception):
        pass

    async def purge(s: Any, keep: bool) -> None:
        await _purge_record(s, record_id)
        if keep:
            raise RolledBack

    with pytest.raises(RolledBack):
        in_db(app, lambda s: purge(s, keep=True))
    asyncio.run(app.state.services.blob_store.drain())
    assert SHA in objects(app)  # rolled back: row and object stay
    in_db(app, lambda s: purge(s, keep=False))
    asyncio.run(app.state.services.blob_store.drain())
    assert SHA not in objects(app)
    assert in_db(app, lambda s: s.scalar(sa.select(StoredBlob.id).where(StoredBlob.sha256 == SHA))) is None


def test_a_missing_or_unreachable_store_is_a_503_naming_it(
    db_url: str, tmp_path: Path, s3_endpoint: str, capfd: pytest.CaptureFixture[str]
) -> None:
    good = new_bucket(s3_endpoint)
    install_docs(_host(db_url, tmp_path / "ok", WASM_CACHE, good), tmp_path)  # its package in a bucket
    missing = {**good, "PORTAL_STORAGE_URL": f"s3://portal-nowhere/f?endpoint={s3_endpoint}"}
    app = _host(db_url, tmp_path / "h", WASM_CACHE, missing)
    with _client(app) as client:
        said = capfd.readouterr().err  # at start, on the portal's log
        assert "The file store s3://portal-nowhere/f/ is unavailable: there is no bucket" in said
        health = client.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["storage"] == "unavailable"
        assert "s3://portal-nowhere/f/" in health.json()["storage_detail"]
        h = bearer(api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD), "acme")
        made = client.post(API, json={"title": "No store"}, headers=h).json()
        up = client.post(
            f"{API}/{made['id']}/files/contract", files={"file": ("c.pdf", PDF, "a/b")}, headers=h
        )
        assert up.status_code == 503 and up.headers["content-type"].startswith("application/problem+json")
        assert "s3://portal-nowhere/f/ is unavailable: NoSuchBucket" in up.json()["detail"]
        assert client.get(f"{API}/{made['id']}", headers=h).json()["contract"] == []  # nothing attached

    port = free_port()  # nothing listens there
    away = {**missing, "PORTAL_STORAGE_URL": f"s3://portal-away?endpoint=http://127.0.0.1:{port}"}
    with _client(_host(db_url, tmp_path / "h2", WASM_CACHE, away)) as client:
        body = client.get("/health").json()
        assert body["status"] == "ok" and body["storage"] == "unavailable"
        assert f"cannot connect to http://127.0.0.1:{port}" in body["storage_detail"]


def test_a_damaged_object_is_refused_on_read(db_url: str, tmp_path: Path, s3_endpoint: str) -> None:
    app = _host(db_url, tmp_path / "h", WASM_CACHE, new_bucket(s3_endpoint))
    install_docs(app, tmp_path)
    storage = app.state.settings.storage
    with _client(app) as client:
        h = bearer(api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD), "acme")
        url = _record_with_file(client, h)
        assert client.get("/health").json() == {"status": "ok", "storage": "ok"}
        s3_client(s3_endpoint).put_object(
            Bucket=storage.bucket, Key=f"{storage.prefix}{SHA}", Body=b"%PDF-evil"
        )
        got = client.get(url, headers=h)
        assert got.status_code == 503 and "is damaged" in got.json()["detail"]


def test_storage_copy_moves_database_files_into_the_bucket_and_sweep_clears_strays(
    db_url: str, tmp_path: Path, s3_endpoint: str
) -> None:
    before = _host(db_url, tmp_path / "h", WASM_CACHE)  # database storage
    install_docs(before, tmp_path)
    with _client(before) as client:
        url = _record_with_file(client, bearer(api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD), "acme"))
    bucket = new_bucket(s3_endpoint)
    env = {**_settings_env(tmp_path / "h", db_url), **bucket}
    copied = CliRunner().invoke(main, ["storage", "copy", "--batch", "2"], env=env)
    assert copied.exit_code == 0, copied.output
    after = _host(db_url, tmp_path / "h", WASM_CACHE, bucket)
    count = in_db(after, lambda s: check_placement(s, after))  # all moved: rows empty, objects there
    assert f"Copied {count} file(s)" in copied.output and SHA in objects(after)
    with _client(after) as client:
        got = client.get(url, headers=bearer(api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD), "acme"))
        assert got.content == PDF
    again = CliRunner().invoke(main, ["storage", "copy"], env=env)
    assert "Copied 0 file(s)" in again.output  # nothing left to move
    checked = CliRunner().invoke(main, ["storage", "check"], env=env)
    assert checked.exit_code == 0 and "it answers" in checked.output

    stray = hashlib.sha256(b"left behind").hexdigest()
    storage = after.state.settings.storage
    s3_client(s3_endpoint).put_object(
        Bucket=storage.bucket, Key=f"{storage.prefix}{stray}", Body=b"left behind"
    )
    time.sleep(1.1)  # older than the sweep's cut-off below
    swept = in_db(after, lambda s: blob_upkeep.sweep(s, store_of(s), dt.timedelta(seconds=1)))
    assert swept == [stray] and SHA in objects(after)
    refused = CliRunner().invoke(main, ["storage", "copy"], env=_settings_env(tmp_path / "h", db_url))
    assert refused.exit_code == 2 and "needs PORTAL_STORAGE_URL=s3://" in refused.output


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://bucket", "use database, or s3://"),
        ("s3://Bad_Bucket/x", "is not an S3 bucket name"),
        ("s3://bucket/x?endpoint=localhost:9000", "endpoint must be an http://"),
        ("s3://bucket/x?regoin=eu", "unknown option 'regoin'"),
        ("s3://bucket/x?addressing=dns", "addressing must be path or virtual"),
    ],
)
def test_a_bad_storage_url_is_one_line_naming_it(url: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        storage_settings({"PORTAL_STORAGE_URL": url})


def test_the_storage_url_read() -> None:
    s = storage_settings(
        {
            "PORTAL_STORAGE_URL": "s3://files.example/portal/prod/?endpoint=https://minio:9000&region=eu-west-1",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "secret",
        }
    )
    assert (s.kind, s.bucket, s.prefix, s.endpoint, s.region, s.addressing) == (
        "s3",
        "files.example",
        "portal/prod/",
        "https://minio:9000",
        "eu-west-1",
        "path",
    )
    assert "secret" not in repr(s) and s.name == "s3://files.example/portal/prod/"
    assert (
        storage_settings({}).kind == storage_settings({"PORTAL_STORAGE_URL": "database"}).kind == "database"
    )
    with pytest.raises(SettingsError, match="must be set together"):
        storage_settings({"PORTAL_STORAGE_URL": "s3://bucket", "AWS_ACCESS_KEY_ID": "k"})
