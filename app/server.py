"""The Litestar application factory."""

from __future__ import annotations

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

from app import PLATFORM_VERSION, extensions
from app.access.cache import PermissionCache
from app.access.scopes import ScopeCache
from app.db.engine import make_alchemy_config
from app.events import EventBus
from app.events.delivery import Dispatcher
from app.extensions import hooks as extension_hooks
from app.identity import bootstrap
from app.messages import mail
from app.plugins import runtime
from app.sandbox import Sandbox
from app.settings import Settings, load_settings
from app.web import (
    admin_pages,
    api,
    auth_pages,
    events_pages,
    extensions_pages,
    guest_pages,
    invitation_pages,
    messages,
    plugin_admin,
    plugin_config,
    workflow_pages,
)
from app.web.body_limits import bound_json_body
from app.web.context import SwitcherCache, access_guard, provide_ctx
from app.web.errors import handle_exception
from app.web.records import api as records_api
from app.web.records import routing as records_routing
from app.web.render import template_globals
from app.web.security import csrf_middleware, security_headers
from app.workflow import install_hooks

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("portal")


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    alchemy = make_alchemy_config(settings)
    install_hooks()  # approvals that start on create

    sandbox = Sandbox(settings, alchemy.get_session)
    extensions.configure(sandbox)  # extension points call plugin code through the app's sandbox
    extension_hooks.install()  # configured conditions/selectors in processes; record validators
    bus = EventBus()
    dispatcher = Dispatcher(settings, alchemy.get_session, sandbox, bus, sync_engine=alchemy.get_engine().sync_engine)
    mail.configure(settings.smtp)

    async def on_startup(app: Litestar) -> None:
        async with alchemy.get_session() as session:
            await bootstrap.ensure_base(session, settings)
            await session.commit()
            # Compile (in the background) any installed component missing from the compile cache.
            for plugin in await runtime.installed(session):
                sandbox.start_compile(plugin)
        dispatcher.start()  # delivers events after their commit, and sweeps for ones left by others

    async def on_shutdown(app: Litestar) -> None:
        await dispatcher.stop()
        await mail.drain()
        await sandbox.drain()
        sandbox.close()

    static = create_static_files_router(path="/static", directories=[ROOT / "static"], opt={"public": True},
                                        include_in_schema=False)
    app = Litestar(
        route_handlers=[*auth_pages.ROUTES, *admin_pages.ROUTES, *events_pages.ROUTES, *api.ROUTES, *records_api.ROUTES, *guest_pages.ROUTES, *messages.ROUTES, *invitation_pages.ROUTES, *workflow_pages.ROUTES, *plugin_admin.ROUTES, *plugin_config.ROUTES, *extensions_pages.ROUTES, *records_routing.ROUTES, static],
        plugins=[SQLAlchemyPlugin(config=alchemy), HTMXPlugin()],
        guards=[access_guard],
        dependencies={"ctx": Provide(provide_ctx)},
        template_config=TemplateConfig(directory=ROOT / "templates", engine=JinjaTemplateEngine,
                                       engine_callback=template_globals),
        # CSRF on every state-changing request but bearer-token API calls; CSP and friends on every response.
        middleware=[csrf_middleware(settings)],
        before_send=[security_headers(settings)],
        openapi_config=OpenAPIConfig(
            title="Portal API", version=PLATFORM_VERSION, path="/api/schema",
            render_plugins=[JsonRenderPlugin()],
            openapi_router=Router(path="/api/schema", route_handlers=[], opt={"public": True}),
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"bearer": []}],
        ),
        exception_handlers={Exception: handle_exception},
        before_request=bound_json_body,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        debug=settings.debug,
        state=State({"settings": settings, "alchemy": alchemy, "permission_cache": PermissionCache(),
                     "scope_cache": ScopeCache(), "switcher_cache": SwitcherCache(),
                     "bus": bus, "sandbox": sandbox,
                     "events": dispatcher}),
    )
    return app


def app_factory() -> Any:
    """Entry point for uvicorn worker processes (`--factory`)."""
    return create_app()
