"""``[plugin]``, ``[dependencies]``, ``[permissions]`` (the capabilities) and ``[limits]``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.i18n import N_, phrase
from app.core.validation import at, ix, kind, one_of, show
from app.manifest.model import Capabilities, Dependencies, PluginDependency, PluginInfo
from app.manifest.reader import ManifestReader
from app.manifest.semver import SemVer, parse_version
from app.manifest.vocabulary import (
    CAPABILITY_KEYS,
    CONSTRAINT,
    DEPENDENCY_KEYS,
    KEBAB_ID,
    LIMIT_KEYS,
    MAX_PLUGIN_ID_LENGTH,
    PLUGIN_DEPENDENCY_KEYS,
    PLUGIN_KEYS,
)


def read_plugin_info(r: ManifestReader) -> PluginInfo:
    if "plugin" not in r.data:
        r.add("plugin", N_("the [plugin] table is required"))
    section = r.table(r.data, "plugin", "") or {}
    path = "plugin"
    if isinstance(r.data.get("plugin"), Mapping):
        r.keys(section, PLUGIN_KEYS, path, required=("id", "name", "version"))
    plugin_id = r.text(section, "id", path) or ""
    valid_id = False
    if plugin_id:
        if not KEBAB_ID.match(plugin_id):
            r.add(
                f"{path}.id",
                N_(
                    "plugin id '%(plugin_id)s' must be kebab-case (lowercase letters and digits in words joined by single hyphens, starting with a letter)",
                    plugin_id=plugin_id,
                ),
            )
        elif len(plugin_id) > MAX_PLUGIN_ID_LENGTH:
            r.add(
                f"{path}.id",
                N_(
                    "plugin id is %(plugin_id_length)s characters long (at most %(max_plugin_id_length)s)",
                    plugin_id_length=len(plugin_id),
                    max_plugin_id_length=MAX_PLUGIN_ID_LENGTH,
                ),
            )
        elif plugin_id in r.ctx.available_modules:
            r.add(
                f"{path}.id",
                N_("plugin id '%(plugin_id)s' is the name of a base module", plugin_id=plugin_id),
            )
        elif clash := r.ctx.plugin_id_clash(plugin_id):
            r.add(f"{path}.id", clash)
        else:
            valid_id = True
    # Checks that depend on the id (e.g. the ui.<plugin>. namespace) only run with a valid one.
    r.plugin_id = plugin_id if valid_id else ""
    name = r.text(section, "name", path) or ""
    version = r.text(section, "version", path) or ""
    if version:
        r.semver(version, f"{path}.version")
    description = r.text(section, "description", path, nonempty=False) or ""
    author = r.text(section, "author", path, nonempty=False) or ""
    min_platform = r.text(section, "min_platform_version", path)
    if min_platform is not None:
        required = r.semver(min_platform, f"{path}.min_platform_version")
        try:
            platform = parse_version(r.ctx.platform_version)
        except ValueError:
            platform = None
        if required is not None and platform is not None and required > platform:
            r.add(
                f"{path}.min_platform_version",
                N_(
                    "requires platform >= %(min_platform)s, this is %(platform_version)s",
                    min_platform=min_platform,
                    platform_version=r.ctx.platform_version,
                ),
            )
    return PluginInfo(plugin_id, name, version, description, author, min_platform)


def read_dependencies(r: ManifestReader) -> Dependencies:
    path = "dependencies"
    section = r.table(r.data, "dependencies", "")
    if section is None:
        return Dependencies()
    r.keys(section, DEPENDENCY_KEYS, path)
    modules: list[str] = []
    if "modules" in section:
        available = one_of(sorted(r.ctx.available_modules)) or phrase(N_("none"))
        for item_path, module in r.names(section["modules"], f"{path}.modules", phrase(N_("module ids"))):
            if module in modules:
                r.add(item_path, N_("module '%(module)s' is listed twice", module=module))
                continue
            modules.append(module)
            if module not in r.ctx.available_modules:
                r.add(
                    item_path,
                    N_(
                        "base module '%(module)s' is not available on this platform (available: %(available)s)",
                        module=module,
                        available=available,
                    ),
                )
    plugins = (
        read_plugin_dependencies(r, section.get("plugins"), f"{path}.plugins") if "plugins" in section else []
    )
    return Dependencies(tuple(modules), tuple(plugins))


def read_plugin_dependencies(r: ManifestReader, value: Any, path: str) -> list[PluginDependency]:
    entries: list[tuple[str, Any, Any]] = []  # (path, id, constraint)
    if isinstance(value, Mapping):
        entries = [(at(path, str(k)), k, v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            item_path = ix(path, i)
            if isinstance(item, str):
                entries.append((item_path, item, None))
            elif isinstance(item, Mapping):
                r.keys(item, PLUGIN_DEPENDENCY_KEYS, item_path, required=("id",))
                entries.append((item_path, item.get("id"), item.get("version")))
            else:
                r.add(
                    item_path,
                    N_("expected a plugin id or a table {id, version}, got %(kind)s", kind=kind(item)),
                )
    else:
        r.add(
            path,
            N_("expected an array of plugin ids or a table of id = version, got %(kind)s", kind=kind(value)),
        )
    out: list[PluginDependency] = []
    seen: set[str] = set()
    for item_path, dep_id, constraint in entries:
        if not isinstance(dep_id, str) or not KEBAB_ID.match(dep_id):
            r.add(item_path, N_("%(dep_id)s is not a plugin id", dep_id=show(dep_id)))
            continue
        if dep_id in seen:
            r.add(item_path, N_("plugin '%(dep_id)s' is listed twice", dep_id=dep_id))
            continue
        seen.add(dep_id)
        if dep_id == r.plugin_id:
            r.add(item_path, N_("a plugin cannot depend on itself"))
            continue
        minimum = read_constraint(r, constraint, item_path)
        out.append(PluginDependency(dep_id, str(minimum) if minimum is not None else None))
        installed = r.ctx.installed_plugins.get(dep_id)
        if installed is None:
            r.add(item_path, N_("plugin '%(dep_id)s' is not installed", dep_id=dep_id))
            continue
        if minimum is not None:
            try:
                ok = parse_version(installed) >= minimum
            except ValueError:
                ok = False
            if not ok:
                r.add(
                    item_path,
                    N_(
                        "requires plugin '%(dep_id)s' >= %(minimum)s, installed is %(installed)s",
                        dep_id=dep_id,
                        minimum=minimum,
                        installed=installed,
                    ),
                )
    return out


def read_constraint(r: ManifestReader, constraint: Any, path: str) -> SemVer | None:
    if constraint is None:
        return None
    if not isinstance(constraint, str):
        r.add(
            path,
            N_("version constraint must be a string like '>=1.0.0', got %(kind)s", kind=kind(constraint)),
        )
        return None
    if constraint.strip() in ("", "*"):
        return None
    match = CONSTRAINT.match(constraint)
    try:
        if match is None:
            raise ValueError
        return parse_version(match.group(2))
    except ValueError:
        r.add(
            path,
            N_(
                "version constraint '%(constraint)s' is not valid (use '>=MAJOR.MINOR.PATCH')",
                constraint=constraint,
            ),
        )
        return None


def read_capabilities(r: ManifestReader) -> Capabilities:
    section = r.table(r.data, "permissions", "")
    if section is None:
        return Capabilities()
    r.keys(section, CAPABILITY_KEYS, "permissions")
    values = {key: bool(r.flag(section, key, "permissions")) for key in CAPABILITY_KEYS}
    return Capabilities(**values)


def read_limits(r: ManifestReader) -> dict[str, int]:
    section = r.table(r.data, "limits", "")
    if section is None:
        return {}
    r.keys(section, LIMIT_KEYS, "limits")
    out: dict[str, int] = {}
    for key in LIMIT_KEYS:
        value = r.integer(section, key, "limits", 1)
        if value is not None:
            out[key] = value
    return out
