"""The WASM runtime end to end, with a real component built from tests/fixtures/guests/probe: host API
on the record service, limits, crash policy, capabilities, tenant isolation and transactions."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.audit import Actor
from app.core.models import AuditEntry, PluginFault, PluginTenant
from app.identity import directory
from app.installs import lifecycle
from app.plugins import runtime
from app.plugins.packages import read_folder
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.guests import built_plugin
from tests.helpers import login, post_form, text_of
from tests.integration.test_record_pages import in_db

PAGE = "/t/acme/p/probe/probe"
HX = {"HX-Request": "true"}


@pytest.fixture(scope="session")
def probe_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("guests")
    return {
        "probe": built_plugin("probe", base),
        "probe-nodb": built_plugin("probe-nodb", base, guest_from="probe"),
    }


@pytest.fixture
def probe(client: Any, app: Any, probe_packages: dict[str, Path]) -> Any:
    """probe and probe-nodb installed, enabled in acme and globex; root signed in."""
    return install_probes(client, app, probe_packages)


def install_probes(client: Any, app: Any, probe_packages: dict[str, Path]) -> Any:
    async def work(s: Any) -> None:
        actor = Actor(None, "test")
        for name in ("probe", "probe-nodb"):
            await lifecycle.upload(
                s, actor, read_folder(probe_packages[name]), app.state.settings, install_now=True
            )
        for slug in ("acme", "globex"):
            t = await directory.create_tenant(s, actor, slug, slug.title())
            for name in ("probe", "probe-nodb"):
                await lifecycle.enable(s, actor, t.id, name)

    in_db(app, work)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return client


def notes(app: Any, slug: str = "acme") -> list[dict[str, Any]]:
    async def work(s: Any) -> list[dict[str, Any]]:
        tenant = await directory.get_tenant(s, slug)
        ref = await runtime.entity_in_tenant(s, tenant.id, "probe", "probe_note")
        rows = (
            (await s.execute(sa.select(ref.table).where(ref.table.c.tenant_id == tenant.id))).mappings().all()
        )
        return [dict(r) for r in rows]

    return in_db(app, work)  # type: ignore[no-any-return]


def panel_kind(html: str) -> str | None:
    match = re.search(r'data-kind="([a-z_]+)"', html)
    return match.group(1) if match else None


def test_page_renders_through_the_host_api(probe: Any) -> None:
    r = probe.get(PAGE, params={"mode": "hello"})
    assert r.status_code == 200, r.text[:500]
    text = text_of(r.text)
    assert "notes=0" in text and f"user={ADMIN_EMAIL}" in text and "can_insert=True" in text
    assert "greeting=&#34;hello&#34;" in text  # config-get answers the declared default (as JSON text)
    # The same URL gives only the region to HTMX.
    partial = probe.get(PAGE, params={"mode": "hello"}, headers=HX)
    assert "<html" not in partial.text and "notes=0" in text_of(partial.text)


def test_action_writes_through_the_record_service(probe: Any, app: Any) -> None:
    probe.get(PAGE)
    r = post_form(probe, PAGE + "/actions/add", {"title": "from the guest", "amount": "7"}, headers=HX)
    assert r.status_code == 200, r.text[:500]
    assert "added from the guest" in text_of(r.text)
    rows = notes(app)
    assert [(n["title"], n["amount"], n["version"]) for n in rows] == [("from the guest", 7, 1)]
    assert rows[0]["created_by"] is not None  # standard fields set by the host, as the signed-in user

    async def audit(s: Any) -> list[str]:
        return list(
            (
                await s.scalars(
                    sa.select(AuditEntry.action).where(AuditEntry.target_type == "probe.probe_note")
                )
            ).all()
        )

    assert in_db(app, audit) == ["record.create"]
    assert "probe.probe_note.flagged" in [e.type for e in app.state.bus.delivered]
    assert "probe.probe_note.created" in [e.type for e in app.state.bus.delivered]


def test_aggregate_is_structured(probe: Any) -> None:
    for title, amount in (("a", 2), ("b", 5)):
        post_form(probe, PAGE + "/actions/add", {"title": title, "amount": str(amount)}, headers=HX)
    r = probe.get(PAGE, params={"mode": "aggregate"})
    data = json.loads(
        re.search(r"\[\{.*?\}\]", text_of(r.text).replace("&#34;", '"').replace("&quot;", '"')).group(0)
    )
    assert data == [{"kind": "a", "count": 2, "sum_amount": 7}]


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("memory", "memory_mb"), ("output", "output_bytes"), ("flood", "host_calls"), ("log", "log_bytes")],
)
def test_each_limit_stops_the_guest(probe: Any, mode: str, kind: str) -> None:
    r = probe.get(PAGE, params={"mode": mode})
    assert r.status_code == 502, r.text[:300]
    assert panel_kind(r.text) == kind
    assert "Traceback" not in r.text and "backtrace" not in r.text
    # The server (and the plugin) keep working.
    assert probe.get(PAGE, params={"mode": "hello"}).status_code == 200


def test_bad_output_becomes_a_located_error_panel(probe: Any) -> None:
    bad = probe.get(PAGE, params={"mode": "badjson"})
    assert bad.status_code == 200 and "JSON" in text_of(bad.text)
    unknown = probe.get(PAGE, params={"mode": "unknown-block"})
    assert "blocks[0]" in unknown.text and "marquee" in unknown.text
    assert "<marquee" not in unknown.text


def test_guest_error_and_crash(probe: Any) -> None:
    err = probe.get(PAGE, params={"mode": "err"})
    assert err.status_code == 502 and "the probe refuses" in text_of(err.text)
    crash = probe.get(PAGE, params={"mode": "crash"})
    assert crash.status_code == 502 and "Traceback" not in crash.text


def test_capability_and_entity_boundaries(probe: Any, app: Any) -> None:
    nodb = probe.get("/t/acme/p/probe-nodb/probe-nodb", params={"mode": "hello"})
    assert nodb.status_code == 502
    assert (
        "does not have the &#39;database&#39; capability" in nodb.text
        or "does not have the 'database' capability" in nodb.text
    )
    other = probe.get(PAGE, params={"mode": "other-plugin"})
    assert "refused: db-query: entity" in text_of(other.text).replace("&#39;", "'")
    # A row of globex, addressed by id from acme: not found, not updated.
    probe.get("/t/globex/p/probe/probe")
    post_form(probe, "/t/globex/p/probe/probe/actions/add", {"title": "globex secret"}, headers=HX)
    globex_id = str(notes(app, "globex")[0]["id"])
    r = probe.get(PAGE, params={"mode": "by-id", "id": globex_id})
    assert "refused:" in text_of(r.text)
    assert [n["title"] for n in notes(app, "globex")] == ["globex secret"]


def test_a_failed_call_leaves_nothing_behind(probe: Any, app: Any) -> None:
    probe.get(PAGE)
    before = len(app.state.bus.delivered)
    trapped = post_form(probe, PAGE + "/actions/write-then-trap", {"title": "doomed"}, headers=HX)
    assert trapped.status_code == 502 and panel_kind(trapped.text) == "deadline_ms"
    failed = post_form(probe, PAGE + "/actions/write-then-err", {"title": "doomed too"}, headers=HX)
    assert failed.status_code == 502
    assert notes(app) == []
    assert [e.type for e in app.state.bus.delivered[before:]] == []


def test_redirects_are_relative_only(probe: Any) -> None:
    probe.get(PAGE)
    ok = post_form(probe, PAGE + "/actions/go", {}, headers=HX)
    assert ok.headers.get("hx-redirect") == "/t/acme/p/probe/probe?mode=hello"
    evil = post_form(probe, PAGE + "/actions/go-evil", {}, headers=HX)
    assert "hx-redirect" not in evil.headers and "javascript:" not in evil.text.replace("&#34;", "")


def test_six_traps_in_a_minute_disable_the_plugin_for_that_tenant_only(probe: Any, app: Any) -> None:
    for _ in range(6):
        r = probe.get(PAGE, params={"mode": "output"})
        assert r.status_code == 502
    assert "switched off in this tenant" in text_of(r.text)

    async def states(s: Any) -> dict[str, tuple[str, str]]:
        rows = (
            await s.execute(
                sa.select(PluginTenant.tenant_id, PluginTenant.status, PluginTenant.error_message).where(
                    PluginTenant.plugin_id == "probe"
                )
            )
        ).all()
        out = {}
        for tenant_id, status, message in rows:
            out[(await directory.get_tenant(s, str(tenant_id))).slug] = (status, message)
        return out

    result = in_db(app, states)
    assert result["acme"][0] == "error" and "Auto-disabled after 6 failures" in result["acme"][1]
    assert result["globex"][0] == "enabled"
    assert probe.get(PAGE).status_code == 404  # gone from acme
    assert probe.get("/t/globex/p/probe/probe", params={"mode": "hello"}).status_code == 200
    faults = in_db(app, lambda s: s.scalar(sa.select(sa.func.count()).select_from(PluginFault)))
    assert faults == 6
    # Retry: enabling again clears the error.
    page = probe.get("/t/acme/admin/plugins/probe")
    assert "Auto-disabled" in text_of(page.text)
    r = post_form(probe, "/t/acme/admin/plugins/probe/enable", {}, follow_redirects=False)
    assert r.status_code in (200, 303), r.text[:300]
    assert probe.get(PAGE, params={"mode": "hello"}).status_code == 200


def test_api_gives_ui_json_and_problem_details(probe: Any) -> None:
    from tests.helpers import api_token, bearer

    token = api_token(probe, ADMIN_EMAIL, ADMIN_PASSWORD)
    ok = probe.get("/api/v1/pages/probe/probe", params={"mode": "hello"}, headers=bearer(token, "acme"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["blocks"][0]["text"] == "notes=0"
    boom = probe.get("/api/v1/pages/probe/probe", params={"mode": "output"}, headers=bearer(token, "acme"))
    assert boom.status_code == 502 and boom.headers["content-type"].startswith("application/problem+json")
    assert boom.json()["kind"] == "output_bytes" and boom.json()["plugin"] == "probe"
    act = probe.post(
        "/api/v1/pages/probe/probe",
        json={"action": "add", "data": {"title": "via api"}},
        headers=bearer(token, "acme"),
    )
    assert act.status_code == 200 and act.json()["toast"]["text"] == "added via api"


def test_a_runaway_guest_does_not_block_other_requests(probe: Any) -> None:
    result: dict[str, Any] = {}

    def slow() -> None:
        result["response"] = probe.get(PAGE, params={"mode": "loop"})
        result["done"] = time.perf_counter()

    started = time.perf_counter()
    worker = threading.Thread(target=slow)
    worker.start()
    time.sleep(0.3)
    quick = probe.get(PAGE, params={"mode": "hello"})
    quick_done = time.perf_counter()
    worker.join(10)
    assert quick.status_code == 200 and "notes=0" in text_of(quick.text)
    assert quick_done < result["done"], "the quick page waited for the runaway guest"
    r = result["response"]
    assert r.status_code == 502 and panel_kind(r.text) == "deadline_ms"
    assert 1.4 < result["done"] - started < 6


def test_upload_refuses_what_is_not_a_component(probe: Any, app: Any, tmp_path: Path) -> None:
    from app.plugins.packages import PackageError

    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "plugin.toml").write_text(
        (Path(__file__).parents[1] / "fixtures/guests/probe/plugin.toml")
        .read_text()
        .replace('id = "probe"', 'id = "bad-wasm"')
        .replace("probe_note", "bad_note")
        .replace('"/probe"', '"/bad"')
        .replace("probe.", "bad-wasm.")
    )
    for blob, expected in (
        (b"\x00asm\x01\x00\x00\x00", "core WebAssembly module"),
        (b"MZ\x90\x00", "not a WebAssembly component"),
    ):
        (folder / "plugin.wasm").write_bytes(blob)

        async def work(s: Any) -> None:
            await lifecycle.upload(s, Actor(None, "t"), read_folder(folder), app.state.settings)

        with pytest.raises(PackageError, match=expected):
            in_db(app, work)


def test_limits_above_the_platform_maximum_are_refused(
    probe: Any, app: Any, probe_packages: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "greedy"
    folder.mkdir()
    (folder / "plugin.toml").write_text(
        (probe_packages["probe"] / "plugin.toml")
        .read_text()
        .replace('id = "probe"', 'id = "greedy"')
        .replace("probe_note", "greedy_note")
        .replace('"/probe"', '"/greedy"')
        .replace("probe.", "greedy.")
        .replace("fuel = 40_000_000_000", "fuel = 900_000_000_000")
    )

    async def work(s: Any) -> None:
        await lifecycle.upload(s, Actor(None, "t"), read_folder(folder), app.state.settings)

    with pytest.raises(lifecycle.ManifestRejected) as caught:
        in_db(app, work)
    assert caught.value.issues == ["limits.fuel: 900000000000 is above the platform maximum 50000000000"]


def test_the_plugin_page_reports_code_health(probe: Any) -> None:
    from tests.helpers import api_token, bearer

    probe.get(PAGE, params={"mode": "hello"})
    probe.get(PAGE, params={"mode": "err"})
    page = text_of(probe.get("/t/acme/admin/plugins/probe").text)
    assert "Code and health" in page and "compiled" in page and "duration_ms" in page
    assert "the plugin reported an error: the probe refuses" in page
    token = api_token(probe, ADMIN_EMAIL, ADMIN_PASSWORD)
    health = probe.get("/api/v1/admin/plugins/probe/health", headers=bearer(token, "acme")).json()
    assert health["runtime"]["compile"]["state"] == "ready"
    assert health["runtime"]["limits"]["deadline_ms"] == 1500
    assert health["runtime"]["faults"][0]["kind"] == "error"
    # Peak memory needs PORTAL_WASM_MEMORY_STATS (below); by default it is not reported at all.
    assert "memory_mb" not in health["runtime"]["figures"]


def test_memory_stats_mode_measures_each_call(
    app: Any, settings_env: dict[str, str], probe_packages: dict[str, Path]
) -> None:
    from litestar.testing import TestClient

    from app.core.settings import load_settings
    from app.server import create_app
    from tests.guests import precompile
    from tests.helpers import api_token, bearer

    precompile(probe_packages["probe"] / "plugin.wasm", memory_stats=True)
    measuring = create_app(load_settings({**settings_env, "PORTAL_WASM_MEMORY_STATS": "1"}))
    with TestClient(app=measuring, base_url="http://testserver.local") as client:
        install_probes(client, measuring, probe_packages)
        assert client.get(PAGE, params={"mode": "hello"}).status_code == 200
        # A guest that does not catch MemoryError dies in many ways; the measured size names the cause.
        raw = client.get(PAGE, params={"mode": "memory-raw"})
        assert raw.status_code == 502 and panel_kind(raw.text) == "memory_mb"
        token = api_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        figures = client.get("/api/v1/admin/plugins/probe/health", headers=bearer(token, "acme")).json()[
            "runtime"
        ]["figures"]
    # A Python guest starts at ~12.4 MiB; the bomb reached the 64 MiB cap.
    assert 12 <= figures["memory_mb"]["p50"] <= 64 and figures["memory_mb"]["max"] >= 57


def test_plugin_run_renders_against_the_database_and_rolls_back(
    probe: Any, app: Any, settings_env: dict[str, str], probe_packages: dict[str, Path]
) -> None:
    from click.testing import CliRunner

    from app.cli import main

    folder = str(probe_packages["probe"])
    runner = CliRunner()
    shown = runner.invoke(
        main,
        ["plugin", "run", folder, "--page", "/probe", "--params", '{"mode": "hello"}', "--tenant", "acme"],
        env=settings_env,
    )
    assert shown.exit_code == 0, shown.output
    assert '"text": "notes=0"' in shown.stdout and "host calls 4" in shown.stderr and "fuel" in shown.stderr
    dry = runner.invoke(
        main,
        [
            "plugin",
            "run",
            folder,
            "--page",
            "/probe",
            "--action",
            "add",
            "--data",
            '{"title": "dry"}',
            "--tenant",
            "acme",
        ],
        env=settings_env,
    )
    assert dry.exit_code == 0 and "added dry" in dry.stdout
    assert notes(app) == []
    kept = runner.invoke(
        main,
        [
            "plugin",
            "run",
            folder,
            "--page",
            "/probe",
            "--action",
            "add",
            "--data",
            '{"title": "kept"}',
            "--tenant",
            "acme",
            "--commit",
        ],
        env=settings_env,
    )
    assert kept.exit_code == 0
    assert [n["title"] for n in notes(app)] == ["kept"]
    failing = runner.invoke(
        main,
        ["plugin", "run", folder, "--page", "/probe", "--params", '{"mode": "output"}', "--tenant", "acme"],
        env=settings_env,
    )
    assert failing.exit_code == 1 and "output_bytes" in failing.stderr


def test_time_in_host_calls_does_not_count_against_the_deadline(probe: Any) -> None:
    """A busy event loop (a loaded machine) makes each host call's hop slow: four db-query calls then
    take seconds, over the probe's 1500 ms deadline, yet the guest's own code runs a few ms. It is not
    killed; a guest spinning in its own code still is, on the same busy loop."""
    stop = threading.Event()

    async def busy_loop() -> None:  # blocks the app's event loop 250 ms at a time, as CPU starvation does
        while not stop.is_set():
            time.sleep(0.25)
            await asyncio.sleep(0)

    probe.get(PAGE, params={"mode": "hello"})  # a warm instance: the timed calls do not instantiate
    probe.blocking_portal.start_task_soon(busy_loop)
    try:
        started = time.perf_counter()
        r = probe.get(PAGE, params={"mode": "queries", "n": 4})
        slow = time.perf_counter() - started
        spinning = probe.get(PAGE, params={"mode": "loop"})
    finally:
        stop.set()
    assert slow > 1.5, f"the host calls were not slow ({slow:.2f} s): the test proves nothing"
    assert r.status_code == 200 and "done" in text_of(r.text), r.text[:500]
    assert spinning.status_code == 502 and panel_kind(spinning.text) == "deadline_ms"


def test_a_reading_guest_page_sends_no_transaction(probe: Any, app: Any) -> None:
    """A custom page whose guest only reads stays in the GET's read-only start: no BEGIN, SAVEPOINT,
    RELEASE or COMMIT round trips; one whose guest writes (notify) gets its transaction and savepoint
    and the write is committed."""
    from tests.integration.test_list_round_trips import sent

    probe.get(PAGE, params={"mode": "hello"})
    statements = sent(app, probe, PAGE, {"mode": "hello"})
    assert not [s for s in statements if s in {"BEGIN", "COMMIT"} or "SAVEPOINT" in s], statements
    writing = sent(app, probe, PAGE, {"mode": "notify", "to": "me"})
    assert any("SAVEPOINT" in s for s in writing) and "COMMIT" in writing, writing
