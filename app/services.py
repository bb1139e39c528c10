"""The application's services: one explicit object per app, built by the composition root (app.server).

Everything that used to live in module-global registries (record hooks, the extension registry and its
sandbox, the mailer, the plugin catalog, the menu, the blob store) is an attribute of `AppServices`. `create_app` builds
it, stores it in `app.state.services` (handlers reach it through `RequestContext.services`), and binds it
to every session the app's SQLAlchemy config makes (`session.info[SERVICES_KEY]`), so code that only holds
a session — the WASM host API, event delivery, workflow rules, extension calls — reaches the services of
the app that opened that session, never another app's. Two apps in one process share nothing here.

A session made outside any app (a CLI command, a test's own engine) carries no services: `services_of`
answers None and callers fall back to "no hooks, no mailer, no sandbox" and a per-session plugin catalog.

This module is a leaf: it imports the service types only for type checking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.core.db import SERVICES_KEY

if TYPE_CHECKING:
    from app.access.cache import PermissionCache
    from app.access.scopes import ScopeCache
    from app.core.blobs import BlobStore
    from app.core.i18n import Catalogs
    from app.core.settings import Settings
    from app.events import EventBus
    from app.extensions import ExtensionRegistry
    from app.messages.mail import Mailer
    from app.plugins.runtime import PluginCatalog
    from app.records.import_jobs import ImportJobs
    from app.records.service import RecordHooks
    from app.records.views import ViewCache
    from app.sandbox import Sandbox
    from app.web.context import SwitcherCache
    from app.web.menu import Menu


@dataclass(frozen=True, eq=False)
class AppServices:
    settings: Settings
    record_hooks: RecordHooks  # what every RecordService of this app runs on insert / before writes
    plugin_catalog: PluginCatalog  # parsed plugins and the per-worker "enabled in tenant" cache
    sandbox: Sandbox  # runs plugin WebAssembly (pages, events, extension implementations)
    extension_registry: ExtensionRegistry  # built-in implementations + the sandbox for plugin ones
    mailer: Mailer | None  # notification email (None: SMTP not configured)
    menu: Menu  # the base navigation items
    bus: EventBus
    # Per-worker caches keyed by database version counters.
    permission_cache: PermissionCache
    scope_cache: ScopeCache
    switcher_cache: SwitcherCache
    view_cache: ViewCache  # saved views and share roles per tenant (views_version, policy_version)
    catalogs: Catalogs  # the gettext catalogs of the interface's languages (app/locale)
    blob_store: BlobStore  # where stored files live (PORTAL_STORAGE_URL: the database or a bucket)
    import_jobs: ImportJobs  # this process's running background CSV imports (app.records.import_jobs)


def services_of(session: Any) -> AppServices | None:
    """The services of the app whose SQLAlchemy config opened `session` (None outside an app)."""
    return session.info.get(SERVICES_KEY)
