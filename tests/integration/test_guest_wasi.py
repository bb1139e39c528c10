"""What a guest gets of WASI, with the real probe component (tests/fixtures/guests/probe): clocks,
randomness and print() work, output lands in the plugin's log (capped per call), files and the network
are refused, a trap reports the guest's last stderr lines, and pages get `now`/`today`."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.core.models import PluginFault
from tests.guests import built_plugin
from tests.helpers import text_of
from tests.integration.test_record_pages import in_db
from tests.integration.test_sandbox import PAGE, install_probes, probe_packages

assert probe_packages  # a session fixture, imported for its name


@pytest.fixture
def probe(client: Any, app: Any, probe_packages: dict[str, Path]) -> Any:
    return install_probes(client, app, probe_packages)


def _value(text: str, key: str) -> str:
    match = re.search(rf"{key}=(\S+)", text)
    assert match, text
    return match.group(1)


def test_clocks_random_and_print_work(probe: Any, app: Any) -> None:
    before = dt.datetime.now(dt.UTC)
    r = probe.get(PAGE, params={"mode": "wasi"})
    assert r.status_code == 200, r.text[:500]
    text = text_of(r.text)
    now = dt.datetime.fromisoformat(_value(text, "now"))
    assert before - dt.timedelta(seconds=5) <= now <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert 0.0 <= float(_value(text, "random")) < 1.0
    assert float(_value(text, "monotonic")) > 0
    assert _value(text, "python").startswith("3.14.")  # componentize-py 0.25.1's CPython
    second = text_of(probe.get(PAGE, params={"mode": "wasi"}).text)
    assert _value(second, "random") != _value(text, "random")  # a real random source, not a fixed seed
    logs = app.state.sandbox.last.logs
    assert ("info", "printed by the probe") in logs
    assert ("warning", "warned by the probe") in logs


def test_output_is_capped_per_call(probe: Any, app: Any) -> None:
    r = probe.get(PAGE, params={"mode": "chatty", "n": "2000"})  # ~210 kB of print()
    assert r.status_code == 200 and "chatted" in text_of(r.text)
    logs = app.state.sandbox.last.logs
    kept = "\n".join(line for _level, line in logs if line.startswith("line "))
    assert 4000 < len(kept.encode()) <= 4096  # the probe's log_bytes limit, the last line cut short
    assert logs[-1] == ("warning", "[output truncated: more than 4096 bytes in one call]")
    # The next call logs again from an empty budget.
    probe.get(PAGE, params={"mode": "wasi"})
    assert ("info", "printed by the probe") in app.state.sandbox.last.logs


def test_a_guest_cannot_open_a_file(probe: Any, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host data")
    r = probe.get(PAGE, params={"mode": "open-file", "path": str(secret)})
    assert r.status_code == 200, r.text[:500]
    text = text_of(r.text)
    assert "read " not in text and "wrote /tmp" not in text
    for path in (str(secret), "/", ".", "plugin.toml", "writing"):
        assert f"refused {path}:" in text, path
    assert not Path("/tmp/probe-wrote").exists()


def test_a_guest_cannot_open_a_socket(probe: Any) -> None:
    accepted: list[bytes] = []
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)

    def serve() -> None:
        try:
            conn, _ = server.accept()
            accepted.append(conn.recv(100))
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        r = probe.get(PAGE, params={"mode": "socket", "port": str(server.getsockname()[1])})
    finally:
        thread.join(5)
        server.close()
    assert r.status_code == 200, r.text[:500]
    assert "refused:" in text_of(r.text) and "connected" not in text_of(r.text)
    assert accepted == []


def test_a_trap_reports_the_guests_last_stderr_lines(probe: Any, app: Any) -> None:
    r = probe.get(PAGE, params={"mode": "traceback"})
    assert r.status_code == 502
    assert "ZeroDivisionError: the probe divided by zero" in text_of(r.text)
    assert "Traceback" not in r.text  # the user sees the exception, not the traceback
    detail = in_db(
        app, lambda s: s.scalar(sa.select(PluginFault.detail).order_by(PluginFault.created_at.desc()))
    )
    assert "the guest's last stderr lines:" in detail
    assert "ZeroDivisionError: the probe divided by zero" in detail
    assert re.search(r"line \d+, in render_page", detail), detail


def test_pages_get_now_and_today(probe: Any) -> None:
    r = probe.get(PAGE, params={"mode": "clock-context", "_portal": "forged"})
    assert r.status_code == 200, r.text[:500]
    found = re.search(r"\{[^{}]*\}", html.unescape(text_of(r.text)))
    assert found, r.text[:500]
    context = json.loads(found.group(0))  # the host's value: the forged query parameter is replaced
    now = dt.datetime.fromisoformat(context["now"])
    assert now.utcoffset() == dt.timedelta(0) and context["time_zone"] == "UTC"
    assert abs(now - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=30)
    assert context["today"] == now.date().isoformat()


def test_fresh_instances_draw_from_the_hosts_random_source(probe: Any, app: Any) -> None:
    drawn = set()
    for _ in range(2):
        app.state.sandbox.drop_instances("probe")
        r = probe.get(PAGE, params={"mode": "wasi"})
        assert app.state.sandbox.last.fresh_instance
        drawn.add(_value(text_of(r.text), "urandom"))
    assert len(drawn) == 2  # not a value fixed in the build's snapshot


@pytest.fixture(scope="session")
def stubbed_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe built as before guests had WASI (--stub-wasi): a component importing only the host."""
    from app.sandbox import build

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "COMPONENTIZE_OPTIONS", ("--stub-wasi",))
        return built_plugin("probe", tmp_path_factory.mktemp("stubbed"))


def test_components_that_import_nothing_still_run(
    client: Any, app: Any, stubbed_probe: Path, probe_packages: dict[str, Path]
) -> None:
    from wasmtime.component import Component

    engine = app.state.sandbox.engine
    imports = Component.from_file(engine, str(stubbed_probe / "plugin.wasm")).type.imports(engine)
    assert list(imports) == ["portal:plugin/host@0.1.0"]
    stubbed = install_probes(client, app, {**probe_packages, "probe": stubbed_probe})
    r = stubbed.get(PAGE, params={"mode": "hello"})
    assert r.status_code == 200 and "notes=" in text_of(r.text)
    assert stubbed.get(PAGE, params={"mode": "wasi"}).status_code == 502  # its WASI stubs trap


def test_sleeping_past_the_deadline_fails_the_call(probe: Any, app: Any) -> None:
    started = time.monotonic()
    r = probe.get(PAGE, params={"mode": "sleep", "s": "3"})
    elapsed = time.monotonic() - started
    assert r.status_code == 502 and "slept" not in text_of(r.text)
    assert app.state.sandbox.last.kind == "deadline_ms"  # the probe's deadline is 1.5 s
    assert elapsed < 10
