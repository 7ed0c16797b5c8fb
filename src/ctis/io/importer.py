"""Validated, all-or-nothing imports.

The importer reads the whole file, validates every row against the domain
schema, checks external ids (duplicates inside the file) and references to
other records (they must exist already), and only when *no* row has an error
writes everything in one transaction.  Rows are matched on external id, so
importing the same file twice creates nothing new and changes nothing.

Row numbers are spreadsheet row numbers: the header is row 1, the first record
row 2, as a data officer sees them in Excel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from ctis.domain.records import SCHEMAS, RecordIn, columns, field_errors
from ctis.io.files import read_table
from ctis.storage.db import session_scope
from ctis.storage.repository import Repository


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column}" if self.column else "")
        shown = f" (value {self.value!r})" if self.value else ""
        return f"{where}{shown}: {self.reason}"


class ImportFailed(Exception):
    """Nothing was written; ``errors`` says why, row by row."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        super().__init__(f"{len(errors)} error(s); nothing was imported")


@dataclass
class ImportResult:
    kind: str
    rows: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    records: list[RecordIn] = field(default_factory=list, repr=False)


def _required(schema: type[RecordIn]) -> list[str]:
    return [name for name, f in schema.model_fields.items() if f.is_required()]


def _errors_from(exc: ValidationError, row_no: int, row: dict[str, str]) -> list[RowError]:
    return [
        RowError(row_no, col, str(row.get(col, "") if col else ""), why) for col, why in field_errors(exc)
    ]


@dataclass
class Validated:
    records: list[RecordIn]
    errors: list[RowError]
    #: external id -> spreadsheet row number, to place errors found later
    row_of: dict[str, int]


def validate_rows(
    kind: str, header: list[str], rows: list[dict[str, str]], today: date | None = None
) -> Validated:
    """Validate every row; return the records and every error found (not just the first)."""
    schema = SCHEMAS[kind]
    errors: list[RowError] = []
    known = set(columns(kind))
    for col in header:
        if col and col not in known:
            errors.append(
                RowError(1, col, "", f"unknown column for {kind} (expected: {', '.join(columns(kind))})")
            )
    for col in _required(schema):
        if col not in header:
            errors.append(RowError(1, col, "", "required column is missing"))
    if errors:
        return Validated([], errors, {})

    records: list[RecordIn] = []
    seen: dict[str, int] = {}
    context = {"today": today or date.today()}
    for index, row in enumerate(rows, start=2):
        if not row:
            continue
        if "__extra__" in row:
            errors.append(RowError(index, "", "", "more cells than header columns"))
            continue
        data = {k: v for k, v in row.items() if k}
        try:
            record = schema.model_validate(data, context=context)
        except ValidationError as exc:
            errors.extend(_errors_from(exc, index, row))
            continue
        if record.external_id in seen:
            errors.append(
                RowError(
                    index,
                    "external_id",
                    record.external_id,
                    f"duplicate of row {seen[record.external_id]}",
                )
            )
            continue
        seen[record.external_id] = index
        records.append(record)
    return Validated(records, errors, seen)


def _reference_errors(
    repo: Repository, kind: str, records: list[RecordIn], rows: dict[str, int]
) -> list[RowError]:
    schema = SCHEMAS[kind]
    errors: list[RowError] = []
    for column, ref_kind in schema.references.items():
        wanted = set()
        for r in records:
            value = getattr(r, column)
            wanted.update(value if isinstance(value, list) else [value] if value else [])
        if not wanted:
            continue
        found = repo.ids_by_external_id(ref_kind, wanted)
        for r in records:
            value = getattr(r, column)
            for ext in value if isinstance(value, list) else [value] if value else []:
                if ext not in found:
                    errors.append(
                        RowError(
                            rows[r.external_id],
                            column,
                            ext,
                            f"no {ref_kind} record with this external id",
                        )
                    )
    return errors


def import_file(
    engine: Engine,
    path: Path,
    kind: str,
    actor: str = "import",
    today: date | None = None,
    progress: Callable[[int], Any] | None = None,
) -> ImportResult:
    """Import ``path`` as records of ``kind``.

    On any error raise :class:`ImportFailed` and write nothing.
    """
    if kind not in SCHEMAS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(SCHEMAS)}")
    header, rows = read_table(path)
    validated = validate_rows(kind, header, rows, today=today)
    if validated.errors:
        raise ImportFailed(validated.errors)
    records = validated.records
    result = ImportResult(kind=kind, rows=len(records), records=records)
    with session_scope(engine) as session:
        repo = Repository(session, actor=actor)
        ref_errors = _reference_errors(repo, kind, records, validated.row_of)
        if ref_errors:
            raise ImportFailed(ref_errors)
        step = 500
        for i in range(0, len(records), step):
            counts = repo.upsert_many(records[i : i + step])
            result.created += counts["created"]
            result.updated += counts["updated"]
            result.unchanged += counts["unchanged"]
            if progress:
                progress(min(step, len(records) - i))
    return result
