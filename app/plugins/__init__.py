"""Plugins: packages, lifecycle (install, upgrade, enable), runtime registry, configurations and base
modules. The manifest model and parser live in :mod:`app.manifest`."""
