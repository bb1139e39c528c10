"""Settings parsing and the CLI's one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.settings import SettingsError, load_settings, normalize_database_url

PORTAL = str(Path(sys.executable).with_name("portal"))


def test_database_urls_are_mapped_to_async_drivers():
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    for bad in ("", "nonsense", "mysql://u@h/db"):
        with pytest.raises(SettingsError):
            normalize_database_url(bad)


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = load_settings({"PORTAL_DATA_DIR": str(tmp_path)})
    second = load_settings({"PORTAL_DATA_DIR": str(tmp_path)})
    assert first.secret_key == second.secret_key and len(first.secret_key) > 40
    assert first.database_url == f"sqlite+aiosqlite:///{tmp_path / 'portal.db'}"


def _portal(tmp_path, *args, **env):
    full = {**os.environ, "PORTAL_DATA_DIR": str(tmp_path), **env}
    full.pop("DATABASE_URL", None) if "DATABASE_URL" not in env else None
    return subprocess.run([PORTAL, *args], capture_output=True, text=True, env=full, timeout=120)


@pytest.mark.parametrize("url", ["mysql://x@y/z", "postgresql://nobody@127.0.0.1:1/none", "not a url"])
def test_bad_database_url_gives_one_line_error(tmp_path, url):
    result = _portal(tmp_path, "db", "upgrade", DATABASE_URL=url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("portal: ")


def test_cli_creates_tenant_user_and_token(tmp_path):
    assert _portal(tmp_path, "db", "upgrade").returncode == 0
    assert "Created tenant acme" in _portal(tmp_path, "tenant", "create", "acme", "--name", "Acme").stdout
    made = _portal(
        tmp_path,
        "user",
        "create",
        "bob@acme.test",
        "--password",
        "bob-password-1",
        "--tenant",
        "acme",
        "--role",
        "Member",
    )
    assert made.returncode == 0, made.stderr
    dup = _portal(tmp_path, "user", "create", "BOB@acme.test", "--password", "bob-password-1")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    token = _portal(tmp_path, "token", "create", "--user", "bob@acme.test")
    assert token.returncode == 0 and token.stdout.strip().startswith("pt_")
    for cmd in (["serve"], ["db", "upgrade"], ["tenant", "create"], ["user", "create"], ["token", "create"]):
        assert (
            "--help" in _portal(tmp_path, *cmd, "--help").stdout
            or "Usage" in _portal(tmp_path, *cmd, "--help").stdout
        )


def test_building_many_apps_in_one_process_keeps_the_database_state_keys(tmp_path):
    """advanced-alchemy renames a repeated state key recursively per config ever built; Portal releases
    them (one config per app), so the thousandth app of a test run gets the same keys as the first."""
    from app.core.db import make_alchemy_config

    settings = load_settings(
        {
            "PORTAL_DATA_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path}/p.db",
            "PORTAL_SECRET_KEY": "k" * 32,
        }
    )
    first, second = make_alchemy_config(settings), make_alchemy_config(settings)
    assert second.session_scope_key == first.session_scope_key == "_sqlalchemy_db_session"
    assert second.engine_app_state_key == first.engine_app_state_key
    assert second.session_maker_app_state_key == first.session_maker_app_state_key
