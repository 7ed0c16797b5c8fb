"""Standard exports: CTDC rows, TIP and GLOTIP tables, on the demo database and on hand-made records."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from ctis.cli.main import app
from ctis.domain.periods import parse_period
from ctis.exports import ctdc as ctdc_module
from ctis.exports import export_ctdc, export_glotip, export_tip
from ctis.exports import release as release_module
from ctis.exports.ctdc import k_anonymise
from ctis.exports.output import write_ctdc, write_tables
from ctis.exports.release import OTHER, TableExport
from ctis.metrics import registry
from ctis.metrics.report import compute_report, drill_down
from ctis.publication.gate import TOTAL
from ctis.security.permissions import SYSTEM, Actor, Forbidden
from ctis.storage.models import AuditEntry, Victim
from tests.factories import Fixture

#: The 27 variables of the CTDC global synthetic dataset codebook (2024), in order.
CTDC_COLUMNS = [
    "yearOfRegistration", "gender", "ageBroad", "citizenship", "CountryOfExploitation", "traffickMonths",
    "meansDebtBondageEarnings", "meansThreats", "meansAbusePsyPhySex", "meansFalsePromises",
    "meansDrugsAlcohol", "meansDenyBasicNeeds", "meansExcessiveWorkHours", "meansWithholdDocs",
    "isForcedLabour", "isSexualExploit", "isOtherExploit",
    "typeOfLabourAgriculture", "typeOfLabourConstruction", "typeOfLabourDomesticWork",
    "typeOfLabourHospitality", "typeOfSexProstitution", "typeOfSexPornography",
    "recruiterRelationIntimatePartner", "recruiterRelationFriend", "recruiterRelationFamily",
    "recruiterRelationOther",
]  # fmt: skip
GENDERS = {"", "Man", "Woman", "Trans/Transgender/NonConforming"}
AGES = {"", "0--8", "9--17", "18--20", "21--23", "24--26", "27--29", "30--38", "39--47", "48+"}
QUASI = ["gender", "ageBroad", "citizenship", "CountryOfExploitation", "yearOfRegistration",
         "isForcedLabour", "isSexualExploit", "isOtherExploit"]  # fmt: skip
VIEWER = Actor(id=90, username="viewer-t", role="viewer", agency_id=None)
ANALYST = Actor(id=91, username="analyst-t", role="analyst", agency_id=None, scope="all")
SOCIAL = Actor(id=92, username="social-t", role="social_worker", agency_id=None)


@pytest.fixture
def demo(demo_engine: Engine) -> Iterator[Session]:
    """A session on the shared demo database whose writes (the audit entries) are rolled back."""
    with Session(demo_engine) as session:
        yield session
        session.rollback()


def _check_ctdc_values(rows: list[dict[str, object]]) -> None:
    flags = CTDC_COLUMNS[6:]
    for row in rows:
        assert list(row) == CTDC_COLUMNS
        assert row["gender"] in GENDERS and row["ageBroad"] in AGES
        assert row["traffickMonths"] == "" and row["typeOfSexPornography"] == ""
        for c in ("citizenship", "CountryOfExploitation"):
            assert row[c] == "" or (isinstance(row[c], str) and len(row[c]) == 3 and row[c].isupper())
        assert all(row[f] in (1, "") for f in flags), row
        assert isinstance(row["yearOfRegistration"], int)


def test_ctdc_rows_are_the_registry_victims_in_the_codebook_layout(demo: Session) -> None:
    period = parse_period("2024")
    exact = export_ctdc(demo, SYSTEM, period, exact=True)
    total = compute_report(demo, period, ["victims_rescued"]).metrics["victims_rescued"]
    assert list(exact.columns) == CTDC_COLUMNS
    assert len(exact.rows) == exact.source_rows == total
    _check_ctdc_values(exact.rows)
    women = compute_report(demo, period, ["victims_rescued"], ["sex"]).by["sex"]["victims_rescued"]["female"]
    assert sum(r["gender"] == "Woman" for r in exact.rows) == women
    # unmapped values are reported with the number of records, never dropped silently
    fishing = demo.scalar(
        select(func.count())
        .select_from(Victim)
        .where(Victim.labour_sector == "fishing", Victim.rescue_date.between(period.start, period.end))
    )
    assert fishing and fishing > 0
    found = {(u.field, u.value): u.count for u in exact.unmapped}
    assert found[("labour_sector", "fishing")] == fishing


def test_ctdc_protected_rows_are_k_anonymous(demo: Session) -> None:
    period = parse_period("2024")
    result = export_ctdc(demo, SYSTEM, period, k=11)
    _check_ctdc_values(result.rows)
    assert len(result.rows) + result.dropped == result.source_rows
    assert sum(result.generalised.values()) > 0  # the demo has rare combinations to blank
    groups = Counter(tuple(r[c] for c in QUASI) for r in result.rows)
    assert min(groups.values()) >= 11
    # no row may keep a sector flag once its form of exploitation was blanked
    for r in result.rows:
        if not any(r[c] for c in ("isForcedLabour", "isSexualExploit", "isOtherExploit")):
            assert not any(r[c] for c in CTDC_COLUMNS[17:23])


def test_k_anonymise_blanks_citizenship_first_then_drops() -> None:
    def row(gender: str, citizenship: str, age: str = "18--20", year: int = 2024) -> dict[str, object]:
        r: dict[str, object] = dict.fromkeys(CTDC_COLUMNS, "")
        r.update(yearOfRegistration=year, gender=gender, ageBroad=age, citizenship=citizenship)
        r.update(isSexualExploit=1, typeOfSexProstitution=1)
        return r

    rows = [row("Woman", "KHM") for _ in range(3)] + [row("Woman", "THA"), row("Woman", "THA")]
    rows += [row("Woman", "VNM"), row("Man", "KHM", "48+", 2023)]
    kept, blanked, dropped = k_anonymise(rows, 3)
    # the Thai and Vietnamese women pool once their citizenship is blank; the man of 2023
    # (a year is never blanked) stays alone with every other attribute gone, and is dropped
    assert dropped == 1 and len(kept) == 6
    assert blanked == {
        "citizenship": 4, "ageBroad": 1, "gender": 1, "isSexualExploit": 1, "typeOfSexProstitution": 1,
    }  # fmt: skip
    assert sorted(str(r["citizenship"]) for r in kept) == ["", "", "", "KHM", "KHM", "KHM"]
    assert all(r["gender"] == "Woman" and r["ageBroad"] == "18--20" for r in kept)


def _check_tables_against_registry(session: Session, result: TableExport) -> None:
    totals = compute_report(session, result.period).metrics
    assert result.tables and not result.gated.withheld
    for t in result.tables:
        assert t.total.value == totals[t.metric], t.name
        interior = sum(c.value or 0 for c in t.interior())
        assert interior == totals[t.metric], t.name  # each person falls in exactly one cell
        for axis in range(len(t.dimensions)):
            for key, cell in t.cells.items():
                if key[axis] != TOTAL and TOTAL in key:
                    summed = sum(
                        c.value or 0 for k, c in t.cells.items() if TOTAL not in k and k[axis] == key[axis]
                    )
                    assert cell.value == summed, (t.name, key)


def test_tip_exact_tables_equal_the_registry(demo: Session) -> None:
    period = parse_period("TIP2024")
    result = export_tip(demo, SYSTEM, period, exact=True)
    _check_tables_against_registry(demo, result)
    by_name = {t.name: t for t in result.tables}
    victims = compute_report(demo, period, ["victims_rescued"], ["exploitation_form", "victim_status"])
    forms = victims.by["exploitation_form"]["victims_rescued"]
    sex = by_name["victims-identified-sex"]
    for form, n in forms.items():
        assert sex.cells[(form, TOTAL)].value == n
    statuses = victims.by["victim_status"]["victims_rescued"]
    assert by_name["victims-identified-status"].cells[(TOTAL, "confirmed")].value == statuses["confirmed"]
    # a fixed grid of keys: every form and sex is present, zeros included
    assert {k[0] for k in sex.cells} == {"sexual", "labour", "other", "unspecified", "unknown", TOTAL}
    assert "investigations" in by_name and by_name["investigations"].dimensions == ("exploitation_form",)
    assert "sentences-fine-only-sex" in by_name
    assert "EXACT" in result.protection()
    # the new breakdowns drill down to the same records, the suspects' one through their case
    arrests = by_name["arrests-sex"]
    for form in ("labour", "unspecified", "unknown"):
        _, ids = drill_down(demo, "suspects_arrested", period, "exploitation_form", form)
        assert len(ids) == arrests.cells[(form, TOTAL)].value, form
    _, ids = drill_down(demo, "victims_rescued", period, "age_group", "child")
    assert (
        len(ids) == compute_report(demo, period, ["victims_rescued_minor"]).metrics["victims_rescued_minor"]
    )


def test_glotip_exact_tables_equal_the_registry(demo: Session) -> None:
    result = export_glotip(demo, SYSTEM, parse_period("2024"), exact=True)
    _check_tables_against_registry(demo, result)
    citizenship = next(t for t in result.tables if t.name == "victims-sex-citizenship")
    assert (TOTAL, "KHM") in citizenship.cells and (TOTAL, OTHER) in citizenship.cells


def test_tip_needs_a_tip_year_and_exact_needs_reports_export(demo: Session) -> None:
    with pytest.raises(ValueError, match="TIP year"):
        export_tip(demo, SYSTEM, parse_period("2024"), exact=True)
    with pytest.raises(Forbidden):
        export_tip(demo, VIEWER, parse_period("TIP2024"), exact=True)
    with pytest.raises(Forbidden):
        export_ctdc(demo, VIEWER, parse_period("2024"))  # record-level rows: reports:export
    with pytest.raises(Forbidden):
        export_ctdc(demo, SOCIAL, parse_period("2024"))
    with pytest.raises(ValueError, match="k must be"):
        export_ctdc(demo, SYSTEM, parse_period("2024"), k=1)
    assert export_tip(demo, ANALYST, parse_period("TIP2024"), exact=True).tables


@pytest.mark.slow
def test_protected_glotip_publishes_no_small_count(demo_engine: Engine, backend: str, tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("the gate's work does not depend on the engine; once is enough")
    with Session(demo_engine) as session:
        result = export_glotip(session, SYSTEM, parse_period("2024"), params=None)
        session.rollback()
    assert result.tables and not result.exact
    shown = [c for t in result.tables for c in t.cells.values()]
    assert any(c.value is None for c in shown)  # the demo has small cells to hide
    assert all(c.value is None or c.value == 0 or c.value >= 10 for c in shown)
    path = tmp_path / "g.xlsx"
    write_tables(result, path, "xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["notes", *(t.name for t in result.tables)]
    notes = [list(r) for r in wb["notes"].iter_rows(values_only=True)]
    assert notes[1][:2] == ["protection", "mode"] and "suppression" in notes[1][2]
    grid = [list(r) for r in wb["victims-sex-citizenship"].iter_rows(values_only=True)]
    assert grid[-1][0] == "Total" and grid[0][-1] == "Total"
    values = [v for r in grid[1:] for v in r[1:]]
    assert all(v == "x" or (isinstance(v, int) and (v == 0 or v >= 10)) for v in values)


def test_unmapped_values_are_reported_with_counts(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    f = Fixture()
    for _ in range(3):
        f.victim("2024-05-01", exploitation_type="forced_marriage", means_of_control=["threats", "abuse"])
    f.victim(
        "2024-05-02", exploitation_type="forced_labour", labour_sector="fishing", means_of_control=["threats"]
    )
    f.victim("2024-05-03", sex="unknown", nationality="THA")
    f.save(engine)
    # take two mappings away: a CTDC column and a TIP form
    codes = ctdc_module.ctdc_codes
    monkeypatch.setattr(
        ctdc_module, "ctdc_codes", lambda name: {k: v for k, v in codes(name).items() if k != "threats"}
    )
    forms = registry.exploitation_forms()
    fewer = {s: {k: v for k, v in m.items() if k != "forced_marriage"} for s, m in forms.items()}
    monkeypatch.setattr(registry, "exploitation_forms", lambda: fewer)
    monkeypatch.setattr(release_module, "exploitation_forms", lambda: fewer)
    period = parse_period("2024")
    with Session(engine) as session:
        rows = export_ctdc(session, SYSTEM, period, exact=True)
        tip = export_tip(session, SYSTEM, parse_period("TIP2025"), exact=True)
        session.commit()
    found = {(u.field, u.value): u for u in rows.unmapped}
    assert found[("means_of_control", "threats")].count == 4
    assert found[("labour_sector", "fishing")].count == 1
    assert found[("sex", "unknown")].count == 1 and "left blank" in found[("sex", "unknown")].action
    assert all(r["meansThreats"] == "" for r in rows.rows)
    assert sum(r["meansAbusePsyPhySex"] == 1 for r in rows.rows) == 3
    tip_found = {(u.field, u.value): u.count for u in tip.unmapped}
    assert tip_found[("exploitation_type", "forced_marriage")] == 3
    sex = next(t for t in tip.tables if t.name == "victims-identified-sex")
    assert sex.cells[("unknown", TOTAL)].value == 4  # 3 with no form mapped + 1 with no exploitation type
    with Session(engine) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "export")).all()
    assert [(e.kind, e.actor) for e in entries] == [("ctdc", "system"), ("tip", "system")]
    assert '"exact": true' in (entries[0].detail or "")


def test_exact_ctdc_file_says_so(engine: Engine, tmp_path: Path) -> None:
    f = Fixture()
    f.victim("2024-02-01", exploitation_type="sexual_exploitation", labour_sector="sex_industry")
    f.save(engine)
    with Session(engine) as session:
        result = export_ctdc(session, SYSTEM, parse_period("2024"), exact=True)
        protected = export_ctdc(session, SYSTEM, parse_period("2024"))
        session.rollback()
    files = write_ctdc(result, tmp_path / "c.csv", "csv")
    assert [p.name for p in files] == ["c.csv", "c.notes.csv"]
    with files[0].open(encoding="utf-8") as fh:
        data = list(csv.reader(fh))
    assert data[0] == CTDC_COLUMNS and data[1][CTDC_COLUMNS.index("typeOfSexProstitution")] == "1"
    assert "NOT ANONYMISED" in files[1].read_text(encoding="utf-8")
    assert protected.rows == [] and protected.dropped == 1  # one victim alone can never be k-anonymous


def test_ctdc_has_one_row_per_person_from_the_period(engine: Engine) -> None:
    f = Fixture()
    f.victim("2023-06-01", external_id="V-2023", exploitation_type="forced_labour")
    f.victim("2024-02-01", external_id="V-2024", exploitation_type="sexual_exploitation")
    f.victim("2024-03-01", external_id="V-2024B", exploitation_type="sexual_exploitation")
    f.save(engine)
    with Session(engine) as session, session.begin():
        ids = dict(session.execute(select(Victim.external_id, Victim.id)).all())
        # linkage found all three to be one person, represented by the 2023 record (the smallest id)
        for ext in ids:
            session.get(Victim, ids[ext]).person_id = ids["V-2023"]  # type: ignore[union-attr]
    with Session(engine) as session:
        rows = export_ctdc(session, SYSTEM, parse_period("2024"), exact=True).rows
        session.rollback()
    assert len(rows) == 1  # one person
    assert rows[0]["yearOfRegistration"] == 2024  # not the 2023 record that represents the person


@pytest.fixture
def cli_db(sqlite_env: Path) -> Path:
    from ctis import accounts, services

    runner.invoke(app, ["demo"])
    with Session(services.engine()) as session, session.begin():
        accounts.create_user(session, "v1", "pw-" + "x" * 20, "viewer", scope="own")
    return sqlite_env


runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_cli_standard_exports(cli_db: Path) -> None:
    code, _, err = run("standard", "tip", "--period", "2024")
    assert code == 2 and "TIP year" in err
    code, _, err = run("standard", "nope", "--period", "2024")
    assert code == 2 and "unknown layout" in err
    code, _, err = run("standard", "glotip", "--period", "2024-13")
    assert code == 2 and "period" in err
    code, _, err = run("standard", "tip", "--period", "TIP2024", "--threshold", "1")
    assert code == 2 and "threshold" in err
    out = cli_db / "t.xlsx"
    code, _, err = run("standard", "tip", "--period", "TIP2024", "--exact", "--user", "v1", "--out", str(out))
    assert code == 1 and "may not reports:export" in err and not out.exists()
    code, _, err = run(
        "standard", "tip", "--period", "TIP2024", "--exact", "--format", "xlsx", "--out", str(out)
    )
    assert code == 0, err
    wb = load_workbook(out)
    assert wb.sheetnames[0] == "notes" and "victims-identified-sex" in wb.sheetnames
    assert "EXACT" in str(wb["notes"]["C2"].value)

    ctdc = cli_db / "c.xlsx"
    code, stdout, err = run("standard", "ctdc", "--period", "2024", "--format", "xlsx", "--out", str(ctdc))
    assert code == 0 and "warning" in err and "fishing" in err and "k-anonymity" in stdout
    wb = load_workbook(ctdc)
    assert wb.sheetnames == ["notes", "ctdc"]
    header = next(wb["ctdc"].iter_rows(values_only=True))
    assert list(header) == CTDC_COLUMNS

    tip = cli_db / "tip.csv"
    code, _, err = run("standard", "tip", "--period", "TIP2024", "--out", str(tip))
    assert code == 0, err
    with tip.open(encoding="utf-8") as fh:
        cells = list(csv.DictReader(fh))
    assert cells and all(r["mode"] == "protected" for r in cells)
    assert all(r["count"] == "" or int(r["count"]) == 0 or int(r["count"]) >= 10 for r in cells)
    assert (cli_db / "tip.notes.csv").exists()

    from ctis import services

    with Session(services.engine()) as session:
        kinds = session.scalars(select(AuditEntry.kind).where(AuditEntry.action == "export")).all()
    assert kinds == ["tip", "ctdc", "tip"]  # refused exports leave no entry
