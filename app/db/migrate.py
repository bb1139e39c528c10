"""Apply the base migrations (Alembic through advanced-alchemy)."""

from __future__ import annotations

import contextlib
import io

from advanced_alchemy.alembic.commands import AlembicCommands

from app.db.engine import make_alchemy_config
from app.settings import Settings


def upgrade(settings: Settings, *, quiet: bool = True) -> None:
    """Bring the base tables to the newest revision. Must run outside an event loop."""
    commands = AlembicCommands(sqlalchemy_config=make_alchemy_config(settings))
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        commands.upgrade(revision="head")
