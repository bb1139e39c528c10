"""The `portal` command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import Actor
from app.errors import PortalError, ValidationFailed
from app.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def fail(message: str) -> None:
    click.secho(f"portal: {message}", fg="red", err=True)
    sys.exit(2)


def _db_error_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return f"cannot use the database: {text}"


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))
        raise  # unreachable


def migrate_or_exit(settings: Settings) -> None:
    from app.db.migrate import upgrade

    try:
        upgrade(settings)
    except (OperationalError, DBAPIError, OSError) as exc:
        fail(_db_error_line(exc))
    except Exception as exc:  # driver errors that SQLAlchemy did not wrap (bad host names, ...)
        if "sqlalchemy" in type(exc).__module__ or "psycopg" in type(exc).__module__:
            fail(_db_error_line(exc))
        raise


def run_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction; domain errors become one-line messages."""
    from app.db.engine import make_alchemy_config

    async def main() -> T:
        config = make_alchemy_config(settings)
        try:
            async with config.get_session() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await config.get_engine().dispose()

    try:
        return asyncio.run(main())
    except ValidationFailed as exc:
        fail("; ".join(f"{k}: {v}" for k, v in exc.errors.items()))
    except PortalError as exc:
        fail(exc.detail)
    except (OperationalError, DBAPIError) as exc:
        fail(_db_error_line(exc))
    raise AssertionError("unreachable")


@click.group(help="Portal: a multi-tenant low-code business portal.")
def main() -> None:
    pass


@main.command(help="Migrate the database, then serve the portal over HTTP.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--demo/--no-demo", default=False, help="Create a demo tenant with sample data on first start.")
def serve(host: str, port: int, workers: int, demo: bool) -> None:
    import uvicorn

    from app.identity import bootstrap

    settings = settings_or_exit()
    migrate_or_exit(settings)
    first = run_db(settings, lambda s: bootstrap.ensure_base(s, settings))
    if demo:
        from app.demo import ensure_demo

        run_db(settings, lambda s: ensure_demo(s, settings))
    url = f"http://{host}:{port}/"
    click.secho(f"Portal is starting at {url}", fg="green")
    if first and first.password:
        click.secho(f"First platform admin: {first.email}  password: {first.password}", fg="yellow")
        click.echo("This password is shown once; change it after signing in.")
    elif first:
        click.echo(f"First platform admin: {first.email} (password from PORTAL_ADMIN_PASSWORD)")
    uvicorn.run("app.server:app_factory", factory=True, host=host, port=port, workers=workers,
                log_level="info", proxy_headers=False)


@main.group(help="Database maintenance.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply the base migrations (also done by `portal serve`).")
def db_upgrade() -> None:
    from app.identity import bootstrap

    settings = settings_or_exit()
    migrate_or_exit(settings)
    first = run_db(settings, lambda s: bootstrap.ensure_base(s, settings))
    click.echo("Database is up to date.")
    if first and first.password:
        click.secho(f"First platform admin: {first.email}  password: {first.password}", fg="yellow")


@main.group(help="Tenants (organizations).")
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


@main.group(help="User accounts.")
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

    async def work(s: AsyncSession) -> None:
        u = await directory.find_user(s, email)
        if u is None:
            raise PortalError(f"no user {email}")
        await directory.set_password(s, Actor(None, "cli"), u, password)

    run_db(settings, work)
    click.echo(f"Password of {email} changed.")


@main.group(help="API tokens.")
def token() -> None:
    pass


@token.command("create", help="Create an API token for a user and print it (shown once).")
@click.option("--user", "email", required=True, help="Email of the token's owner.")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
def token_create(email: str, name: str) -> None:
    from app.identity import directory, tokens

    settings = settings_or_exit()

    async def work(s: AsyncSession) -> str:
        u = await directory.find_user(s, email)
        if u is None:
            raise PortalError(f"no user {email}")
        _, secret = await tokens.create(s, Actor(None, "cli"), u, name)
        return secret

    click.echo(run_db(settings, work))


@main.group(help="Plugins: install packages, list them.")
def plugin() -> None:
    pass


@plugin.command("install", help="Upload and install a plugin from a folder or a .zip (a newer version upgrades it).")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--tenant", "tenant_ref", default=None, help="Tenant slug or id to enable the plugin in (with --enable).")
@click.option("--enable", is_flag=True, help="Also enable it in --tenant.")
@click.option("--allow-destructive", is_flag=True, help="Apply an upgrade that drops data (backed up first).")
def plugin_install(path: Path, tenant_ref: str | None, enable: bool, allow_destructive: bool) -> None:
    from sqlalchemy import select

    from app.db.models import PluginPackage, PluginTenant
    from app.identity import directory
    from app.plugins import lifecycle
    from app.plugins.packages import PackageError, read_package

    if enable != bool(tenant_ref):
        fail("--enable and --tenant go together: `portal plugin install PATH --tenant SLUG --enable`")
    settings = settings_or_exit()
    try:
        package = read_package(path)
    except PackageError as exc:
        fail(str(exc))
        raise  # unreachable
    migrate_or_exit(settings)
    actor = Actor(None, "cli")

    async def work(s: AsyncSession) -> list[str]:
        done: list[str] = []
        plugin_id = lifecycle._plugin_id_of(package.manifest_text) or ""
        row = await s.scalar(select(PluginPackage).where(PluginPackage.plugin_id == plugin_id))
        before = (lifecycle.state_name(row), row.version) if row is not None else None
        if row is not None and row.package_sha256 == package.sha256 and before[0] == "installed":  # type: ignore[index]
            done.append(f"{plugin_id} {row.version} is already installed")
        elif row is not None and row.package_sha256 == package.sha256:
            row = await lifecycle.install(s, actor, plugin_id)
            done.append(f"Installed {plugin_id} {row.version}")
        else:
            row = await lifecycle.upload(s, actor, package, settings, install_now=True,
                                         allow_destructive=allow_destructive)
            if before is not None and before[0] == "installed":
                done.append(f"Upgraded {plugin_id} {before[1]} → {row.version}")
            else:
                done.append(f"Installed {plugin_id} {row.version}")
        if enable and tenant_ref:
            tenant = await directory.get_tenant(s, tenant_ref)
            state = await s.scalar(select(PluginTenant).where(PluginTenant.tenant_id == tenant.id,
                                                              PluginTenant.plugin_id == plugin_id))
            if state is not None and state.status == "enabled":
                done.append(f"{plugin_id} is already enabled in {tenant.slug}")
            else:
                await lifecycle.enable(s, actor, tenant.id, plugin_id)
                done.append(f"Enabled {plugin_id} in {tenant.slug}")
        return done

    for line in run_db(settings, work):
        click.echo(line)


@plugin.command("list", help="List the plugins with their state and the tenants they are enabled in.")
def plugin_list() -> None:
    from sqlalchemy import select

    from app.db.models import PluginTenant, Tenant
    from app.plugins import lifecycle

    settings = settings_or_exit()
    migrate_or_exit(settings)

    async def work(s: AsyncSession) -> list[tuple[str, ...]]:
        enabled: dict[str, list[str]] = {}
        for plugin_id, slug in (await s.execute(
                select(PluginTenant.plugin_id, Tenant.slug).join(Tenant, Tenant.id == PluginTenant.tenant_id)
                .where(PluginTenant.status == "enabled").order_by(Tenant.slug))).all():
            enabled.setdefault(plugin_id, []).append(slug)
        return [(r.plugin_id, r.version, lifecycle.state_name(r), r.package_sha256[:12],
                 "bundled" if r.bundled else "", ",".join(enabled.get(r.plugin_id, [])) or "-")
                for r in await lifecycle.all_plugins(s)]

    rows = run_db(settings, work)
    if not rows:
        click.echo("No plugins.")
        return
    header = ("ID", "VERSION", "STATE", "SHA256", "BUNDLED", "ENABLED IN")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
