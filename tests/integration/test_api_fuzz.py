"""The record API's OpenAPI document against the live server, fuzzed by Schemathesis with a tenant
admin's token: no server error, no status code or content type the document does not list, and no
request the document allows refused (refusals of the data's state, 409, are documented and allowed)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from app.access import roles
from app.audit import Actor
from app.core.settings import load_settings
from app.identity import directory, tokens
from app.installs import lifecycle
from app.plugins.packages import read_folder
from app.server import create_app

ROOT = Path(__file__).resolve().parents[2]
ST = Path(sys.executable).with_name("st")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,positive_data_acceptance"
MAX_EXAMPLES = 8  # per operation and phase: the whole run stays well under a minute


def _prepare(app: Any) -> str:
    """Tenant acme with the inventory plugin enabled and an admin of it; that admin's API token."""

    async def work() -> str:
        async with app.state.alchemy.get_session() as s:
            actor = Actor(None, "test")
            await lifecycle.upload(
                s, actor, read_folder(ROOT / "plugins" / "inventory"), app.state.settings, install_now=True
            )
            tenant = await directory.create_tenant(s, actor, "acme", "Acme")
            await lifecycle.enable(s, actor, tenant.id, "inventory")
            ann = await directory.create_user(s, actor, "ann@acme.test", "ann-password-1")
            await directory.add_member(s, actor, tenant.id, ann, await roles.get_role(s, tenant.id, "Admin"))
            _, secret = await tokens.create(s, actor, ann, "fuzz")
            await s.commit()
        await app.state.alchemy.get_engine().dispose()  # its connections belong to this loop
        return secret

    return asyncio.run(work())


@pytest.fixture
def served(settings_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """The app under uvicorn on a free loopback port, and a tenant admin's token."""
    app = create_app(load_settings(settings_env))
    token = _prepare(app)
    server = uvicorn.Server(
        uvicorn.Config(app=app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", ws="none")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(10)


def _fuzz(url: str, token: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    report = tmp_path / "st.json"
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    done = subprocess.run(
        [
            str(ST),
            "run",
            url,
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            "X-Tenant: acme",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "14",
            "--generation-deterministic",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    return done


@pytest.mark.parametrize("document", ["/api/v1/records/openapi.json", "/api/v1/openapi.json"])
def test_api_document_survives_fuzzing(served: tuple[str, str], document: str, tmp_path: Path) -> None:
    base, token = served
    started = time.monotonic()
    done = _fuzz(base + document, token, tmp_path)
    took = time.monotonic() - started
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-20000:]
    generated = re.search(r"(\d+) generated", out)
    assert generated and int(generated.group(1)) >= 500, out[-3000:]  # a real run, not an empty one
    for finding in ("Server error", "Undocumented HTTP status code", "Undocumented Content-Type", "rejected"):
        assert finding not in out, out[-6000:]
    print(f"{document}: {generated.group(0)} in {took:.0f} s")  # shown with -s
