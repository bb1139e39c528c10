"""The object store in tests: moto's S3 server (moto[server]) on a free port, one per test session, a
bucket of its own per test. `storage_env` (tests/conftest.py) is {} for the database store and the
PORTAL_STORAGE_URL + credentials of a fresh bucket for "s3"; `BOTH_STORES` runs a test with each."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "portal-test", "AWS_SECRET_ACCESS_KEY": "portal-test-secret"}
# Run a test (its app and in_db sessions) over the database store and over a bucket.
BOTH_STORES = pytest.mark.parametrize("storage_env", ["database", "s3"], indirect=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def new_bucket(endpoint: str, prefix: str = "files") -> dict[str, str]:
    """A fresh bucket on the server and the settings naming it."""
    bucket = f"portal-{uuid.uuid4().hex[:16]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return {
        "PORTAL_STORAGE_URL": f"s3://{bucket}/{prefix}?endpoint={endpoint}&region={REGION}",
        **CREDENTIALS,
    }


def objects(app: Any) -> set[str]:
    """The sha256s the app's bucket holds (set() for the database store)."""
    storage = app.state.settings.storage
    if storage.kind != "s3":
        return set()
    listed = s3_client(storage.endpoint).list_objects_v2(Bucket=storage.bucket, Prefix=storage.prefix)
    return {o["Key"][len(storage.prefix) :] for o in listed.get("Contents", [])}


async def check_placement(session: Any, app: Any) -> int:
    """Every stored_blobs row is where the app's store puts it: bytes in the row (database), or no bytes
    in the row and an object in the bucket (s3). Returns the number of rows."""
    import sqlalchemy as sa

    from app.core.models import StoredBlob

    rows = (
        await session.execute(sa.select(StoredBlob.sha256, StoredBlob.location, StoredBlob.content))
    ).all()
    if app.state.settings.storage.kind == "s3":
        assert all(location == "s3" and content is None for _, location, content in rows), rows
        assert {sha for sha, _, _ in rows} <= objects(app)
    else:
        assert all(location == "database" and content is not None for _, location, content in rows)
    return len(rows)
