"""`portal plugin`: install and list plugin packages; create, build, pack and run your own."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import Actor
from app.cli.common import author_error, fail, migrate_or_exit, run_db, settings_or_exit
from app.core.settings import Settings


@click.group(help="Plugins: install packages, list them; create, build and pack your own.")
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
    from app.installs import lifecycle
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

    try:
        lines = run_db(settings, work)
    except PackageError as exc:  # e.g. a component importing what the host does not provide
        author_error(str(exc))
        raise  # unreachable
    for line in lines:
        click.echo(line)


@plugin.command("list", help="List the plugins with their state and the tenants they are enabled in.")
def plugin_list() -> None:
    from sqlalchemy import select

    from app.core.models import PluginTenant, Tenant
    from app.installs import lifecycle

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


# -- plugin authoring: new, build, pack, run ---------------------------------------------------------


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
        author_error(str(exc))
        raise  # unreachable
    click.echo(f"Created {folder}: plugin.toml, guest/app.py, README.md, tests/test_plugin.py")
    click.echo("Next:")
    click.echo(f"  portal plugin build {folder}")
    click.echo(f"  portal plugin dev {folder} --page /{name}/overview   # runs it again after each edit")
    click.echo(f"  portal plugin test {folder}")
    click.echo(f"  portal plugin pack {folder}")
    click.echo(f"  portal plugin install {name}-0.1.0.zip --tenant SLUG --enable")


@plugin.command(
    "build",
    help="Build FOLDER/guest (Python app.py, JavaScript app.js or WebAssembly text app.wat) into FOLDER/plugin.wasm; unchanged sources come from the cache.",
)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def plugin_build(folder: Path) -> None:
    import time

    from app.sandbox.build import BuildError, build_component, cache_dir, source_hash

    started = time.perf_counter()
    try:
        from app.sandbox.build_js import is_js_guest, js_source_hash

        python = (folder / "guest" / "app.py").is_file()
        key = js_source_hash(folder) if is_js_guest(folder) else source_hash(folder) if python else ""
        cached = bool(key) and (cache_dir() / f"{key}.wasm").is_file()
        path = build_component(folder)
    except BuildError as exc:
        author_error(str(exc))
        raise  # unreachable
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    shown = f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.1f} KiB"
    click.echo(f"Built {path} ({shown}) in {seconds:.1f} s" + (" (cached)" if cached else ""))


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

    from app.installs import reserved
    from app.manifest import ManifestError, ValidationContext, parse_manifest
    from app.plugins.modules import available_modules
    from app.plugins.packages import ALLOWED_ROOT_FILES, PackageError, read_zip
    from app.sandbox.build import BuildError, ensure_built
    from app.sandbox.engine import ComponentRejected, check_component_bytes, missing_exports, needed_exports

    toml = folder / "plugin.toml"
    if not toml.is_file():
        author_error(f"{folder} has no plugin.toml")
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
        author_error(str(exc))
        raise  # unreachable
    if custom and wasm is None:
        author_error(
            f"custom page {custom[0]} needs guest/app.py, app.js or app.wat, or a prebuilt plugin.wasm in {folder}"
        )
    if wasm is not None:
        raw_manifest = tomllib.loads(toml.read_text(encoding="utf-8"))
        needs = needed_exports(
            bool(custom),
            bool(raw_manifest.get("events", {}).get("subscribed")),
            [str(e.get("point")) for e in raw_manifest.get("extensions", []) if isinstance(e, dict)],
        )
        try:  # what an upload refuses, refused here: e.g. imports the host does not provide
            check_component_bytes(wasm.read_bytes(), needs_extensions=bool(raw_manifest.get("extensions")))
        except ComponentRejected as exc:
            author_error(f"the package would be refused: {exc}")
        lacking = missing_exports(wasm.read_bytes(), needs)
        if lacking:
            author_error(
                f"the package would be refused: plugin.wasm does not export what plugin.toml declares: "
                f"{', '.join(lacking)}"
            )

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
        author_error(f"the package would be refused: {exc}")
    target = output or Path(f"{plugin_id}-{version}.zip")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    click.echo(f"Packed {target} ({len(data) / (1024 * 1024):.1f} MiB): {', '.join(names)}")


@plugin.command(
    "run",
    help="Render a page of the plugin in FOLDER (or run an action, or deliver an event) and print the UI "
    "JSON with the call's duration, fuel and host calls. The working copy is installed under a dev "
    "revision each time (no version bump needed). Without DATABASE_URL or PORTAL_DATA_DIR it uses a "
    "scratch database under FOLDER/.portal-dev (created with a tenant and a user on first use). Nothing "
    "is kept unless --commit; the exit code is 1 on any problem (trap, limit, invalid UI JSON).",
)
@click.argument("folder", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--page", "page_path", default=None, help="The page path of the manifest, e.g. /inventory/stocktaking."
)
@click.option("--params", default="{}", help="Query parameters as a JSON object.")
@click.option("--action", default=None, help="Run this action of the page instead of rendering it.")
@click.option("--data", default="{}", help="The action's form data as a JSON object.")
@click.option("--event", "event_type", default=None, help="Call handle-event with this event type instead.")
@click.option("--payload", default="{}", help="The event's payload as a JSON object (with --event).")
@click.option(
    "--tenant", "tenant_ref", default=None, help="Tenant slug or id (default: the user's first tenant)."
)
@click.option("--user", "email", default=None, help="Act as this user (default: the first platform admin).")
@click.option(
    "--commit",
    is_flag=True,
    help="Keep what the call wrote (and the plugin's install) instead of rolling back.",
)
@click.option(
    "--now",
    "now_text",
    default=None,
    help="Tell the page or action this instant instead of the clock's (ISO 8601, e.g. 2026-03-01T09:30:00Z; "
    "without an offset: UTC), for repeatable runs and tests.",
)
def plugin_run(
    folder: Path,
    page_path: str | None,
    params: str,
    action: str | None,
    data: str,
    event_type: str | None,
    payload: str,
    tenant_ref: str | None,
    email: str | None,
    commit: bool,
    now_text: str | None,
) -> None:
    import datetime as dt
    import json

    from app.cli import dev_run
    from app.plugins.packages import PackageError
    from app.sandbox.build import BuildError

    if (page_path is None) == (event_type is None):
        fail("give --page PATH (a page or, with --action, an action) or --event TYPE")
    if event_type is not None and action is not None:
        fail("--action goes with --page, not with --event")
    try:
        values = [json.loads(params), json.loads(data), json.loads(payload)]
    except json.JSONDecodeError as exc:
        author_error(f"--params, --data and --payload take JSON objects: {exc}")
        raise  # unreachable
    if not all(isinstance(v, dict) for v in values):
        author_error("--params, --data and --payload take JSON objects")
    params_value, data_value, payload_value = values
    now = None
    if now_text is not None:
        try:
            now = dt.datetime.fromisoformat(now_text)
        except ValueError:
            author_error(
                f"--now takes an ISO 8601 date and time, e.g. 2026-03-01T09:30:00Z (got {now_text!r})"
            )
            raise  # unreachable
        now = now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)
    settings, scratch = _run_settings(folder)
    migrate_or_exit(settings)
    if scratch:
        click.echo(
            f"Using the scratch database {settings.database_url.split(':///')[-1]} {scratch}", err=True
        )

    async def work(s: AsyncSession) -> dict[str, Any]:
        return await dev_run.run(
            s,
            settings,
            folder,
            page_path,
            params_value,
            event=event_type,
            payload=payload_value,
            tenant_ref=tenant_ref,
            email=email,
            action=action,
            data=data_value,
            commit=commit,
            now=now,
        )

    try:
        out = run_db(settings, work)
    except (PackageError, BuildError) as exc:
        author_error(str(exc))
        raise  # unreachable
    if "ui" in out:
        click.echo(json.dumps(out.get("ui"), indent=2, ensure_ascii=False))
    for problem in out.get("problems", []):
        click.secho(f"problem: {problem['path']}: {problem['message']}", fg="yellow", err=True)
    for entry in out.get("logs", []):
        click.echo(f"log {entry['level']}: {entry['message']}", err=True)
    stats = out.get("stats") or {}
    click.echo(
        f"{out['plugin']} {out['version']} {out['page']} as {out['user']} in {out['tenant']}: "
        f"{stats.get('duration_ms', 0):.1f} ms, fuel {stats.get('fuel', 0):,}, memory {stats.get('memory_mb', 0)} MiB, "
        f"host calls {stats.get('host_calls', 0)}, "
        f"output {stats.get('output_bytes', 0):,} bytes (limits: {out['limits']})"
        + (", fresh instance" if stats.get("fresh_instance") else ""),
        err=True,
    )
    if "failure" in out:
        author_error(f"{out['failure']['kind']}: {out['failure']['message']}")
    if out.get("problems"):
        author_error(f"the UI JSON has {len(out['problems'])} problem(s)")


def _run_settings(folder: Path) -> tuple[Settings, str]:
    """The configured database, or (neither DATABASE_URL nor PORTAL_DATA_DIR set) a scratch one under
    the plugin folder, created on first use with a tenant `dev` and a platform admin — never a silent
    ./var where the command happens to run. The second value says which, for the author."""
    import os

    from app.plugins.packages import DEV_FOLDER

    if os.environ.get("DATABASE_URL") or os.environ.get("PORTAL_DATA_DIR"):
        return settings_or_exit(), ""
    base = folder if folder.is_dir() else folder.parent
    scratch = base / DEV_FOLDER
    fresh = not (scratch / "portal.db").exists()
    env = {**os.environ, "PORTAL_DATA_DIR": str(scratch)}
    settings = settings_or_exit(env)
    if fresh:
        migrate_or_exit(settings)
        run_db(settings, _scratch_setup(settings))
        return settings, "(created: tenant dev, user admin@localhost; delete the folder to start over)"
    return settings, "(no DATABASE_URL or PORTAL_DATA_DIR set; delete the folder to start over)"


def _scratch_setup(settings: Settings) -> Callable[[AsyncSession], Awaitable[None]]:
    async def work(s: AsyncSession) -> None:
        from app.bootstrap import ensure_base
        from app.identity import directory

        await ensure_base(s, settings)
        if await directory.find_tenant(s, "dev") is None:
            await directory.create_tenant(s, Actor(None, "cli"), "dev", "Dev")

    return work


@plugin.command("disable", help="Disable plugin ID in a tenant (its data stays).")
@click.argument("plugin_id")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
def plugin_disable(plugin_id: str, tenant_ref: str) -> None:
    from app.identity import directory
    from app.installs import lifecycle

    settings = settings_or_exit()
    migrate_or_exit(settings)

    async def work(s: AsyncSession) -> str:
        tenant = await directory.get_tenant(s, tenant_ref)
        await lifecycle.disable(s, Actor(None, "cli"), tenant.id, plugin_id)
        return f"Disabled {plugin_id} in {tenant.slug}"

    click.echo(run_db(settings, work))


@plugin.command(
    "uninstall", help="Uninstall plugin ID (disable it in every tenant first). Its tables and data are kept."
)
@click.argument("plugin_id")
def plugin_uninstall(plugin_id: str) -> None:
    from app.installs import removal

    settings = settings_or_exit()
    migrate_or_exit(settings)

    async def work(s: AsyncSession) -> str:
        row = await removal.uninstall(s, Actor(None, "cli"), plugin_id)
        return f"Uninstalled {plugin_id} {row.version} (tables and data kept)"

    click.echo(run_db(settings, work))
