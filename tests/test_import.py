"""Imports: validation of every row, all-or-nothing, idempotent, round-trips with export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ctis.domain.records import SCHEMAS, columns
from ctis.io.files import FileFormatError, write_csv, write_xlsx
from ctis.io.importer import ImportFailed, import_file
from ctis.services import record_counts
from ctis.storage.models import Victim
from ctis.storage.repository import Repository
from tests.conftest import TODAY
from tests.factories import Fixture

VICTIM_HEADER = [
    "external_id", "name_latin", "name_khmer", "sex", "date_of_birth", "age", "nationality",
    "province", "exploitation_type", "rescue_date",
]  # fmt: skip


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def export_csv(engine: Engine, kind: str) -> str:
    out = io.StringIO()
    with Session(engine) as session:
        write_csv(out, columns(kind), Repository(session).export_rows(kind))
    return out.getvalue()


def snapshot(engine: Engine) -> dict[str, str]:
    return {kind: export_csv(engine, kind) for kind in SCHEMAS}


GOOD = [
    "V-1",
    "Sok Sreymom",
    "សុខ ស្រីមុំ",
    "female",
    "12/03/2008",
    "",
    "KHM",
    "Preah Sihanouk",
    "forced_criminality",
    "2024-02-01",
]


def test_import_victims_and_reimport_creates_no_duplicates(engine: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path / "v.csv",
        VICTIM_HEADER,
        [GOOD, ["V-2", "", "ចាន់ ដារ៉ា", "male", "", "16", "Viet Nam", "KH-12", "", "01/02/2024"]],
    )
    first = import_file(engine, path, "victims", today=TODAY)
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    again = import_file(engine, path, "victims", today=TODAY)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(Victim)).scalar_one() == 2
        v1 = s.scalars(select(Victim).where(Victim.external_id == "V-1")).one()
        assert Repository(s).identity(v1)["name_khmer"] == "សុខ ស្រីមុំ"
        assert "សុខ".encode() not in v1.name_khmer  # sealed at rest
        assert v1.province == "KH-18" and v1.age_at_rescue == 15
        assert v1.version == 1
    # Changing one cell updates that record and bumps its version only.
    changed = write(tmp_path / "v2.csv", VICTIM_HEADER, [[*GOOD[:8], "sexual_exploitation", GOOD[9]]])
    assert import_file(engine, changed, "victims", today=TODAY).updated == 1
    with Session(engine) as s:
        assert s.scalars(select(Victim.version).where(Victim.external_id == "V-1")).one() == 2


BAD_ROWS = [
    (
        ["V-3", "", "", "female", "", "", "KHM", "Atlantis", "", "2024-01-01"],
        "province",
        "unknown province",
    ),
    (
        ["V-4", "", "", "female", "", "", "XYZ", "KH-1", "", "2024-01-01"],
        "nationality",
        "unknown country",
    ),
    (
        ["V-5", "", "", "female", "", "", "KHM", "KH-1", "smuggling", "2024-01-01"],
        "exploitation_type",
        "unknown exploitation type",
    ),
    (
        ["V-6", "", "", "female", "2010-05-05", "", "KHM", "KH-1", "", "2009-01-01"],
        "rescue_date",
        "before the date of birth",
    ),
    (
        ["V-7", "", "", "female", "", "", "KHM", "KH-1", "", "2030-01-01"],
        "rescue_date",
        "in the future",
    ),
    (
        ["V-8", "", "", "female", "2010-01-01", "25", "KHM", "KH-1", "", "2024-01-01"],
        "age",
        "contradicts",
    ),
    (["V-9", "", "", "female", "", "", "KHM", "KH-1", "", ""], "rescue_date", "required"),
    (
        ["V-1", "", "", "female", "", "", "KHM", "KH-1", "", "2024-01-01"],
        "external_id",
        "duplicate of row 2",
    ),
    (["V-10", "", "", "female", "", "old", "KHM", "KH-1", "", "2024-01-01"], "age", "whole number"),
]


def test_every_bad_row_is_reported_and_nothing_is_written(engine: Engine, tmp_path: Path) -> None:
    f = Fixture()
    f.victim("2023-01-01", external_id="existing")
    f.save(engine)
    before = snapshot(engine)
    rows = [GOOD] + [r for r, _c, _m in BAD_ROWS]
    path = write(tmp_path / "bad.csv", VICTIM_HEADER, rows)
    with pytest.raises(ImportFailed) as info:
        import_file(engine, path, "victims", today=TODAY)
    errors = info.value.errors
    for row_no, (_row, column, message) in enumerate(BAD_ROWS, start=3):
        matching = [e for e in errors if e.row == row_no and e.column == column]
        assert matching, f"no error for row {row_no} column {column}: {errors}"
        assert message in matching[0].reason
    assert snapshot(engine) == before  # the good row was not written either


def test_unknown_reference_and_unknown_or_missing_columns(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "v.csv", [*VICTIM_HEADER, "case"], [[*GOOD, "CASE-NOPE"]])
    with pytest.raises(ImportFailed) as info:
        import_file(engine, path, "victims", today=TODAY)
    (e,) = info.value.errors
    assert (e.row, e.column, e.value) == (2, "case", "CASE-NOPE") and "no cases record" in e.reason
    path = write(
        tmp_path / "cols.csv",
        ["external_id", "sex", "favourite_colour"],
        [["V-1", "female", "red"]],
    )
    with pytest.raises(ImportFailed) as info:
        import_file(engine, path, "victims", today=TODAY)
    reasons = {(e.column, e.reason.split(" (")[0]) for e in info.value.errors}
    assert ("favourite_colour", "unknown column for victims") in reasons
    assert ("rescue_date", "required column is missing") in reasons
    assert record_counts(engine)["victims"] == 0


def test_wrong_encoding_and_wrong_file_type(engine: Engine, tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("external_id,name_latin,sex,rescue_date\nV-1,José,male,2024-01-01\n".encode("latin-1"))
    with pytest.raises(FileFormatError, match="not UTF-8"):
        import_file(engine, latin1, "victims", today=TODAY)
    fake = tmp_path / "fake.xlsx"
    fake.write_text("external_id\nV-1\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="not a valid XLSX"):
        import_file(engine, fake, "victims", today=TODAY)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4 ...")
    with pytest.raises(FileFormatError, match="unsupported file type"):
        import_file(engine, pdf, "victims", today=TODAY)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(FileFormatError, match="empty"):
        import_file(engine, empty, "victims", today=TODAY)
    assert record_counts(engine)["victims"] == 0


def test_xlsx_import_with_real_dates_and_numbers(engine: Engine, tmp_path: Path) -> None:
    from datetime import datetime

    wb = Workbook()
    ws = wb.active
    ws.append(VICTIM_HEADER)
    ws.append(
        [
            "V-X",
            "Keo Bopha",
            "កែវ បុប្ផា",
            "Female",
            datetime(2007, 5, 1),
            None,
            "Cambodia",
            "Kampot",
            "Forced labour",
            datetime(2024, 4, 2),
        ]
    )
    ws.append(["V-Y", None, None, "male", None, 14.0, "KHM", "KH-7", None, "2024-04-02"])
    path = tmp_path / "v.xlsx"
    wb.save(path)
    result = import_file(engine, path, "victims", today=TODAY)
    assert result.created == 2
    with Session(engine) as s:
        ages = dict(s.execute(select(Victim.external_id, Victim.age_at_rescue)).all())
    assert ages == {"V-X": 16, "V-Y": 14}


def test_semicolon_delimited_csv_with_bom(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    text = ";".join(VICTIM_HEADER) + "\n" + ";".join(GOOD) + "\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert import_file(engine, path, "victims", today=TODAY).created == 1


@pytest.mark.slow
def test_export_import_round_trip_of_every_kind(demo_engine: Engine, engine: Engine, tmp_path: Path) -> None:
    """What export writes, import reads back unchanged — into an empty database, then again."""
    original = snapshot(demo_engine)
    for kind in SCHEMAS:
        path = tmp_path / f"{kind}.csv"
        path.write_text(original[kind], encoding="utf-8")
        assert import_file(engine, path, kind, today=TODAY).created == original[kind].count("\n") - 1
    assert snapshot(engine) == original
    for kind in SCHEMAS:
        result = import_file(engine, tmp_path / f"{kind}.csv", kind, today=TODAY)
        assert result.created == result.updated == 0, kind
    assert "សុខ" in original["victims"] or "ចាន់" in original["victims"]


def test_xlsx_export_round_trip(engine: Engine, tmp_path: Path) -> None:
    f = Fixture()
    ag = f.agency(external_id="AG-1", name_km="ក្រសួង")
    op = f.operation("2024-01-01", lead_agency=ag.external_id)
    f.victim(
        "2024-01-01",
        op,
        name_khmer="សុខ ស្រីមុំ",
        means_of_control="threats;debt_bondage",
        agency="AG-1",
    )
    f.save(engine)
    before = snapshot(engine)
    with Session(engine) as s:
        for kind in ("agencies", "operations", "victims"):
            write_xlsx(
                tmp_path / f"{kind}.xlsx",
                {kind: (columns(kind), list(Repository(s).export_rows(kind)))},
            )
    for kind in ("agencies", "operations", "victims"):
        assert import_file(engine, tmp_path / f"{kind}.xlsx", kind, today=TODAY).unchanged >= 1
    assert snapshot(engine) == before
