"""Reading and writing tabular files.

The format is decided by the file's content, not only its name: an Excel file
saved as ``.csv`` or a CSV saved as ``.xlsx`` gets a message saying so.  CSV
must be UTF-8 (a byte-order mark is accepted, as Excel writes one); anything
else is refused with the byte position, because guessing an encoding would
garble Khmer names silently.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

_ZIP_MAGIC = b"PK\x03\x04"

#: A spreadsheet reads a cell that begins with one of these as a formula (or, for tab and CR, as
#: something that can hide one), so a name like ``=HYPERLINK(...)`` typed into a record would run
#: on the machine of whoever opens the export (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Text that needs the guard quote: a formula start after any quotes already there (so that a value
#: that really begins with ``'=`` keeps its quote through export and import; see :func:`unguard`).
_GUARDED = re.compile(r"'*[=+\-@\t\r]")
#: A negative number written as text is a number to a spreadsheet, never a formula.
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
#: What :func:`unguard` undoes: the one quote :func:`guard_cell` put before a formula start.
_UNGUARD = re.compile(r"'+[=+\-@\t\r]")


class FileFormatError(ValueError):
    """The file cannot be read as a table at all."""


def detect_format(path: Path, data: bytes) -> str:
    suffix = path.suffix.lower()
    is_zip = data.startswith(_ZIP_MAGIC)
    if suffix in {".xlsx", ".xlsm"}:
        if not is_zip:
            raise FileFormatError(f"{path.name}: not a valid XLSX workbook (is it a CSV or an old .xls?)")
        return "xlsx"
    if suffix == ".xls" or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileFormatError(f"{path.name}: old Excel .xls files are not supported; save as .xlsx or CSV")
    if is_zip:
        return "xlsx"
    if suffix not in {".csv", ".txt", ".tsv", ""}:
        raise FileFormatError(f"{path.name}: unsupported file type {suffix!r}; use .csv or .xlsx")
    return "csv"


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV or XLSX file, every value as text.

    The guard quote CTIS writes before text that begins like a formula (:func:`guard_cell`) is
    removed, so that an export re-imports unchanged.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    fmt = detect_format(path, data)
    header, rows = _read_xlsx(path, data) if fmt == "xlsx" else _read_csv(path, data)
    header = [unguard(h).strip().lower() for h in header]
    while header and header[-1] == "":
        header.pop()
    if not header:
        raise FileFormatError(f"{path.name}: the file is empty (no header row)")
    out = []
    for values in rows:
        cells = [unguard(v) for v in values]  # the quote write_csv/write_xlsx put before a formula start
        if not any(c.strip() for c in cells):
            out.append({})  # keep row numbering; blank rows are skipped by the importer
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            out.append({"__extra__": "yes"})
            continue
        cells += [""] * (len(header) - len(cells))
        out.append(dict(zip(header, cells, strict=False)))
    return header, out


def _read_csv(path: Path, data: bytes) -> tuple[list[str], list[list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{path.name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start}); "
            "save the file as 'CSV UTF-8'"
        ) from None
    if "\x00" in text:
        raise FileFormatError(f"{path.name}: contains NUL bytes; is it a binary file or UTF-16?")
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise FileFormatError(f"{path.name}: malformed CSV at line {reader.line_num}: {exc}") from None
    if not rows:
        raise FileFormatError(f"{path.name}: the file is empty (no header row)")
    return rows[0], rows[1:]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def needs_guard(value: str) -> bool:
    """Whether a spreadsheet could take ``value`` for a formula (or it already carries a guard)."""
    return bool(_GUARDED.match(value)) and not _NUMBER.fullmatch(value)


def guard_cell(value: Any) -> str:
    """The text CSV writes for ``value``, neutralised against formula injection.

    Text that begins with ``= + - @``, tab or CR gets a single quote in front, which a spreadsheet
    shows as text and never evaluates; numbers (a negative one included) stay numbers.  Text that
    already begins with quotes before such a character gets one more, so :func:`unguard` — which
    removes exactly one — gives back what was written, and an export re-imports unchanged.
    """
    if isinstance(value, str) and needs_guard(value):
        return "'" + value
    return _cell(value)


def unguard(value: str) -> str:
    """Undo :func:`guard_cell`: drop the one quote before a formula start, leave all else alone."""
    return value[1:] if _UNGUARD.match(value) else value


def _xlsx_cell(ws: WriteOnlyWorksheet, value: Any) -> Any:
    """A worksheet value for ``value``: text that could be a formula is a text cell, never a formula.

    openpyxl stores any string beginning with ``=`` as a formula; here such text (and any text a
    spreadsheet might evaluate) is forced to a string cell with Excel's quote-prefix style (the
    hidden apostrophe Excel itself uses, so editing the cell keeps it text).  The cell holds the
    value as it is, with no visible quote; only a value that already begins with quotes before a
    formula start gets one more, as in CSV, so that :func:`unguard` on import is the same for both.
    """
    if not isinstance(value, str) or not needs_guard(value):
        return value
    cell = WriteOnlyCell(ws, value="'" + value if value.startswith("'") else value)
    cell.data_type = "s"
    cell.quotePrefix = True
    return cell


def _read_xlsx(path: Path, data: bytes) -> tuple[list[str], list[list[str]]]:
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise FileFormatError(f"{path.name}: not a readable XLSX workbook ({exc})") from None
    try:
        ws = wb.worksheets[0]
        rows = [[_cell(v) for v in row] for row in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
    if not rows:
        raise FileFormatError(f"{path.name}: the first sheet is empty (no header row)")
    return rows[0], rows[1:]


def write_csv(out: IO[str], header: Sequence[str], rows: Iterable[dict[str, Any] | Sequence[Any]]) -> None:
    """Header and rows as CSV, every text cell guarded against formula injection (:func:`guard_cell`)."""
    writer = csv.writer(out, lineterminator="\n")
    # The csv module quotes a field holding "\n" (the line terminator) but not one holding a lone
    # "\r", which every reader takes for a line break: "x\r=1+1" would become a row of its own
    # beginning with a formula.  A row with a CR in it is written fully quoted instead.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow([guard_cell(h) for h in header])
    for row in rows:
        values = [row.get(h) for h in header] if isinstance(row, dict) else row
        cells = [guard_cell(v) for v in values]
        (quoted if any("\r" in c for c in cells) else writer).writerow(cells)


def write_xlsx(
    path: Path | IO[bytes],
    sheets: dict[str, tuple[Sequence[str], Iterable[dict[str, Any] | Sequence[Any]]]],
) -> None:
    """One sheet per entry; text cells stay text so that ids like ``007`` survive Excel.

    Text a spreadsheet could take for a formula is written as text, never as one (:func:`_xlsx_cell`).
    """
    wb = Workbook(write_only=True)
    for title, (header, rows) in sheets.items():
        ws = wb.create_sheet(title=title[:31])
        ws.append([_xlsx_cell(ws, h) for h in header])
        for row in rows:
            values = [row.get(h, "") for h in header] if isinstance(row, dict) else list(row)
            ws.append([_xlsx_cell(ws, v) for v in values])
    wb.save(path)
