"""The Litestar application factory."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.htmx import HTMXPlugin
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app import PLATFORM_VERSION, bootstrap
from app.access.cache import PermissionCache
from app.access.scopes import ScopeCache
from app.core.blobs import StorageUnavailable, store_for
from app.core.db import bind_services, make_alchemy_config
from app.core.i18n import Catalogs, Msg
from app.core.settings import Settings, load_settings
from app.events import EventBus
from app.extensions import standard_registry
from app.extensions.hooks import RecordValidators
from app.installs import stored
from app.manifest.labels import Label
from app.messages.mail import Mailer
from app.plugins.runtime import PluginCatalog
from app.records import import_jobs
from app.records.import_jobs import ImportJobs
from app.records.service import RecordHooks
from app.records.views import ViewCache
from app.sandbox import Sandbox
from app.sandbox.delivery import Dispatcher
from app.services import AppServices
from app.web import (
    account_pages,
    api,
    audit_pages,
    auth_pages,
    directory_pages,
    events_pages,
    explain_pages,
    extensions_pages,
    guest_pages,
    health,
    invitation_pages,
    language,
    messages,
    openapi_doc,
    plugin_admin,
    plugin_api,
    plugin_config,
    role_pages,
    workflow_api,
    workflow_pages,
)
from app.web.body_limits import bound_json_body
from app.web.context import SwitcherCache, access_guard, provide_ctx
from app.web.errors import handle_exception
from app.web.menu import Menu
from app.web.records import api as records_api
from app.web.records import routing as records_routing
from app.web.render import template_globals
from app.web.security import csrf_middleware, security_headers
from app.workflow import StartApprovalOnCreate
from app.workflow import guard as approval_guard

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("portal")


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    blob_store = store_for(settings)  # the database or a bucket (PORTAL_STORAGE_URL), shared by every host
    alchemy = make_alchemy_config(settings, blob_store)
    sandbox = Sandbox(settings, alchemy.get_session)
    bus = EventBus()
    # What the app's behaviour is wired through, explicitly (app.services): all of it is this app's own.
    services = AppServices(
        settings=settings,
        record_hooks=RecordHooks(
            insert=(StartApprovalOnCreate(),),  # approvals that start on create (app.workflow)
            validate=(
                approval_guard.ApprovalGuard(),  # decided fields, locked while pending (app.workflow.guard); first:
                # a write it refuses need not run plugin code
                RecordValidators(),  # configured record validators (app.extensions.hooks)
            ),
        ),
        plugin_catalog=PluginCatalog(),  # parsed plugins, enabled plugins per tenant (per worker)
        sandbox=sandbox,
        # Built-in implementations and approval kinds (this app's own), plugins' ones run in its sandbox.
        extension_registry=standard_registry(sandbox),
        mailer=Mailer.from_settings(settings.smtp),
        menu=Menu(),
        bus=bus,
        permission_cache=PermissionCache(),
        scope_cache=ScopeCache(),
        switcher_cache=SwitcherCache(),
        view_cache=ViewCache(),
        catalogs=Catalogs.load(),
        blob_store=blob_store,
        import_jobs=ImportJobs(),
    )
    # Every session of this app (requests, event delivery, guest calls) carries the app's services, so
    # code holding only a session (WASM host API, workflow rules, extension calls) uses this app's.
    bind_services(alchemy, services)
    dispatcher = Dispatcher(
        settings, alchemy.get_session, sandbox, bus, sync_engine=alchemy.get_engine().sync_engine
    )

    async def on_startup(app: Litestar) -> None:
        try:
            await blob_store.check()
        except StorageUnavailable as exc:  # the app starts: uploads answer 503, /health names the store
            log.error("%s (check PORTAL_STORAGE_URL and the AWS_* credentials)", exc.detail)
        async with alchemy.get_session() as session:
            await bootstrap.ensure_base(session, settings)
            await session.commit()
            # Packages an earlier version kept only under this host's data dir go into the database.
            if await stored.import_local_packages(session, settings.data_dir):
                await session.commit()
            # Compile (in the background) any installed component missing from the compile cache.
            for plugin in await services.plugin_catalog.installed(session):
                sandbox.start_compile(plugin)
            # Imports whose process died mid-file (no progress for a while) are failed, not "running".
            if await import_jobs.mark_lost(session):
                await session.commit()
        dispatcher.start()  # delivers events after their commit, and sweeps for ones left by others

    async def on_shutdown(app: Litestar) -> None:
        await services.import_jobs.stop()  # each stopped job is marked failed, its batches kept
        await dispatcher.stop()
        if services.mailer is not None:
            await services.mailer.drain()
        await sandbox.drain()
        sandbox.close()
        await blob_store.drain()
        blob_store.close()

    static = create_static_files_router(
        path="/static", directories=[ROOT / "static"], opt={"public": True}, include_in_schema=False
    )
    app = Litestar(
        route_handlers=[
            *auth_pages.ROUTES,
            *health.ROUTES,
            *directory_pages.ROUTES,
            *role_pages.ROUTES,
            *audit_pages.ROUTES,
            *explain_pages.ROUTES,
            *account_pages.ROUTES,
            *events_pages.ROUTES,
            *api.ROUTES,
            *records_api.ROUTES,
            *openapi_doc.ROUTES,
            *guest_pages.ROUTES,
            *messages.ROUTES,
            *invitation_pages.ROUTES,
            *language.ROUTES,
            *workflow_pages.ROUTES,
            *workflow_api.ROUTES,
            *plugin_admin.ROUTES,
            *plugin_api.ROUTES,
            *plugin_config.ROUTES,
            *extensions_pages.ROUTES,
            *records_routing.ROUTES,
            static,
        ],
        plugins=[SQLAlchemyPlugin(config=alchemy), HTMXPlugin()],
        guards=[access_guard],
        dependencies={"ctx": Provide(provide_ctx)},
        template_config=TemplateConfig(
            directory=ROOT / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=lambda engine: template_globals(engine, reload=settings.debug),
        ),
        # CSRF on every state-changing request but bearer-token API calls; CSP and friends on every response.
        middleware=[csrf_middleware(settings)],
        before_send=[security_headers(settings)],
        openapi_config=OpenAPIConfig(
            title="Portal API",
            version=PLATFORM_VERSION,
            path="/api/schema",
            render_plugins=[JsonRenderPlugin()],
            openapi_router=Router(path="/api/schema", route_handlers=[], opt={"public": True}),
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"bearer": []}],
        ),
        exception_handlers={Exception: handle_exception},
        # Translatable messages and manifest labels are `str` subclasses, which msgspec does not encode:
        # JSON gets their (English) text.
        type_encoders={Msg: str, Label: str},
        before_request=bound_json_body,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        debug=settings.debug,
        state=State(
            {
                "settings": settings,
                "alchemy": alchemy,
                "services": services,
                "permission_cache": services.permission_cache,
                "scope_cache": services.scope_cache,
                "switcher_cache": services.switcher_cache,
                "bus": bus,
                "sandbox": sandbox,
                "events": dispatcher,
            }
        ),
    )
    return app


# Young-generation threshold for serving workers. A request allocates tens of thousands of objects
# that die when it ends; with CPython's default (700) the collector scans them several times per
# request. Measured with callgrind on a list page: 27.6 M instructions per request by default,
# 26.8 M with the start-up objects frozen, 26.4 M with this threshold too.
GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    """After start-up: move everything loaded so far (modules, templates, manifests, caches) out of
    the collector's sight (it is never garbage), and collect young objects less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def app_factory() -> Any:
    """Entry point for uvicorn worker processes (`--factory`)."""
    app = create_app()
    app.on_startup.append(_tune_gc)  # last: after the plugin catalog and caches are loaded
    return app
