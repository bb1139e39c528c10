"""The `portal` command: one click group, its subcommands in the modules next to this one."""

from __future__ import annotations

import click

from app.cli import plugin_dev  # noqa: F401  (registers `portal plugin dev`)
from app.cli.db import db, events
from app.cli.plugins import plugin
from app.cli.serve import serve
from app.cli.storage import storage
from app.cli.users import tenant, token, user


@click.group(help="Portal: a multi-tenant low-code business portal.")
def main() -> None:
    pass


for command in (serve, db, tenant, user, token, events, plugin, storage):
    main.add_command(command)
