"""`portal plugin dev FOLDER --page PATH`: the dev loop in one command. Runs the page (as `portal
plugin run` does: rebuild through the cache, dev revision, scratch database, rolled back), then watches
plugin.toml and guest/ by polling their modification times and runs it again after every change, until
Ctrl-C. No file-watching dependency: a poll of a plugin folder costs microseconds."""

from __future__ import annotations

import time
from pathlib import Path

import click

from app.cli.plugins import plugin, plugin_run

__all__ = ["plugin_dev", "snapshot"]


def snapshot(folder: Path) -> dict[str, float]:
    """Modification times of what a build and an install read: plugin.toml, the root files, guest/."""
    seen: dict[str, float] = {}
    candidates = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    guest = folder / "guest"
    if guest.is_dir():
        candidates += [p for p in guest.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in candidates:
        if path.name == "plugin.wasm" or path.name.startswith("."):
            continue  # written by the build itself
        try:
            seen[path.relative_to(folder).as_posix()] = path.stat().st_mtime_ns
        except OSError:  # removed meanwhile (an editor's swap file)
            continue
    return seen


@plugin.command(
    "dev",
    help="Run a page of the plugin in FOLDER (as `plugin run`), then again after every change to "
    "plugin.toml or guest/ (polled), until Ctrl-C: edit, save, read the new UI JSON.",
)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--page", "page_path", required=True, help="The page path of the manifest, e.g. /crm/overview.")
@click.option("--params", default="{}", help="Query parameters as a JSON object.")
@click.option("--tenant", "tenant_ref", default=None, help="Tenant slug or id.")
@click.option("--user", "email", default=None, help="Act as this user.")
@click.option(
    "--now", "now_text", default=None, help="Tell the page this instant (ISO 8601), as `plugin run --now`."
)
@click.option("--interval", type=float, default=0.5, show_default=True, help="Seconds between polls.")
@click.option("--runs", type=int, default=0, hidden=True, help="Stop after this many runs (tests); 0: never.")
@click.pass_context
def plugin_dev(
    ctx: click.Context,
    folder: Path,
    page_path: str,
    params: str,
    tenant_ref: str | None,
    email: str | None,
    now_text: str | None,
    interval: float,
    runs: int,
) -> None:
    done = 0
    try:
        while True:
            before = snapshot(folder)  # taken first: a change during the run triggers the next one
            click.secho(f"--- {time.strftime('%H:%M:%S')} run {done + 1}", fg="cyan", err=True)
            try:
                ctx.invoke(
                    plugin_run,
                    folder=folder,
                    page_path=page_path,
                    params=params,
                    action=None,
                    data="{}",
                    event_type=None,
                    payload="{}",
                    tenant_ref=tenant_ref,
                    email=email,
                    commit=False,
                    now_text=now_text,
                )
            except SystemExit as exc:  # a problem was reported; keep watching
                if exc.code not in (0, None):
                    click.secho(f"(exit {exc.code}; fix and save to run again)", fg="yellow", err=True)
            done += 1
            if runs and done >= runs:
                return
            click.echo("watching plugin.toml and guest/ for changes (Ctrl-C to stop)", err=True)
            while snapshot(folder) == before:
                time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


@plugin.command(
    "test",
    help="Validate FOLDER/plugin.toml, build the guest, then run FOLDER/tests with pytest; the tests get "
    "the fixtures plugin_dir, manifest and plugin_wasm (no import of the portal needed). Extra arguments "
    "go to pytest.",
    context_settings={"ignore_unknown_options": True},
)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def plugin_test(folder: Path, pytest_args: tuple[str, ...]) -> None:
    import os
    import subprocess
    import sys

    from app.cli.common import author_error
    from app.cli.plugin_fixtures import PLUGIN_DIR_ENV, PLUGIN_WASM_ENV
    from app.manifest import ManifestError, parse_manifest
    from app.sandbox.build import BuildError, ensure_built

    folder = folder.resolve()
    try:
        parse_manifest((folder / "plugin.toml").read_text(encoding="utf-8"))
        wasm = ensure_built(folder)
    except (OSError, ManifestError, BuildError) as exc:
        author_error(str(exc))
        raise  # unreachable
    tests = folder / "tests"
    if not tests.is_dir():
        author_error(f"{folder} has no tests/ folder")
    env = {**os.environ, PLUGIN_DIR_ENV: str(folder), PLUGIN_WASM_ENV: str(wasm or "")}
    args = [sys.executable, "-m", "pytest", "-p", "app.cli.plugin_fixtures", "--rootdir", str(folder)]
    done = subprocess.run([*args, "-q", str(tests), *pytest_args], cwd=folder, env=env, check=False)
    sys.exit(done.returncode)
