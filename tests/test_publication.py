"""The release gate, the release service on both engines, ``ctis publish`` and the pages.

What is checked everywhere: no figure between 1 and threshold − 1 ever leaves,
refusals say why and write nothing, the ε ledger holds across releases, and the
public page needs no session.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from ctis.cli.main import app
from ctis.domain.periods import parse_period
from ctis.metrics.report import compute_report
from ctis.publication import releases
from ctis.publication.gate import (
    TOTAL,
    CellStatus,
    DpParams,
    Method,
    ReleaseRefused,
    SuppressionParams,
    protect,
)
from ctis.publication.tables import CountTable
from ctis.security.permissions import Actor, Forbidden
from ctis.storage.models import AuditEntry, Release, ReleaseCell
from tests.conftest import LiveServer, http_client, sign_in

ADMIN = Actor(id=0, username="test-admin", role="administrator", agency_id=None, scope="all")
VIEWER = Actor(id=0, username="test-viewer", role="viewer", agency_id=None, scope="own")


def sex_by_age(cells: dict[tuple[str, str], int], period: str = "2024-H1") -> CountTable:
    return CountTable(
        f"t {period}", "victims_rescued", period, ("sex", "age_band"), cells, sum(cells.values())
    )


CELLS = {
    ("female", "0-8"): 3, ("female", "9-17"): 40, ("female", "18+"): 120,
    ("male", "0-8"): 15, ("male", "9-17"): 22, ("male", "18+"): 30,
    ("unknown", "0-8"): 0, ("unknown", "9-17"): 0, ("unknown", "18+"): 0,
}  # fmt: skip


# -- the gate ---------------------------------------------------------------------------------------


def test_suppression_hides_small_cells_and_enough_others_and_publishes_zeros() -> None:
    release = protect([sex_by_age(CELLS)], Method.SUPPRESSION, SuppressionParams(threshold=10))
    table = release.tables[0]
    assert table.cells[("female", "0-8")].status is CellStatus.PRIMARY
    assert table.cells[("female", "0-8")].value is None
    secondary = [c for c in table.cells.values() if c.status is CellStatus.SECONDARY]
    assert secondary, "one hidden cell in a row and a column with published totals is recoverable"
    assert all(c.value is None for c in secondary)
    assert table.cells[("unknown", "0-8")].value == 0  # a zero singles nobody out
    assert table.total.value == 230
    for cell in table.cells.values():
        assert cell.value is None or cell.value == 0 or cell.value >= 10
    assert release.method is Method.SUPPRESSION and release.parameters["threshold"] == 10


def test_a_table_whose_total_is_below_the_threshold_is_refused_with_the_reason() -> None:
    small = sex_by_age({("female", "0-8"): 4, ("male", "0-8"): 3})
    with pytest.raises(ReleaseRefused, match="total of fewer than 10"):
        protect([small], Method.SUPPRESSION, SuppressionParams())


@pytest.mark.parametrize(
    "make",
    [
        lambda: SuppressionParams(threshold=1),
        lambda: SuppressionParams(protection=0),
        lambda: DpParams(epsilon=0),
        lambda: DpParams(epsilon=float("nan")),
        lambda: DpParams(budget=-1),
    ],
)
def test_bad_parameters_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_malformed_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one table"):
        protect([], Method.SUPPRESSION, SuppressionParams())
    bad = CountTable("t", "victims_rescued", "2024-H1", ("sex",), {("female", "x"): 3}, 3)
    with pytest.raises(ValueError, match="does not match"):
        protect([bad], Method.SUPPRESSION, SuppressionParams())
    with pytest.raises(ValueError, match="DpParams"):
        protect([sex_by_age(CELLS)], Method.DP, SuppressionParams())


def test_dp_counts_are_noisy_consistent_and_spend_the_epsilon() -> None:
    release = protect([sex_by_age(CELLS), sex_by_age(CELLS, "2024-Q1")], Method.DP, DpParams(epsilon=1.0))
    assert release.epsilon == pytest.approx(1.0)
    assert release.parameters["per_table"] == pytest.approx(0.5)
    for table in release.tables:
        interior = table.interior()
        assert all(c.status is CellStatus.NOISE and c.value is not None and c.value >= 0 for c in interior)
        for sex in ("female", "male", "unknown"):  # margins are sums of the noisy cells
            row = sum(c.value or 0 for c in interior if c.key[0] == sex)
            assert table.cells[(sex, TOTAL)].value == row
        assert table.total.value == sum(c.value or 0 for c in interior)
    exact = [CELLS[c.key] for t in release.tables for c in t.interior()]  # type: ignore[index]
    noisy = [c.value for t in release.tables for c in t.interior()]
    assert noisy != exact  # 18 cells at scale 2 all drawing zero noise: about one chance in 10^7


def test_dp_refuses_a_release_past_the_budget_and_says_how_much_is_left() -> None:
    with pytest.raises(ReleaseRefused) as refused:
        protect([sex_by_age(CELLS)], Method.DP, DpParams(epsilon=1.5, budget=5.0, spent=4.0))
    assert refused.value.reason == (
        "this release needs ε=1.5, the ledger has spent ε=4 of a budget of ε=5; only ε=1 is left"
    )


# -- the service, on both engines -------------------------------------------------------------------


@pytest.fixture
def demo_session(demo_engine: Engine) -> Iterator[Session]:
    """A session on the demo records whose writes are all rolled back."""
    with Session(demo_engine) as session:
        session.begin()
        yield session
        session.rollback()


def _request(**kw: object) -> releases.ReleaseRequest:
    base: dict[str, object] = {"metrics": ["victims_rescued", "suspects_arrested"], "periods": ["2024-H1"],
                               "breakdowns": ["sex", "age_band"]}  # fmt: skip
    base.update(kw)
    return releases.ReleaseRequest(**base)  # type: ignore[arg-type]


@pytest.mark.postgres
def test_a_release_is_stored_without_small_exact_counts_and_audited(demo_session: Session) -> None:
    db = demo_session
    release = releases.create_release(db, ADMIN, _request(breakdowns=["sex", "age_band", "sex:age_band"]))
    assert release.version == 1 and release.method == "suppression" and release.epsilon == 0
    cells = db.execute(select(ReleaseCell).where(ReleaseCell.release_id == release.id)).scalars().all()
    assert cells and all(c.value is None or c.value == 0 or c.value >= 10 for c in cells)
    assert any(c.value is None for c in cells), "the demo's age bands have small cells"
    totals = {(c.metric, c.table_name): c.value for c in cells if json.loads(c.key) == [TOTAL]}
    # the headline totals are the registry's figures for the half-year
    report = compute_report(db, parse_period("2024-H1"), ["victims_rescued", "suspects_arrested"])
    assert totals[("victims_rescued", "victims_rescued 2024-H1 by sex")] == report.metrics["victims_rescued"]
    assert totals[("suspects_arrested", "suspects_arrested 2024-H1 by sex")] == 134
    entry = db.execute(select(AuditEntry).where(AuditEntry.action == "publish")).scalar_one()
    assert entry.kind == "releases" and entry.record_id == release.id
    second = releases.create_release(db, ADMIN, _request(periods=["2024-Q1"]))
    assert second.version == 2
    assert [r.version for r in releases.list_releases(db)] == [2, 1]
    assert releases.latest_release(db) is second
    rows = list(csv.DictReader(io.StringIO(releases.release_csv(db, second))))
    assert {r["status"] for r in rows} <= {"exact", "suppressed"}  # primary and secondary look alike
    assert all(r["value"] == "" or int(r["value"]) == 0 or int(r["value"]) >= 10 for r in rows)


@pytest.mark.postgres
def test_the_ledger_refuses_a_dp_release_past_the_budget_and_writes_nothing(
    demo_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = demo_session
    monkeypatch.setenv("CTIS_PRIVACY_BUDGET", "1.5")
    first = releases.create_release(db, ADMIN, _request(method="dp", epsilon=1.0, breakdowns=["sex"]))
    assert first.epsilon == pytest.approx(1.0)
    assert releases.spent_epsilon(db) == pytest.approx(1.0)
    count = db.scalar(select(func.count()).select_from(ReleaseCell))
    with pytest.raises(ReleaseRefused, match=r"needs ε=1, the ledger has spent ε=1 of a budget of ε=1.5"):
        releases.create_release(db, ADMIN, _request(method="dp", epsilon=1.0))
    assert db.scalar(select(func.count()).select_from(Release)) == 1
    assert db.scalar(select(func.count()).select_from(ReleaseCell)) == count


@pytest.mark.postgres
def test_bad_requests_are_refused_and_viewers_may_not_publish(demo_session: Session) -> None:
    db = demo_session
    for bad, message in [
        (_request(metrics=[]), "at least one metric"),
        (_request(metrics=["nope"]), "unknown metric"),
        (_request(periods=["2024-H3"]), "period"),
        (_request(breakdowns=["shoe_size"]), "unknown breakdown"),
        (_request(breakdowns=["sex:age_band:province"]), "two joined"),
        (_request(method="magic"), "method"),
        (_request(threshold=1), "threshold"),
    ]:
        with pytest.raises(ValueError, match=message):
            releases.create_release(db, ADMIN, bad)
    with pytest.raises(Forbidden):
        releases.create_release(db, VIEWER, _request())
    assert db.scalar(select(func.count()).select_from(Release)) == 0


def test_the_privacy_budget_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTIS_PRIVACY_BUDGET", raising=False)
    assert releases.privacy_budget() == 5.0
    monkeypatch.setenv("CTIS_PRIVACY_BUDGET", "2.5")
    assert releases.privacy_budget() == 2.5
    for bad in ("lots", "0", "-1"):
        monkeypatch.setenv("CTIS_PRIVACY_BUDGET", bad)
        with pytest.raises(ValueError, match="CTIS_PRIVACY_BUDGET"):
            releases.privacy_budget()


# -- the command line -------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctis_publish(sqlite_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert runner.invoke(app, ["demo"]).exit_code == 0
    ok = runner.invoke(
        app,
        ["publish", "--metric", "victims_rescued", "--period", "2024-H1", "--by", "sex", "--note", "first"],
    )
    assert ok.exit_code == 0, ok.stderr
    assert "Release 1 (suppression)" in ok.stdout and "241" in ok.stdout
    monkeypatch.setenv("CTIS_PRIVACY_BUDGET", "1")
    refused = runner.invoke(
        app,
        ["publish", "--metric", "victims_rescued", "--period", "2024-H1", "--method", "dp", "--epsilon", "2"],
    )
    assert (
        refused.exit_code == 1 and "release refused" in refused.stderr and "budget of ε=1" in refused.stderr
    )
    bad = runner.invoke(app, ["publish", "--metric", "victims_rescued", "--period", "someday"])
    assert bad.exit_code == 1 and "unknown period" in bad.stderr
    listed = runner.invoke(app, ["publish", "--list"])
    assert listed.exit_code == 0 and "suppression" in listed.stdout and "ε spent 0 of 1" in listed.stdout


# -- the pages and the API --------------------------------------------------------------------------


def _csrf(page: str) -> str:
    return page.split('name="csrf_token" value="')[1].split('"')[0]


@pytest.mark.web
def test_releases_through_the_pages_and_the_public_transparency_page(live_server: LiveServer) -> None:
    admin = sign_in(live_server.url, "admin")
    form = admin.get("/admin/releases")
    assert form.status_code == 200 and "release-form" in form.text
    made = admin.post(
        "/admin/releases",
        data={
            "metrics": ["victims_rescued", "suspects_arrested"],
            "periods": "2024-Q1 2024-H1",
            "breakdowns": "sex age_band",
            "method": "suppression",
            "threshold": "10",
            "csrf_token": _csrf(form.text),
        },
    )
    assert made.status_code == 303, made.text[:500]
    version = int(made.headers["location"].rsplit("=", 1)[1])
    listed = admin.get("/admin/releases").text
    assert '<td data-testid="release-kind">Transparency page</td>' in listed
    refused = admin.post(
        "/admin/releases",
        data={
            "metrics": ["victims_rescued"],
            "periods": "2024-H1",
            "method": "dp",
            "epsilon": "99",
            "csrf_token": _csrf(form.text),
        },
    )
    assert refused.status_code == 422 and "the ledger has spent" in refused.text
    forged = admin.post("/admin/releases", data={"metrics": ["victims_rescued"], "periods": "2024-H1"})
    assert forged.status_code == 403

    public = http_client(live_server.url)  # no session at all
    page = public.get("/transparency")
    assert page.status_code == 200 and f"Release {version}" in page.text
    assert 'data-testid="headline-victims_rescued"' in page.text and 'id="trend-victims_rescued"' in page.text
    assert "Distinct victims" in page.text  # the registry's definition
    numbers = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', page.text)]
    assert numbers and all(n == 0 or n >= 10 for n in numbers)
    assert "suppressed" in page.text
    khmer = public.get("/transparency", headers={"Accept-Language": "km"})
    assert khmer.status_code == 200 and "តម្លាភាព" in khmer.text
    download = public.get("/transparency/release.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert rows and {r["release"] for r in rows} == {str(version)}
    assert all(r["value"] == "" or int(r["value"]) == 0 or int(r["value"]) >= 10 for r in rows)
    assert public.get(f"/transparency/releases/{version}.csv").text == download.text
    assert public.get("/transparency/releases/99999.csv").status_code == 404
    assert public.get("/transparency/releases/latest.csv").status_code == 422
    assert public.get("/admin/releases").status_code in {302, 303, 307}


@pytest.mark.web
def test_the_releases_api(live_server: LiveServer) -> None:
    admin = sign_in(live_server.url, "admin")
    headers = {"x-csrf-token": admin.csrf}  # type: ignore[attr-defined]
    body = {"metrics": ["victims_rescued"], "periods": ["2024"], "breakdowns": ["sex:age_band"]}
    made = admin.post("/api/v1/releases", json=body, headers=headers)
    assert made.status_code == 201, made.text
    data = made.json()
    assert data["method"] == "suppression" and data["parameters"]["threshold"] == 10
    assert all(f["value"] is None or f["value"] == 0 or f["value"] >= 10 for f in data["figures"])
    got = admin.get(f"/api/v1/releases/{data['version']}")
    assert got.status_code == 200 and got.json()["figures"] == data["figures"]
    listed = admin.get("/api/v1/releases").json()
    assert data["version"] in [r["version"] for r in listed["releases"]]
    bad = admin.post("/api/v1/releases", json={**body, "breakdowns": ["shoe_size"]}, headers=headers)
    assert bad.status_code == 422 and "unknown breakdown" in bad.json()["detail"]
    strict = admin.post("/api/v1/releases", json={**body, "threshold": 1000}, headers=headers)
    assert strict.status_code == 422 and "total of fewer than 1000" in strict.json()["detail"]
    assert admin.get("/api/v1/releases/123456").status_code == 404
    viewer = sign_in(live_server.url, "viewer")
    denied = viewer.post("/api/v1/releases", json=body, headers={"x-csrf-token": viewer.csrf})  # type: ignore[attr-defined]
    assert denied.status_code == 403
    assert viewer.get("/admin/releases").status_code == 403


def test_a_table_published_again_after_a_correction_keeps_what_was_hidden() -> None:
    """A record moved between cells (not an addition): the two versions disagree, the gate copes."""
    first = protect([sex_by_age(CELLS)], Method.SUPPRESSION, SuppressionParams())
    hidden = {k for k, c in first.tables[0].cells.items() if c.value is None}
    moved = dict(CELLS)
    moved[("female", "18+")] -= 1
    moved[("male", "18+")] += 1
    again = protect([sex_by_age(moved)], Method.SUPPRESSION, SuppressionParams(), earlier=first.figures())
    cells = again.tables[0].cells
    assert all(cells[k].value is None for k in hidden)
    assert all(c.value is None or c.value == 0 or c.value >= 10 for c in cells.values())


@pytest.mark.postgres
def test_releases_of_overlapping_periods_and_shapes_follow_each_other(demo_session: Session) -> None:
    """Q1 and H1 in several table shapes, then each again: every release is made, and a count
    hidden once stays hidden in whichever table shows it later."""
    db = demo_session
    both = _request(
        metrics=["suspects_arrested"], periods=["2024-Q1", "2024-H1"], breakdowns=["sex", "sex:age_band"]
    )
    first = releases.create_release(db, ADMIN, both)
    hidden = {
        (f.period, frozenset((d, v) for d, v in zip(f.dimensions, f.key, strict=True) if v != TOTAL))
        for f in releases.public_figures(db, first)
        if f.value is None
    }
    assert hidden
    for period in ("2024-Q1", "2024-H1"):
        again = _request(
            metrics=["suspects_arrested"], periods=[period], breakdowns=["sex", "age_band", "sex:age_band"]
        )
        release = releases.create_release(db, ADMIN, again)
        for f in releases.public_figures(db, release):
            where = frozenset((d, v) for d, v in zip(f.dimensions, f.key, strict=True) if v != TOTAL)
            if (f.period, where) in hidden:
                assert f.value is None, (f.table, f.key)
