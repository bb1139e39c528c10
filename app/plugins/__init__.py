"""The catalog of installed plugins as the host sees them (`runtime`: parsed manifests, tables, the
plugins enabled per tenant), their packages, configurations and the base modules. Uploading,
installing, enabling and removing them is `app.installs`, a layer above; the manifest model and parser
live in `app.manifest`."""
