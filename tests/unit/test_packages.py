"""Plugin packages (app.plugins.packages): defensive zip reading, folders, storing by hash."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from app.plugins import packages
from app.plugins.packages import MAX_FILES, PackageError, make_zip, read_folder, read_package, read_zip

TOML = '[plugin]\nid = "notes"\nname = "Notes"\nversion = "1.0.0"\n'


def zip_of(*entries: tuple[str | zipfile.ZipInfo, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def refused(data: bytes) -> str:
    with pytest.raises(PackageError) as info:
        read_zip(data)
    return str(info.value)


def test_a_good_package_reads_with_its_hash():
    data = zip_of(("plugin.toml", TOML), ("README.md", "# Notes"), ("plugin.wasm", b"\0asm\1\0\0\0"))
    package = read_zip(data)
    assert package.manifest_text == TOML
    assert package.sha256 == hashlib.sha256(data).hexdigest()
    assert set(package.files) == {"plugin.toml", "README.md", "plugin.wasm"}
    assert package.wasm == b"\0asm\1\0\0\0"


def test_path_traversal_is_refused():
    assert (
        refused(zip_of(("plugin.toml", TOML), ("../evil.py", "boom")))
        == "Refused path traversal in package: ../evil.py"
    )
    assert (
        refused(zip_of(("plugin.toml", TOML), ("docs/../../evil.py", "boom")))
        == "Refused path traversal in package: docs/../../evil.py"
    )


def test_absolute_paths_are_refused():
    assert (
        refused(zip_of(("plugin.toml", TOML), ("/etc/cron.d/evil", "boom")))
        == "Refused absolute path in package: /etc/cron.d/evil"
    )
    assert (
        refused(zip_of(("plugin.toml", TOML), ("C:/Windows/evil.dll", "boom")))
        == "Refused absolute path in package: C:/Windows/evil.dll"
    )


def test_symlink_entries_are_refused():
    link = zipfile.ZipInfo("README.md")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    link.create_system = 3  # unix
    assert (
        refused(zip_of(("plugin.toml", TOML), (link, "/etc/passwd")))
        == "Refused symbolic link in package: README.md"
    )


def test_too_many_files_are_refused():
    entries = [("plugin.toml", TOML)] + [(f"data/{i}.txt", "x") for i in range(MAX_FILES)]
    assert (
        refused(zip_of(*entries))
        == f"The package holds {MAX_FILES + 1} files; at most {MAX_FILES} are allowed"
    )


def test_too_many_unpacked_bytes_are_refused(monkeypatch):
    # A zip bomb in small: a megabyte of zeros compresses to about a kilobyte.
    monkeypatch.setattr(packages, "MAX_UNPACKED_BYTES", 1024 * 1024)
    bomb = zip_of(("plugin.toml", TOML), ("blob.bin", b"\0" * (1024 * 1024)))
    assert len(bomb) < 10_000
    assert refused(bomb) == "The package unpacks to more than 1 MiB"


def test_the_real_unpacked_limit_is_64_mib():
    assert packages.MAX_UNPACKED_BYTES == 64 * 1024 * 1024
    bomb = zip_of(("plugin.toml", TOML), ("blob.bin", b"\0" * (packages.MAX_UNPACKED_BYTES + 1 - len(TOML))))
    assert refused(bomb) == "The package unpacks to more than 64 MiB"


def test_a_lying_size_header_is_refused():
    data = bytearray(zip_of(("plugin.toml", TOML), ("a.txt", b"0123456789")))
    # Patch the central directory's uncompressed size of a.txt (10) down to 5.
    central = data.rfind(b"PK\x01\x02")
    assert data[central + 24 : central + 28] == (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (5).to_bytes(4, "little")
    assert refused(bytes(data)) == "Cannot unpack a.txt: Bad CRC-32 for file 'a.txt'"


def test_damaged_compressed_data_is_refused():
    data = bytearray(zip_of(("plugin.toml", TOML), ("a.txt", b"hello " * 1000)))
    start = data.find(b"a.txt", data.find(b"PK\x03\x04", 4)) + len("a.txt")
    data[start : start + 8] = b"\xff" * 8  # garbage in the deflate stream
    assert refused(bytes(data)).startswith("Cannot unpack a.txt: ")


def test_not_a_zip_is_refused():
    assert (
        refused(b"plain text, not an archive")
        == "Not a zip archive (a plugin package is a .zip with plugin.toml at its root)"
    )
    assert refused(b"PK\x03\x04 truncated").startswith("Not a readable zip archive: ")


def test_a_zip_without_plugin_toml_is_refused():
    assert refused(zip_of(("README.md", "# Nothing"))) == "The package has no plugin.toml at its root"
    # ...also when it is nested one folder down, as zipping a folder often does
    assert refused(zip_of(("notes/plugin.toml", TOML))) == "The package has no plugin.toml at its root"


def test_plugin_toml_must_be_utf8():
    assert refused(zip_of(("plugin.toml", b"id = '\xff'"))) == "plugin.toml is not UTF-8 text (byte 6)"


def test_folders_zip_and_read_back(tmp_path: Path):
    folder = tmp_path / "notes"
    (folder / "assets").mkdir(parents=True)
    (folder / "plugin.toml").write_text(TOML)
    (folder / "assets" / "icon.svg").write_text("<svg/>")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"junk")
    from_folder = read_folder(folder)
    assert set(from_folder.files) == {"plugin.toml", "assets/icon.svg"}
    assert read_package(folder).sha256 == from_folder.sha256
    zipped = read_zip(make_zip(folder))
    assert zipped.files == from_folder.files

    archive = tmp_path / "notes.zip"
    archive.write_bytes(make_zip(folder))
    assert read_package(archive).files == from_folder.files
    with pytest.raises(PackageError, match="No such package"):
        read_package(tmp_path / "missing.zip")
    with pytest.raises(PackageError, match=r"has no plugin\.toml"):
        read_folder(tmp_path)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_folders_with_symlinks_are_refused(tmp_path: Path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "plugin.toml").write_text(TOML)
    (folder / "secret").symlink_to("/etc/passwd")
    with pytest.raises(PackageError) as info:
        read_folder(folder)
    assert str(info.value) == "Refused symbolic link in package: secret"
