"""`portal serve`: migrate, make sure the platform admin exists, then run uvicorn."""

from __future__ import annotations

from typing import Any

import click

from app.cli.common import migrate_or_exit, run_db, settings_or_exit


@click.command(help="Migrate the database, then serve the portal over HTTP.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--demo/--no-demo", default=False, help="Create a demo tenant with sample data on first start.")
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request (a proxy in front usually keeps the access log; it costs CPU per request).",
)
def serve(host: str, port: int, workers: int, demo: bool, access_log: bool) -> None:
    import uvicorn

    from app import bootstrap
    from app.cli import workers as worker_pool

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
    options: dict[str, Any] = {"log_level": "info", "access_log": access_log, "proxy_headers": False}
    if workers > 1 and worker_pool.reuse_port_supported():
        worker_pool.run(host, port, workers, options)
        return
    uvicorn.run("app.server:app_factory", factory=True, host=host, port=port, workers=workers, **options)
