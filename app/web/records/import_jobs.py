"""A background import's page (app.records.import_jobs runs it): one URL renders the whole page or, for
HTMX's polling, just the progress fragment, which polls again while the job runs. The job row is read
from the database, so any host over it serves the page; only the user who started it sees it."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from litestar import Response
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.core.errors import NotFound
from app.core.i18n import N_
from app.core.import_jobs import ImportJob
from app.manifest.labels import pick_label
from app.records import import_jobs
from app.web.context import TenantContext
from app.web.records.target import Target, common, need_action
from app.web.render import page, redirect

POLL_SECONDS = 1


async def _job(ctx: TenantContext, target: Target, job_id: str) -> ImportJob:
    need_action(ctx, target, "import")
    job = await ctx.db.scalar(
        sa.select(ImportJob).where(
            ImportJob.id == uuid.UUID(job_id),
            ImportJob.tenant_id == ctx.tenant_id,
            ImportJob.user_id == ctx.user.id,
            ImportJob.entity == target.ref.name,
        )
    )
    if job is None or job.status == "preview":
        raise NotFound("No such import")
    return job


async def job_page(request: HTMXRequest, ctx: TenantContext, target: Target, job_id: str) -> Template:
    job = await _job(ctx, target, job_id)
    status = import_jobs.status_of(job)
    return await page(
        request,
        ctx,
        "records/import_job.html",
        fragment="records/_import_progress.html",
        **common(ctx, target),
        job=job,
        status=status,
        problem=import_jobs.LOST if status == "failed" and not job.problem else job.problem,
        percent=100 * job.done // job.total if job.total else (100 if status == "done" else 0),
        job_url=f"{target.url}/import/jobs/{job.id}",
        poll=POLL_SECONDS,
        title=N_("Import %(entity)s", entity=pick_label(target.ref.spec.label, ctx.language)),
    )


async def refused_rows(
    request: HTMXRequest, ctx: TenantContext, target: Target, job_id: str
) -> Response[Any]:
    """The refused rows so far, as they were in the file, with their row numbers and errors."""
    job = await _job(ctx, target, job_id)
    return Response(
        "\ufeff" + job.refused_csv,
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{target.ref.name}-refused-rows.csv"',
            "cache-control": "no-store",
        },
    )


async def cancel(request: HTMXRequest, ctx: TenantContext, target: Target, job_id: str) -> Response[Any]:
    """Ask the job to stop before its next batch (it may run on another host: the row carries it)."""
    job = await _job(ctx, target, job_id)
    if job.status == "running":
        job.cancel_requested = True
    return redirect(f"{target.url}/import/jobs/{job.id}")
