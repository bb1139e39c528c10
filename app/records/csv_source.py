"""A CSV file for an import, read a batch of rows at a time from a binary file (an upload, a background
import's stored file): the rows of a 100,000-row file are never all in memory at once.

Row numbers count the data rows (blank lines skipped), as the preview's Row column and the refused rows'
CSV show them. Cells are kept as text: the importer (app.records.importer) parses them.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import BinaryIO

from app.core.errors import ValidationFailed
from app.core.i18n import N_
from app.manifest import STANDARD_FIELDS
from app.plugins.runtime import EntityRef

MAX_IMPORT_BYTES = 32 * 1024 * 1024
MAX_IMPORT_ROWS = 200_000
# First characters a spreadsheet would run as a formula: an export guards them with an apostrophe.
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")

Rows = list[tuple[int, dict[str, str]]]


def check_text(raw: bytes) -> None:
    """Refuse what is not a CSV file to read: empty, too big, not UTF-8 (checked in chunks: no copy of
    the whole file as text)."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise ValidationFailed(
            {"file": N_("The file is larger than %(mb)s MB.", mb=MAX_IMPORT_BYTES // (1024 * 1024))}
        )
    decoder = codecs.getincrementaldecoder("utf-8")()
    step = 1 << 16
    view = memoryview(raw)
    for at in range(0, len(raw), step):
        try:
            decoder.decode(view[at : at + step], final=at + step >= len(raw))
        except UnicodeDecodeError as exc:
            raise ValidationFailed(
                {"file": N_("The file is not UTF-8 text (byte %(at)s).", at=at + exc.start)}
            ) from exc
    if not raw.removeprefix(codecs.BOM_UTF8).strip():
        raise ValidationFailed({"file": N_("Choose a CSV file (or paste CSV text).")})


class CsvFile:
    """The header (read at once) and the data rows, batch by batch, of one CSV file of `entity`."""

    def __init__(self, raw: BinaryIO, entity: EntityRef) -> None:
        self._reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
        try:
            header = [h.strip() for h in next(self._reader)]
        except StopIteration:
            raise ValidationFailed({"file": N_("The CSV file is empty.")}) from None
        except csv.Error as exc:
            raise _unreadable(exc) from exc
        if not any(header):
            raise ValidationFailed({"file": N_("The first line must name the columns (field names).")})
        self.header = header
        self.columns = [h for h in header if h and h not in STANDARD_FIELDS]  # what the rows carry
        self.ignored = [h for h in header if h in STANDARD_FIELDS]
        self.unknown = [h for h in header if h and h not in STANDARD_FIELDS and not entity.spec.has_field(h)]
        self.rows_read = 0

    def batches(self, size: int) -> Iterator[Rows]:
        rows: Rows = []
        try:
            for line in self._reader:
                if not any(cell.strip() for cell in line):
                    continue
                if self.rows_read >= MAX_IMPORT_ROWS:
                    raise ValidationFailed(
                        {"file": N_("Import at most %(rows)s rows at a time.", rows=f"{MAX_IMPORT_ROWS:,}")}
                    )
                self.rows_read += 1
                rows.append((self.rows_read, self._cells(line)))
                if len(rows) == size:
                    yield rows
                    rows = []
        except csv.Error as exc:
            raise _unreadable(exc) from exc
        if rows:
            yield rows

    def _cells(self, line: list[str]) -> dict[str, str]:
        data: dict[str, str] = {}
        for i, name in enumerate(self.header):
            if not name or name in STANDARD_FIELDS:
                continue
            cell = line[i] if i < len(line) else ""
            if len(cell) > 1 and cell[0] == "'" and cell[1] in CSV_FORMULA:
                cell = cell[1:]  # undo the export's formula guard
            if cell != "":  # an empty cell means "no value": the field's default applies
                data[name] = cell
        return data


def count_rows(raw: BinaryIO, entity: EntityRef) -> int:
    """The data rows of the file (parsed, not kept): a background import's total."""
    source = CsvFile(raw, entity)
    for _ in source.batches(1000):
        pass
    return source.rows_read


def _unreadable(exc: csv.Error) -> ValidationFailed:
    return ValidationFailed({"file": N_("This is not a readable CSV file: %(error)s.", error=str(exc))})
