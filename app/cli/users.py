"""`portal tenant`, `portal user` and `portal token`: accounts from the command line."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import Actor
from app.cli.common import migrate_or_exit, run_db, settings_or_exit
from app.core.errors import PortalError


@click.group(help="Tenants (organizations).")
def tenant() -> None:
    pass


@tenant.command("create", help="Create a tenant with its default Admin and Member roles.")
@click.argument("slug")
@click.option("--name", required=True, help="Display name.")
def tenant_create(slug: str, name: str) -> None:
    from app.identity import directory

    settings = settings_or_exit()
    migrate_or_exit(settings)
    t = run_db(settings, lambda s: directory.create_tenant(s, Actor(None, "cli"), slug, name))
    click.echo(f"Created tenant {t.slug} ({t.id})")


@click.group(help="User accounts.")
def user() -> None:
    pass


@user.command("create", help="Create a user, optionally as a member of a tenant with a role.")
@click.argument("email")
@click.option("--password", required=True, help="Initial password (at least 10 characters).")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--tenant", "tenant_ref", default=None, help="Tenant slug or id to join.")
@click.option("--role", default="Member", show_default=True, help="Role in that tenant.")
def user_create(email: str, password: str, display_name: str, tenant_ref: str | None, role: str) -> None:
    from app.access import roles
    from app.identity import directory

    settings = settings_or_exit()
    migrate_or_exit(settings)

    async def work(s: AsyncSession) -> Any:
        actor = Actor(None, "cli")
        u = await directory.create_user(s, actor, email, password, display_name)
        if tenant_ref:
            t = await directory.get_tenant(s, tenant_ref)
            r = await roles.get_role(s, t.id, role)
            await directory.add_member(s, actor, t.id, u, r)
        return u

    u = run_db(settings, work)
    click.echo(f"Created user {u.email}" + (f" as {role} of {tenant_ref}" if tenant_ref else ""))


@user.command("set-password", help="Set a user's password (e.g. a lost admin password).")
@click.argument("email")
@click.option("--password", required=True, prompt=True, hide_input=True, confirmation_prompt=True)
def user_set_password(email: str, password: str) -> None:
    from app.identity import directory

    settings = settings_or_exit()

    async def work(s: AsyncSession) -> int:
        u = await directory.find_user(s, email)
        if u is None:
            raise PortalError(f"no user {email}")
        return await directory.set_password(s, Actor(None, "cli"), u, password)  # ends all their sessions

    ended = run_db(settings, work)
    click.echo(f"Password of {email} changed; {ended} session(s) ended.")


def _set_active(email: str, active: bool) -> None:
    from app.identity import directory

    settings = settings_or_exit()

    async def work(s: AsyncSession) -> None:
        u = await directory.find_user(s, email)
        if u is None:
            raise PortalError(f"no user {email}")
        await directory.set_user_active(s, Actor(None, "cli"), u, active)

    run_db(settings, work)


@user.command(
    "deactivate",
    help="Deactivate a user: no sign-in; all sessions end, all API tokens are revoked "
    "(refused while the account is a tenant's last Admin).",
)
@click.argument("email")
@click.option("--activate", is_flag=True, help="Reactivate it instead (same as `portal user activate`).")
def user_deactivate(email: str, activate: bool) -> None:
    _set_active(email, activate)
    if activate:
        click.echo(f"{email} reactivated.")
    else:
        click.echo(f"Deactivated {email}; their sessions ended and API tokens were revoked.")


@user.command("activate", help="Let a deactivated user sign in again (revoked tokens stay revoked).")
@click.argument("email")
def user_activate(email: str) -> None:
    _set_active(email, True)
    click.echo(f"Activated {email}.")


@click.group(help="API tokens.")
def token() -> None:
    pass


@token.command("create", help="Create an API token for a user and print it (shown once).")
@click.option("--user", "email", required=True, help="Email of the token's owner.")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option(
    "--expires-days",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Expire after N days (default: never).",
)
@click.option("--read-only", is_flag=True, help="Allow only GET and HEAD requests.")
def token_create(email: str, name: str, expires_days: int | None, read_only: bool) -> None:
    from app.identity import directory, tokens

    settings = settings_or_exit()

    async def work(s: AsyncSession) -> str:
        u = await directory.find_user(s, email)
        if u is None:
            raise PortalError(f"no user {email}")
        _, secret = await tokens.create(
            s, Actor(None, "cli"), u, name, expires_days=expires_days, scope="read" if read_only else "full"
        )
        return secret

    click.echo(run_db(settings, work))
