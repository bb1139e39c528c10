"""Two apps in one process share no state: each has its own AppServices (app.services) — record hooks,
plugin catalog, extension registry, mailer, menu and caches — and its sessions carry its own.

The apps run on two SQLite databases cloned from one another, so the tenant ids, the users and the policy
versions are the same in both: a process-wide cache keyed by (tenant, versions) would hand one app's
plugins to the other. They then differ: A enables inventory, has an auto-start approval process and sends
email through SMTP; B enables crm and has no SMTP.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from litestar.testing import TestClient

from app import messages
from app.audit import Actor
from app.core.models import Tenant, User, WorkflowInstance
from app.core.settings import SYSTEM_TENANT_ID, load_settings
from app.identity import directory
from app.installs import lifecycle
from app.plugins.packages import read_folder
from app.server import create_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, _settings_env
from tests.helpers import api_token, bearer
from tests.integration.test_messages_email import Sink, free_port
from tests.integration.test_record_pages import in_db, manifest_only

ACTOR = Actor(None, "test")
SYSTEM = uuid.UUID(SYSTEM_TENANT_ID)


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler, port = Sink(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def two_apps(sqlite_template: Path, tmp_path: Path, sink: tuple[Sink, int]) -> Iterator[dict[str, Any]]:
    dirs = {name: tmp_path / name for name in ("a", "b")}
    for folder in dirs.values():
        folder.mkdir()
    (dirs["a"] / "portal.db").write_bytes(sqlite_template.read_bytes())
    env = {name: _settings_env(folder, f"sqlite:///{folder / 'portal.db'}") for name, folder in dirs.items()}
    env["a"] |= {
        "PORTAL_SMTP_HOST": "127.0.0.1",
        "PORTAL_SMTP_PORT": str(sink[1]),
        "PORTAL_SMTP_FROM": "portal@a.test",
    }
    app_a = create_app(load_settings(env["a"]))
    with TestClient(app=app_a, base_url="http://testserver.local") as client_a:
        acme = in_db(app_a, lambda s: _tenant(s))
        # B starts as a copy of A: the same tenant, admin and policy versions.
        with (
            sqlite3.connect(dirs["a"] / "portal.db") as source,
            sqlite3.connect(dirs["b"] / "portal.db") as target,
        ):
            source.backup(target)
        app_b = create_app(load_settings(env["b"]))
        with TestClient(app=app_b, base_url="http://testserver.local") as client_b:
            for app, plugin in ((app_a, "inventory"), (app_b, "crm")):
                folder = manifest_only(plugin, tmp_path / plugin)

                async def enable(s: Any, app: Any = app, plugin: str = plugin, folder: Path = folder) -> None:
                    await lifecycle.upload(
                        s, ACTOR, read_folder(folder), app.state.settings, install_now=True
                    )
                    await lifecycle.enable(s, ACTOR, acme, plugin)

                in_db(app, enable)
            yield {
                "a": app_a,
                "b": app_b,
                "acme": acme,
                "sink": sink[0],
                "client": {"a": client_a, "b": client_b},
                "root": {
                    "a": api_token(client_a, ADMIN_EMAIL, ADMIN_PASSWORD),
                    "b": api_token(client_b, ADMIN_EMAIL, ADMIN_PASSWORD),
                },
            }


async def _tenant(s: Any) -> uuid.UUID:
    return (await directory.create_tenant(s, ACTOR, "acme", "Acme")).id


def _versions(app: Any, tenant_id: uuid.UUID) -> tuple[int, int]:
    async def work(s: Any) -> tuple[int, int]:
        rows = dict(
            (
                await s.execute(
                    sa.select(Tenant.id, Tenant.policy_version).where(Tenant.id.in_([tenant_id, SYSTEM]))
                )
            ).all()
        )
        return rows[tenant_id], rows[SYSTEM]

    return in_db(app, work)  # type: ignore[no-any-return]


def _instances(app: Any) -> int:
    async def work(s: Any) -> int:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(WorkflowInstance)))

    return in_db(app, work)  # type: ignore[no-any-return]


def test_two_apps_in_one_process_share_no_state(
    two_apps: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = two_apps
    a, b, acme = w["a"], w["b"], w["acme"]

    def api(name: str, method: str, path: str, **kw: Any) -> Any:
        return w["client"][name].request(method, path, headers=bearer(w["root"][name], "acme"), **kw)

    # Same tenant id and versions in both databases: only the app's own catalog tells them apart.
    assert _versions(a, acme) == _versions(b, acme)
    sa_, sb = a.state.services, b.state.services
    assert sa_ is not sb and sa_.plugin_catalog is not sb.plugin_catalog
    assert sa_.record_hooks.insert[0] is not sb.record_hooks.insert[0]
    # The approval guard and the validators hook each keep a per-app cache.
    assert all(x is not y for x, y in zip(sa_.record_hooks.validate, sb.record_hooks.validate, strict=True))
    assert (
        sa_.extension_registry.sandbox is a.state.sandbox and sb.extension_registry.sandbox is b.state.sandbox
    )

    # --- plugins: each app serves (and caches) only its own enabled plugins ---------------------------
    for _ in range(2):  # the second round is served from each app's per-worker cache
        assert api("a", "GET", "/api/v1/plugins/inventory/purchase_order").status_code == 200
        assert api("b", "GET", "/api/v1/plugins/inventory/purchase_order").status_code == 404
        assert api("b", "GET", "/api/v1/plugins/crm/customer").status_code == 200
        assert api("a", "GET", "/api/v1/plugins/crm/customer").status_code == 404
    cached = {
        name: [p.id for p in app.state.services.plugin_catalog._enabled_by_version[acme][1]]
        for name, app in (("a", a), ("b", b))
    }
    assert cached == {"a": ["inventory"], "b": ["crm"]}

    # --- record hooks: A's approval hook fires for A's inserts only -------------------------------------
    process = {
        "name": "Approve",
        "auto_start": True,
        "steps": [{"name": "Boss", "selector": {"kind": "manager"}}],
    }
    assert (
        api("a", "PUT", "/api/v1/workflow/processes/inventory/purchase_order", json=process).status_code
        == 200
    )
    calls: dict[str, int] = {"a": 0, "b": 0}
    for name, app in (("a", a), ("b", b)):
        hook = app.state.services.record_hooks.insert[0]
        original = hook.entities

        async def spy(
            session: Any, tenant_id: uuid.UUID, _name: str = name, _original: Any = original
        ) -> Any:
            calls[_name] += 1
            return await _original(session, tenant_id)

        monkeypatch.setattr(hook, "entities", spy)
    assert api("b", "POST", "/api/v1/plugins/crm/customer", json={"name": "Initech"}).status_code == 201
    assert calls == {"a": 0, "b": 1}
    assert (
        api(
            "a",
            "POST",
            "/api/v1/plugins/inventory/purchase_order",
            json={"order_no": "PO-1", "total_amount": "5.00"},
        ).status_code
        == 201
    )
    assert calls == {"a": 1, "b": 1}
    assert (_instances(a), _instances(b)) == (1, 0)  # the approval started in A (stuck: root has no manager)

    # --- mail: A's SMTP settings are A's only --------------------------------------------------------
    assert sa_.mailer is not None and sb.mailer is None

    def notify(app: Any, title: str) -> None:
        async def work(s: Any) -> None:
            root = await s.scalar(sa.select(User.id).where(User.email == ADMIN_EMAIL))
            await messages.notify(s, SYSTEM, [root], title, source="test", actor=ACTOR)

        in_db(app, work)

    notify(b, "from B")
    notify(a, "from A")
    received = w["sink"].wait_for(1)
    time.sleep(0.3)  # B's message, had it been mailed, would have arrived first
    assert [m["Subject"] for m in received] == ["from A"] and received[0]["From"] == "portal@a.test"
