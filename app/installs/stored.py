"""Plugin packages kept in the blob store (app.core.blobs: the database or a bucket), where every host
reads them; and the import of packages that earlier versions kept only under one host's data dir."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import blobs
from app.core.models import PluginPackage
from app.plugins.packages import Package

log = logging.getLogger("portal.plugins")


async def keep_package(session: AsyncSession, package: Package, row: PluginPackage) -> None:
    """Store the package's files (each once, by hash) and note them on the plugin's row."""
    files = {}
    store = blobs.store_of(session)
    for rel, content in sorted(package.files.items()):
        files[rel] = await store.put(session, content)
    row.package_files = files


async def stage_package(store: blobs.BlobStore, package: Package) -> None:
    """Write the package's files to the store before the install's transaction (an S3 upload of a
    megabytes-large plugin.wasm takes time); `keep_package` then only adds their rows. A package refused
    later leaves objects no row names: `portal storage sweep` removes them."""
    for content in package.files.values():
        await store.stage(content)


async def import_local_packages(session: AsyncSession, data_dir: Path) -> list[str]:
    """Packages of rows stored before packages lived in the database: read them from
    <data dir>/plugins/<id>/<package sha256>/ (where this host kept them) into the database. Returns the
    ids imported; rows whose files this host does not hold are left for the host that does."""
    imported = []
    for row in (await session.scalars(select(PluginPackage).order_by(PluginPackage.plugin_id))).all():
        if row.package_files:
            continue
        folder = data_dir / "plugins" / row.plugin_id / row.package_sha256
        if not folder.is_dir():
            if row.has_wasm:
                log.warning("%s: its package is neither in the database nor under %s", row.plugin_id, folder)
            continue
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()
        }
        await keep_package(session, Package(row.manifest_toml, files, row.package_sha256), row)
        imported.append(row.plugin_id)
        log.info("%s: package imported into the database from %s", row.plugin_id, folder)
    return imported
