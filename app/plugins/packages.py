"""Plugin packages: a folder or a .zip with plugin.toml at its root, plugin.wasm, README, icon.

Zips are read defensively: no path traversal, absolute paths, links or nested folders' escapes,
bounded file count and unpacked size; anything else is refused with a clear message.
"""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app.core.i18n import N_

MAX_FILES = 64
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
ALLOWED_ROOT_FILES = {
    "plugin.toml",
    "plugin.wasm",
    "README.md",
    "README.txt",
    "README",
    "icon.png",
    "icon.svg",
}


class PackageError(Exception):
    """The package cannot be used; the message says why, for the person who uploaded it."""


@dataclass(frozen=True)
class Package:
    manifest_text: str
    files: dict[str, bytes]  # every file by its path inside the package
    sha256: str

    @property
    def wasm(self) -> bytes | None:
        return self.files.get("plugin.wasm")


def _finish(files: dict[str, bytes], sha256: str) -> Package:
    raw = files.get("plugin.toml")
    if raw is None:
        raise PackageError(N_("The package has no plugin.toml at its root"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackageError(N_("plugin.toml is not UTF-8 text (byte %(start)s)", start=exc.start)) from exc
    return Package(text, files, sha256)


def read_zip(data: bytes) -> Package:
    if not data.startswith(b"PK"):
        raise PackageError(N_("Not a zip archive (a plugin package is a .zip with plugin.toml at its root)"))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise PackageError(N_("Not a readable zip archive: %(exc)s", exc=exc)) from exc
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if len(infos) > MAX_FILES:
        raise PackageError(
            N_(
                "The package holds %(infos_length)s files; at most %(max_files)s are allowed",
                infos_length=len(infos),
                max_files=MAX_FILES,
            )
        )
    total = 0
    files: dict[str, bytes] = {}
    for info in infos:
        name = info.filename
        path = PurePosixPath(name)
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or path.is_absolute():
            raise PackageError(N_("Refused absolute path in package: %(name)s", name=name))
        if ".." in path.parts or "\\" in name:
            raise PackageError(N_("Refused path traversal in package: %(name)s", name=name))
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise PackageError(N_("Refused symbolic link in package: %(name)s", name=name))
        total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise PackageError(
                N_(
                    "The package unpacks to more than %(value)s MiB",
                    value=MAX_UNPACKED_BYTES // (1024 * 1024),
                )
            )
        try:
            with archive.open(info) as handle:
                content = handle.read(MAX_UNPACKED_BYTES + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            # Damaged data, a bad CRC, an unsupported compression method or an encrypted entry.
            raise PackageError(N_("Cannot unpack %(name)s: %(exc)s", name=name, exc=exc)) from exc
        if len(content) != info.file_size:
            raise PackageError(N_("The size of %(name)s does not match its zip header", name=name))
        files[str(path)] = content
    return _finish(files, hashlib.sha256(data).hexdigest())


#: Where `portal plugin run` keeps its scratch database inside a plugin folder: never part of the package.
DEV_FOLDER = ".portal-dev"


def read_folder(folder: Path) -> Package:
    if not (folder / "plugin.toml").is_file():
        raise PackageError(N_("%(folder)s has no plugin.toml", folder=folder))
    files: dict[str, bytes] = {}
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise PackageError(
                N_("Refused symbolic link in package: %(relative_to)s", relative_to=path.relative_to(folder))
            )
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        if path.relative_to(folder).parts[0] == DEV_FOLDER:
            continue
        rel = str(path.relative_to(folder).as_posix())
        files[rel] = path.read_bytes()
        if len(files) > MAX_FILES * 8:
            raise PackageError(N_("%(folder)s holds too many files", folder=folder))
        digest.update(rel.encode() + b"\0" + files[rel])
    return _finish(files, digest.hexdigest())


SOURCE_ONLY = ("guest/", "tests/")


def read_source_folder(folder: Path, wasm: bytes | None) -> Package:
    """A plugin's source folder as the package it builds to: guest sources and tests stay out, the
    built component (when there is one) goes in as plugin.wasm."""
    base = read_folder(folder)
    files = {k: v for k, v in base.files.items() if not k.startswith(SOURCE_ONLY) and k != "plugin.wasm"}
    if wasm is not None:
        files["plugin.wasm"] = wasm
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + files[rel])
    return _finish(files, digest.hexdigest())


def read_package(path: Path) -> Package:
    if path.is_dir():
        return read_folder(path)
    if not path.is_file():
        raise PackageError(N_("No such package: %(path)s", path=path))
    return read_zip(path.read_bytes())


def make_zip(folder: Path) -> bytes:
    """Pack a plugin folder (used by `portal plugin pack` and the tests)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()
