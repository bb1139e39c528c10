"""The validating readers of ``plugin.toml``, one module per part of the manifest; :mod:`app.manifest.parser`
runs them in order."""
