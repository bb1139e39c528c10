"""Shared fixtures: a migrated database per backend (SQLite and PostgreSQL) and a live app client.

PostgreSQL is required when CI=true (unreachable there is a failure, never a skip); elsewhere the
PostgreSQL half is skipped only when the server cannot be reached.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, text

from app.core.settings import load_settings

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ADMIN_EMAIL = "root@portal.test"
ADMIN_PASSWORD = "root-password-1"
_pg_state: dict[str, Any] = {}


def _pg_sync_url() -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", PG_URL)


def pg_available() -> bool:
    if "ok" not in _pg_state:
        try:
            engine = create_engine(_pg_sync_url(), connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_state["ok"] = True
        except Exception as exc:
            _pg_state["ok"] = False
            _pg_state["error"] = str(exc).splitlines()[0]
    return bool(_pg_state["ok"])


# Compiled components are shared by every test of a run (compiling a Python guest takes seconds).
WASM_CACHE = Path(
    os.environ.get("PORTAL_TEST_WASM_CACHE", Path.home() / ".cache" / "portal" / "test-wasm-cache")
)


def _settings_env(tmp: Path, url: str) -> dict[str, str]:
    return {
        "PORTAL_DATA_DIR": str(tmp),
        "DATABASE_URL": url,
        "PORTAL_SECRET_KEY": "test-secret-key-0123456789",
        "PORTAL_ADMIN_EMAIL": ADMIN_EMAIL,
        "PORTAL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PORTAL_WASM_CACHE_DIR": str(WASM_CACHE),
        # The suite can run its guests on another compiler (PORTAL_WASM_COMPILER=winch pytest ...).
        "PORTAL_WASM_COMPILER": os.environ.get("PORTAL_WASM_COMPILER", ""),
    }


def _migrate(url: str, tmp: Path) -> None:
    from app.core.db import upgrade

    upgrade(load_settings(_settings_env(tmp, url)))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sqlite-template")
    db = base / "template.db"
    _migrate(f"sqlite:///{db}", base)
    return db


@pytest.fixture(scope="session")
def pg_migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private database created next to TEST_DATABASE_URL's, so concurrent test runs never collide."""
    global _pg_run_url
    if not pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable in CI: {_pg_state.get('error')}")
        pytest.skip(f"PostgreSQL unreachable ({_pg_state.get('error')})")
    name = f"portal_test_{os.getpid()}"
    admin = create_engine(_pg_sync_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    _pg_run_url = url
    _migrate(url, tmp_path_factory.mktemp("pg"))
    yield url
    _pg_run_url = None
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


_pg_run_url: str | None = None


def reset_pg() -> None:
    """Empty every table (base and plugin) between tests; cheaper than re-migrating."""
    assert _pg_run_url, "reset_pg needs the pg_migrated fixture"
    engine = create_engine(re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", _pg_run_url))
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
        ]
        plugin = [t for t in tables if t.startswith("plugin_")]
        for t in plugin:
            conn.execute(text(f'DROP TABLE IF EXISTS "{t}" CASCADE'))
        base = [t for t in tables if t not in plugin]
        if base:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in base) + " CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated, empty database on each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "portal.db"
        shutil.copy(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_migrated")
    reset_pg()
    return url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port, for the whole session (buckets are per test)."""
    from moto.server import ThreadedMotoServer

    from tests.storage import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def storage_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Where stored files live: the database ({}, the default) or, parametrized "s3" (tests.storage
    BOTH_STORES), a fresh bucket on the moto server."""
    if getattr(request, "param", "database") == "database":
        return {}
    from tests.storage import new_bucket

    return new_bucket(request.getfixturevalue("s3_endpoint"))


@pytest.fixture
def settings_env(db_url: str, tmp_path: Path, storage_env: dict[str, str]) -> dict[str, str]:
    return {**_settings_env(tmp_path, db_url), **storage_env}


@pytest.fixture
def app(settings_env: dict[str, str]) -> Any:
    from app.server import create_app

    return create_app(load_settings(settings_env))


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app=app, base_url="http://testserver.local") as c:
        yield c


def run(coro: Any) -> Any:
    return asyncio.run(coro)
