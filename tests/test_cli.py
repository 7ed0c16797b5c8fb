"""The command line, end to end on an SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from ctis.cli.main import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.mark.slow
def test_demo_report_and_drill(sqlite_env: Path) -> None:
    code, out, _ = run("init")
    assert code == 0 and "Database ready" in out
    code, out, _ = run("demo")
    assert code == 0 and "victims" in out
    assert "Demo posts screened: 600" in out  # the screening pages have a queue to show
    code, out, _ = run("demo", "--if-empty")
    assert code == 0 and "not added" in out
    code, _out, err = run("demo")
    assert code == 1 and "--reset" in err

    code, out, _ = run("report", "--period", "2024-H1", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["metrics"]["victims_rescued"] == 290 and data["metrics"]["cases_cracked_down"] == 104
    code, out, _ = run("report", "--period", "2025-H1", "--metric", "posts_flagged", "--format", "json")
    assert code == 0 and json.loads(out)["metrics"]["posts_flagged"] > 0
    assert "by" not in data

    code, out, _ = run("report", "--period", "2024-H1", "--format", "json", "--by", "sex", "--by", "age_band")
    by = json.loads(out)["by"]
    assert sum(by["sex"]["victims_rescued"].values()) == 290
    assert by["sex"]["victims_rescued"]["female"] == 241

    code, out, _ = run("report", "--period", "2024-H1")
    assert code == 0 and "Victims rescued" in out and "290" in out

    code, out, _ = run("report", "--period", "2024-H1", "--format", "csv", "--by", "province")
    assert out.splitlines()[0] == "period,metric,dimension,value,label,count"
    assert "2024-H1,victims_rescued,total,,,290" in out

    xlsx = sqlite_env / "r.xlsx"
    code, _, _ = run(
        "report", "--period", "2024-H1", "--format", "xlsx", "--output", str(xlsx), "--by", "all"
    )
    wb = load_workbook(xlsx)
    assert wb.sheetnames == ["2024-H1", "breakdowns", "definitions"]

    code, out, err = run("drill", "victims_rescued_minor", "--period", "2024-H1")
    assert code == 0 and len(out.splitlines()) == 134 and "134 victims" in err

    code, out, _ = run("export", "victims")
    assert out.count("\n") > 2000
    path = sqlite_env / "victims.csv"
    path.write_text(out, encoding="utf-8")
    code, out, _ = run("import", str(path), "--kind", "victims")
    assert code == 0 and "0 created, 0 updated" in out


def test_errors_are_messages_not_tracebacks(sqlite_env: Path) -> None:
    run("init")
    code, _, err = run("report", "--period", "2024-H3")
    assert code == 2 and "unknown period" in err
    code, _, err = run("report", "--period", "2024", "--by", "colour")
    assert code == 2 and "unknown dimension" in err
    code, _, err = run("report", "--period", "2024", "--metric", "victims_saved")
    assert code == 2 and "unknown metric" in err
    code, _, err = run("template", "spaceships")
    assert code == 2 and "unknown kind" in err
    bad = sqlite_env / "bad.csv"
    bad.write_text("external_id,sex,rescue_date,province\nV-1,female,2024-01-01,Gotham\n", encoding="utf-8")
    code, _, err = run("import", str(bad), "--kind", "victims")
    assert code == 1 and "nothing was written" in err and "Gotham" in err
    code, _, err = run("import", str(sqlite_env / "missing.csv"), "--kind", "victims")
    assert code == 1 and "cannot read" in err


def test_metrics_and_templates(sqlite_env: Path) -> None:
    code, out, _ = run("metrics", "--json")
    keys = [m["key"] for m in json.loads(out)]
    assert "victims_rescued_minor" in keys
    code, out, _ = run("metrics", "--lang", "km")
    assert code == 0 and "ជនរងគ្រោះ" in out
    code, out, _ = run("template", "victims")
    assert out.startswith("external_id,name_latin,name_khmer,sex,date_of_birth,age,nationality")
    target = sqlite_env / "t.xlsx"
    code, _, _ = run("template", "suspects", "--format", "xlsx", "--output", str(target))
    assert next(load_workbook(target).active.values)[0] == "external_id"


def test_claims_check_command(sqlite_env: Path) -> None:
    run("init")
    empty = sqlite_env / "empty.txt"
    empty.write_text("The committee met on Tuesday to discuss training.", encoding="utf-8")
    code, out, err = run("claims", "check", str(empty))
    assert code == 0 and "No statistical claims" in err and out == ""
    text = sqlite_env / "claim.txt"
    text.write_text("In the first half of 2024, police rescued 12 victims.", encoding="utf-8")
    code, out, _ = run("claims", "check", str(text), "--format", "json")
    claim = json.loads(out.splitlines()[0])
    assert (claim["metric"], claim["period"], claim["claimed"], claim["actual"]) == (
        "victims_rescued",
        "2024-H1",
        12,
        0,
    )
    assert claim["verdict"] == "contradicted"
    code, _, err = run("claims", "check", str(text), "--as-of", "yesterday")
    assert code == 2 and "not a date" in err


def _audit_actions(*actions: str) -> list[tuple[str, str | None, dict[str, object]]]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from ctis import services
    from ctis.storage.models import AuditEntry

    with Session(services.engine()) as s:
        rows = s.execute(select(AuditEntry).where(AuditEntry.action.in_(actions)).order_by(AuditEntry.id))
        return [(e.action, e.kind, json.loads(e.detail or "{}")) for (e,) in rows]


def test_demo_prints_new_passwords_once_and_serve_only_names_the_file(
    sqlite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from ctis import services
    from tests.factories import Fixture

    run("init")
    f = Fixture()
    f.victim("2024-01-01", external_id="v-not-empty")  # so that --if-empty only adds the accounts
    f.save(services.engine())
    code, first, _ = run("demo", "--if-empty")
    kept = services.demo_accounts_path().read_text(encoding="utf-8").split()
    passwords = kept[1::3]
    assert code == 0 and len(passwords) == 6
    assert all(p in first for p in passwords)  # shown once, when made
    code, again, _ = run("demo", "--if-empty")
    assert code == 0 and not any(p in again for p in passwords)
    assert str(services.demo_accounts_path()) in again
    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: served.append(a))
    code, out, _ = run("serve")
    assert code == 0 and served
    assert not any(p in out for p in passwords)  # a server's output ends up in logs
    assert str(services.demo_accounts_path()) in out


def test_drill_and_report_files_are_audited_on_the_command_line(sqlite_env: Path) -> None:
    from ctis import services
    from tests.factories import Fixture

    run("init")
    f = Fixture()
    f.victim("2024-03-01", external_id="v-drilled")
    f.save(services.engine())
    code, out, _ = run("drill", "victims_rescued", "--period", "2024")
    assert code == 0 and "v-drilled" in out
    run("report", "--period", "2024", "--format", "json")  # printed figures, not a file: not an export
    run("report", "--period", "2024", "--format", "csv")
    run("report", "--period", "2024", "--format", "xlsx", "--output", str(sqlite_env / "r.xlsx"))
    entries = _audit_actions("drill", "export")
    expected = [("drill", "victims"), ("export", "report"), ("export", "report")]
    assert [(a, k) for a, k, _ in entries] == expected
    assert entries[0][2]["metric"] == "victims_rescued" and entries[0][2]["records"] == 1
    assert "v-drilled" not in json.dumps(entries)  # which figure, never whose records
    assert [d["format"] for _, _, d in entries[1:]] == ["csv", "xlsx"]
