"""The database: engine and session configuration shared by the web app, the CLI and the tests, the
SQLite write-lock convention, and applying the base migrations (Alembic through advanced-alchemy)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from advanced_alchemy.extensions.litestar.plugins.init.config.asyncio import autocommit_handler_maker
from sqlalchemy import event

from app.core import attachments as _attachments  # noqa: F401  (registers the attachments table)
from app.core.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.core.blobs import BlobStore

# Execution option: begin this connection's SQLite transaction IMMEDIATE (take the write lock first).
# Work that reads and then writes while others may write too (write requests, event deliveries,
# background guest calls) uses it, so it waits for the other writer instead of failing when that one
# commits between its reads and its writes (SQLite refuses a write from a stale read snapshot).
SQLITE_WRITE_LOCK = "portal_sqlite_write_lock"
# Execution option: this connection only reads (a route with opt {"reads": True}), so its statements
# run without a transaction: no BEGIN and COMMIT round trips (PostgreSQL: autocommit at the driver;
# SQLite: no BEGIN is sent). Each statement is atomic on its own, which is all a read needs.
READS_ONLY = "portal_reads_only"
# Key under which every session carries the app's services (app.services.AppServices) in its `info`.
SERVICES_KEY = "portal_services"
_KEPT = (SQLITE_WRITE_LOCK, READS_ONLY, "isolation_level")


def reads_options(is_sqlite: bool) -> dict[str, Any]:
    return {READS_ONLY: True} if is_sqlite else {READS_ONLY: True, "isolation_level": "AUTOCOMMIT"}


async def read_without_transaction(session: AsyncSession, is_sqlite: bool) -> None:
    """From here on (until `transaction_from_here`), `session` sends its reads without BEGIN/COMMIT."""
    await session.connection(execution_options=reads_options(is_sqlite))


def _options(session: AsyncSession) -> dict[str, Any]:
    """The kept execution options of the session's current connection ({} when it has none yet)."""
    transaction = session.sync_session.get_transaction()
    if transaction is None:
        return {}
    bind = session.sync_session.get_bind()
    conn = transaction._connections.get(bind)
    if conn is None:
        return {}
    opts = conn[0].get_execution_options()
    return {k: opts[k] for k in _KEPT if k in opts}


def reads_only(session: AsyncSession) -> bool:
    """Whether `session` is in a read-only start (READS_ONLY): its statements run without a transaction."""
    return bool(_options(session).get(READS_ONLY))


async def transaction_from_here(session: AsyncSession) -> None:
    """End a read-only start (READS_ONLY): the next statement opens a transaction as usual. Code that
    may write (plugin pages, guest calls) runs after this."""
    if _options(session).get(READS_ONLY):
        await session.commit()  # no round trip: nothing was begun on the wire


async def commit_keeping_write_lock(session: AsyncSession) -> None:
    """Commit mid-request (a session or token touch) without losing SQLITE_WRITE_LOCK or READS_ONLY: the
    request's next transaction begins IMMEDIATE again when this one did (instead of as a plain deferred
    one), and a read-only request goes on without a transaction."""
    await session.connection()
    kept = _options(session)
    await session.commit()
    if kept:
        await session.connection(execution_options=kept)


ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = ROOT / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling skips BEGIN before a SAVEPOINT, which would make every
    # savepoint commit on its own; take over: autocommit at the driver, explicit BEGIN below.
    dbapi_connection.isolation_level = None
    # WAL lets readers and one writer work at once; busy_timeout waits instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    if conn.get_execution_options().get(READS_ONLY):
        return  # the driver autocommits each statement
    conn.exec_driver_sql(
        "BEGIN IMMEDIATE" if conn.get_execution_options().get(SQLITE_WRITE_LOCK) else "BEGIN"
    )


def make_alchemy_config(settings: Settings, blob_store: BlobStore | None = None) -> SQLAlchemyAsyncConfig:
    """The SQLAlchemy config of an app or a command. Its sessions carry `blob_store` (app.core.blobs;
    by default the one PORTAL_STORAGE_URL names, made here for a command's short life)."""
    engine_config = EngineConfig() if settings.is_sqlite else EngineConfig(pool_size=10, max_overflow=10)
    config = SQLAlchemyAsyncConfig(
        connection_string=settings.database_url,
        engine_config=engine_config,
        session_config=AsyncSessionConfig(expire_on_commit=False),
        alembic_config=AlembicAsyncConfig(script_location=str(MIGRATIONS_DIR)),
        create_all=False,
    )
    if blob_store is None:
        from app.core.blobs import store_for  # blobs -> errors -> i18n -> this module: not at import

        blob_store = store_for(settings)
    bind_blob_store(config, blob_store)
    # advanced-alchemy keeps every config's state keys in class-level registries and renames a repeated
    # key recursively (`_1`, `_2`, ...), for several configs in one app. Portal has one config per app
    # (scope and app state are per app), so release the keys: a process that builds many apps (the
    # test suite, `portal` commands) would otherwise hit the recursion limit after ~900 of them.
    cls = type(config)
    cls._SESSION_SCOPE_KEY_REGISTRY.discard(config.session_scope_key)
    cls._ENGINE_APP_STATE_KEY_REGISTRY.discard(config.engine_app_state_key)
    cls._SESSIONMAKER_APP_STATE_KEY_REGISTRY.discard(config.session_maker_app_state_key)
    # A handler's writes commit with a 2xx or 3xx response (POST → redirect) and roll back otherwise.
    # The scope key is per config object, so the handler must be told which one to look for.
    config.before_send_handler = autocommit_handler_maker(
        commit_on_redirect=True, session_scope_key=config.session_scope_key
    )
    if settings.is_sqlite:
        engine = config.get_engine().sync_engine
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return config


def bind_services(config: SQLAlchemyAsyncConfig, services: Any) -> None:
    """Make every session `config` opens carry `services` (app.services.AppServices) in its `info`,
    and the services' blob store. Called by create_app before the app opens any session."""
    info = config.session_config.info
    assert isinstance(info, dict)  # advanced-alchemy normalises it to a private dict per config
    info[SERVICES_KEY] = services
    bind_blob_store(config, services.blob_store)


def bind_blob_store(config: SQLAlchemyAsyncConfig, store: BlobStore) -> None:
    from app.core.blobs import BLOB_STORE_KEY

    info = config.session_config.info
    assert isinstance(info, dict)
    info[BLOB_STORE_KEY] = store


def upgrade(settings: Settings, *, quiet: bool = True) -> None:
    """Bring the base tables to the newest revision. Must run outside an event loop."""
    commands = AlembicCommands(sqlalchemy_config=make_alchemy_config(settings))
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        commands.upgrade(revision="head")
