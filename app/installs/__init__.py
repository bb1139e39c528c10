"""Plugins on the platform: upload, install, upgrade, enable and disable per tenant (`lifecycle`),
uninstall and purge (`removal`), backups before data is lost (`backups`) and the names the base
reserves (`reserved`). Built on `app.plugins`, the catalog of installed plugins as the host sees them."""
