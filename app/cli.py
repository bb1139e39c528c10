"""The `portal` command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import Actor
from app.core.errors import PortalError, ValidationFailed
from app.core.settings import Settings, SettingsError, load_settings

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
    from app.core.db import upgrade

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
    from app.core.db import make_alchemy_config

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
        from app.demo import demo_logins, ensure_demo

        run_db(settings, lambda s: ensure_demo(s, settings))
    url = f"http://{host}:{port}/"
    click.secho(f"Portal is starting at {url}", fg="green")
    if demo:
        click.echo(demo_logins())
    if first and first.password:
        click.secho(f"First platform admin: {first.email}  password: {first.password}", fg="yellow")
        click.echo("This password is shown once; change it after signing in.")
    elif first:
        click.echo(f"First platform admin: {first.email} (password from PORTAL_ADMIN_PASSWORD)")
    uvicorn.run(
        "app.server:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=False,
    )


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


@main.group(help="API tokens.")
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


@main.group(help="The event log.")
def events() -> None:
    pass


@events.command(
    "prune",
    help="Delete handled events (and their delivery records) older than DAYS days; "
    "pending and running ones are kept.",
)
@click.option("--older-than", "days", type=click.IntRange(min=1), required=True, metavar="DAYS")
def events_prune(days: int) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from app.core.models import EventDelivery, EventRecord

    settings = settings_or_exit()
    migrate_or_exit(settings)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)

    async def work(s: AsyncSession) -> int:
        old = sa.select(EventRecord.id).where(
            EventRecord.created_at < before, EventRecord.status.not_in(("pending", "running"))
        )
        await s.execute(sa.delete(EventDelivery).where(EventDelivery.event_id.in_(old)))
        result = cast(
            sa.CursorResult[Any], await s.execute(sa.delete(EventRecord).where(EventRecord.id.in_(old)))
        )
        return int(result.rowcount or 0)

    click.echo(f"Deleted {run_db(settings, work)} event(s) from before {before:%Y-%m-%d %H:%M} UTC")


@main.group(help="Plugins: install packages, list them; create, build and pack your own.")
def plugin() -> None:
    pass


@plugin.command(
    "install", help="Upload and install a plugin from a folder or a .zip (a newer version upgrades it)."
)
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--tenant", "tenant_ref", default=None, help="Tenant slug or id to enable the plugin in (with --enable)."
)
@click.option("--enable", is_flag=True, help="Also enable it in --tenant.")
@click.option("--allow-destructive", is_flag=True, help="Apply an upgrade that drops data (backed up first).")
def plugin_install(path: Path, tenant_ref: str | None, enable: bool, allow_destructive: bool) -> None:
    from sqlalchemy import select

    from app.core.models import PluginPackage, PluginTenant
    from app.identity import directory
    from app.plugins import lifecycle
    from app.plugins.packages import PackageError
    from app.sandbox.build import BuildError, package_from

    if enable != bool(tenant_ref):
        fail("--enable and --tenant go together: `portal plugin install PATH --tenant SLUG --enable`")
    settings = settings_or_exit()
    try:
        package = package_from(path)
    except (PackageError, BuildError) as exc:
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
            row = await lifecycle.upload(
                s, actor, package, settings, install_now=True, allow_destructive=allow_destructive
            )
            if before is not None and before[0] == "installed":
                done.append(f"Upgraded {plugin_id} {before[1]} → {row.version}")
            else:
                done.append(f"Installed {plugin_id} {row.version}")
        if enable and tenant_ref:
            tenant = await directory.get_tenant(s, tenant_ref)
            state = await s.scalar(
                select(PluginTenant).where(
                    PluginTenant.tenant_id == tenant.id, PluginTenant.plugin_id == plugin_id
                )
            )
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

    from app.core.models import PluginTenant, Tenant
    from app.plugins import lifecycle

    settings = settings_or_exit()
    migrate_or_exit(settings)

    async def work(s: AsyncSession) -> list[tuple[str, ...]]:
        enabled: dict[str, list[str]] = {}
        for plugin_id, slug in (
            await s.execute(
                select(PluginTenant.plugin_id, Tenant.slug)
                .join(Tenant, Tenant.id == PluginTenant.tenant_id)
                .where(PluginTenant.status == "enabled")
                .order_by(Tenant.slug)
            )
        ).all():
            enabled.setdefault(plugin_id, []).append(slug)
        return [
            (
                r.plugin_id,
                r.version,
                lifecycle.state_name(r),
                r.package_sha256[:12],
                "bundled" if r.bundled else "",
                ",".join(enabled.get(r.plugin_id, [])) or "-",
            )
            for r in await lifecycle.all_plugins(s)
        ]

    rows = run_db(settings, work)
    if not rows:
        click.echo("No plugins.")
        return
    header = ("ID", "VERSION", "STATE", "SHA256", "BUNDLED", "ENABLED IN")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


# -- plugin authoring: new, build, pack ------------------------------------------------------------


def _author_error(message: str) -> None:
    """Authoring commands exit with 1 (the plugin is at fault), not 2 (a usage or setup problem)."""
    click.secho(f"portal: {message}", fg="red", err=True)
    sys.exit(1)


@plugin.command(
    "new", help="Create a starter plugin NAME (also its id): manifest, Python guest, README, tests."
)
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create it in.",
)
def plugin_new(name: str, parent: Path) -> None:
    from app.sandbox.scaffold import ScaffoldError, scaffold_plugin

    try:
        folder = scaffold_plugin(name, parent)
    except ScaffoldError as exc:
        _author_error(str(exc))
        raise  # unreachable
    click.echo(f"Created {folder}: plugin.toml, guest/app.py, README.md, tests/test_plugin.py")
    click.echo("Next:")
    click.echo(f"  portal plugin build {folder}")
    click.echo(f"  portal plugin pack {folder}")
    click.echo(f"  portal plugin install {name}-0.1.0.zip --tenant SLUG --enable")


@plugin.command(
    "build",
    help="Build FOLDER/guest (Python) into FOLDER/plugin.wasm; unchanged sources come from the cache.",
)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def plugin_build(folder: Path) -> None:
    import time

    from app.sandbox.build import BuildError, build_component, cache_dir, source_hash

    started = time.perf_counter()
    try:
        cached = (folder / "guest").is_dir() and (cache_dir() / f"{source_hash(folder)}.wasm").is_file()
        path = build_component(folder)
    except BuildError as exc:
        _author_error(str(exc))
        raise  # unreachable
    seconds = time.perf_counter() - started
    size_mb = path.stat().st_size / (1024 * 1024)
    click.echo(f"Built {path} ({size_mb:.1f} MiB) in {seconds:.1f} s" + (" (cached)" if cached else ""))


@plugin.command("pack", help="Validate FOLDER/plugin.toml, build the guest if needed and zip the package.")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The .zip to write (default: ./<id>-<version>.zip).",
)
def plugin_pack(folder: Path, output: Path | None) -> None:
    import io
    import os
    import tomllib
    import zipfile

    from app.manifest import ManifestError, ValidationContext, parse_manifest
    from app.plugins import reserved
    from app.plugins.modules import available_modules
    from app.plugins.packages import ALLOWED_ROOT_FILES, PackageError, read_zip
    from app.sandbox.build import BuildError, ensure_built

    toml = folder / "plugin.toml"
    if not toml.is_file():
        _author_error(f"{folder} has no plugin.toml")
    try:
        manifest = parse_manifest(
            toml.read_bytes(),
            ValidationContext(
                available_modules=available_modules(),
                entity_name_clash=reserved.entity_name_clash,
                plugin_id_clash=reserved.plugin_id_clash,
            ),
        )
        plugin_id, version = manifest.id, manifest.version
        custom = [p.path for p in manifest.pages if p.type == "custom"]
    except ManifestError as exc:
        # Checked against a bare platform: what a plugin needs from the plugins it depends on (their
        # installation, their entities) can only be checked when it is installed.
        raw = tomllib.loads(toml.read_text(encoding="utf-8")) if exc.issues[0].path != "plugin.toml" else {}
        deferred = ("is not installed", "unknown entity")
        later = [
            i
            for i in exc.issues
            if raw.get("dependencies", {}).get("plugins") and any(d in i.message for d in deferred)
        ]
        if len(later) != len(exc.issues):
            click.secho(f"portal: {toml} has {len(exc.issues)} problem(s):", fg="red", err=True)
            for issue in exc.issues:
                click.echo(f"  {issue}", err=True)
            sys.exit(1)
        for issue in later:
            click.echo(f"note: checked at install time: {issue}", err=True)
        plugin_id, version = str(raw["plugin"]["id"]), str(raw["plugin"]["version"])
        custom = [str(p.get("path")) for p in raw.get("ui", {}).get("pages", []) if p.get("type") == "custom"]
    try:
        wasm = ensure_built(folder)
    except BuildError as exc:
        _author_error(str(exc))
        raise  # unreachable
    if custom and wasm is None:
        _author_error(f"custom page {custom[0]} needs guest/app.py or a prebuilt plugin.wasm in {folder}")

    # Only the package's own files: never guest sources, tests or dotfiles.
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name in ALLOWED_ROOT_FILES)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            # A fixed timestamp makes the zip (and so its sha256) depend on the content only.
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (folder / name).read_bytes())
    data = buffer.getvalue()
    try:
        read_zip(data)  # the same checks an upload goes through
    except PackageError as exc:
        _author_error(f"the package would be refused: {exc}")
    target = output or Path(f"{plugin_id}-{version}.zip")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    click.echo(f"Packed {target} ({len(data) / (1024 * 1024):.1f} MiB): {', '.join(names)}")


if __name__ == "__main__":
    main()


@plugin.command(
    "run",
    help="Render a page of the plugin in FOLDER (or run an action) against the configured database "
    "and print the UI JSON with the call's duration, fuel and host calls. Nothing is kept "
    "unless --commit.",
)
@click.argument("folder", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--page", "page_path", required=True, help="The page path of the manifest, e.g. /inventory/stocktaking."
)
@click.option("--params", default="{}", help="Query parameters as a JSON object.")
@click.option("--action", default=None, help="Run this action of the page instead of rendering it.")
@click.option("--data", default="{}", help="The action's form data as a JSON object.")
@click.option(
    "--tenant", "tenant_ref", default=None, help="Tenant slug or id (default: the user's first tenant)."
)
@click.option("--user", "email", default=None, help="Act as this user (default: the first platform admin).")
@click.option(
    "--commit",
    is_flag=True,
    help="Keep what the call wrote (and the plugin's install) instead of rolling back.",
)
def plugin_run(
    folder: Path,
    page_path: str,
    params: str,
    action: str | None,
    data: str,
    tenant_ref: str | None,
    email: str | None,
    commit: bool,
) -> None:
    import json

    from app.plugins.packages import PackageError
    from app.sandbox import dev_run
    from app.sandbox.build import BuildError

    try:
        params_value, data_value = json.loads(params), json.loads(data)
    except json.JSONDecodeError as exc:
        _author_error(f"--params and --data take JSON objects: {exc}")
        raise  # unreachable
    if not isinstance(params_value, dict) or not isinstance(data_value, dict):
        _author_error("--params and --data take JSON objects")
    settings = settings_or_exit()
    migrate_or_exit(settings)

    async def work(s: AsyncSession) -> dict[str, Any]:
        return await dev_run.run(
            s,
            settings,
            folder,
            page_path,
            params_value,
            tenant_ref=tenant_ref,
            email=email,
            action=action,
            data=data_value,
            commit=commit,
        )

    try:
        out = run_db(settings, work)
    except (PackageError, BuildError) as exc:
        _author_error(str(exc))
        raise  # unreachable
    click.echo(json.dumps(out.get("ui"), indent=2, ensure_ascii=False) if "ui" in out else "")
    for problem in out.get("problems", []):
        click.secho(f"problem: {problem['path']}: {problem['message']}", fg="yellow", err=True)
    for entry in out.get("logs", []):
        click.echo(f"log {entry['level']}: {entry['message']}", err=True)
    stats = out.get("stats") or {}
    click.echo(
        f"{out['plugin']} {out['page']} as {out['user']} in {out['tenant']}: "
        f"{stats.get('duration_ms', 0):.1f} ms, fuel {stats.get('fuel', 0):,}, memory {stats.get('memory_mb', 0)} MiB, "
        f"host calls {stats.get('host_calls', 0)}, "
        f"output {stats.get('output_bytes', 0):,} bytes (limits: {out['limits']})"
        + (", fresh instance" if stats.get("fresh_instance") else ""),
        err=True,
    )
    if "failure" in out:
        _author_error(f"{out['failure']['kind']}: {out['failure']['message']}")
