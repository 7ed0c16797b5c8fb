"""Protected exports are publications: audited against the release history, recorded in it, charged to ε.

The attack reuses the integer-programming attacker of
``tests/test_publication_attack.py``, widened from its fixed sex × age-band
grid to any two dimensions and to the stretches of time that a half-year, a
TIP year and a calendar year cut the calendar into: a transparency release for
2024-H1 and a GLOTIP export for 2024 differ by July–December, cell by cell,
unless the export's gate knows the release.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from ctis.cli.main import app
from ctis.domain.periods import Period, parse_period
from ctis.exports import export_ctdc, export_glotip, export_tip
from ctis.exports import glotip as glotip_module
from ctis.exports import tip as tip_module
from ctis.exports.release import TableSpec, export_kind, export_tables
from ctis.metrics.report import cross_tab
from ctis.publication import releases
from ctis.publication.gate import TOTAL, DpParams, Method, ProtectedRelease, ReleaseRefused
from ctis.security.permissions import SYSTEM
from ctis.storage.models import AuditEntry, Release, ReleaseCell
from tests.factories import Fixture
from tests.test_publication_attack import Attacker, _as_published

METRIC = "victims_rescued"
DIMS = ("exploitation_form", "sex")
#: The stretches that 2024-H1, TIP2024 (April 2023 - March 2024) and 2024 cut the calendar into.
SEGMENTS = {
    "2023-04..12": (date(2023, 4, 1), date(2023, 12, 31)),
    "2024-Q1": (date(2024, 1, 1), date(2024, 3, 31)),
    "2024-Q2": (date(2024, 4, 1), date(2024, 6, 30)),
    "2024-H2": (date(2024, 7, 1), date(2024, 12, 31)),
}


class SpanAttacker(Attacker):
    """The attack test's attacker over ``(exploitation_form, sex)`` cells in several stretches of time.

    It reads every stored figure of the metric whose breakdown is part of that
    grid (a sex table, a form × sex table, totals); others it ignores, which
    only makes it weaker than the gate's own model, never wrong.
    """

    def terms(self, snapshots: list[str], t: object, key: tuple[str, ...]) -> dict[int, float]:
        where = {d: v for d, v in zip(t.dimensions, key, strict=True) if v != TOTAL}  # type: ignore[attr-defined]
        out: dict[int, float] = {}
        for full in self.keys:
            values = dict(zip(DIMS, full, strict=True))
            if all(values[d] == v for d, v in where.items()):
                for s in snapshots:
                    out[self.var(s, full)] = 1.0
        return out

    def read_stored(self, release: ProtectedRelease, truth: dict[tuple[str, tuple[str, ...]], int]) -> None:
        for t in release.tables:
            if t.metric != METRIC or not set(t.dimensions) <= set(DIMS):
                continue
            p = parse_period(t.period)
            spans = [s for s, (a, b) in SEGMENTS.items() if p.start <= a and b <= p.end]
            assert spans, f"{t.period} is not a union of the test's stretches"
            for cell in t.cells.values():
                terms = self.terms(spans, t, cell.key)
                label = f"{t.name} {t.period} {cell.key}"
                if cell.value is None:
                    self.system.between(terms, 1, math.inf)
                    value = sum(
                        n
                        for (s, full), n in truth.items()
                        if self.var(s, full) in terms  # type: ignore[arg-type]
                    )
                    self.hidden.append((label, terms, value))
                else:
                    self.system.equal(terms, cell.value)
                    self.public.add((label, cell.value))

    def unpublished(
        self, truth: dict[tuple[str, tuple[str, ...]], int]
    ) -> list[tuple[str, dict[int, float], int]]:
        """Every stretch's own counts: nobody published them, so small ones must stay uncertain."""
        return [
            (f"{s} {full}", {self.var(s, full): 1.0}, n)
            for (s, full), n in truth.items()
            if n > 0  # type: ignore[has-type]
        ]


def _truth(session: Session) -> dict[tuple[str, tuple[str, ...]], int]:
    out = {}
    for s, (a, b) in SEGMENTS.items():
        for key, n in cross_tab(session, Period(a, b, s, "range"), METRIC, DIMS).items():
            out[(s, tuple(key))] = n
    return out


def _stored(session: Session, version: int) -> ProtectedRelease:
    release = releases.get_release(session, version)
    assert release is not None
    return _as_published(releases.public_figures(session, release))


def _victim_specs(specs: Sequence[TableSpec]) -> list[TableSpec]:
    return [s for s in specs if s.metric == METRIC]


def _attack(session: Session, versions: list[int]) -> tuple[SpanAttacker, list[str]]:
    truth = _truth(session)
    stored = [_stored(session, v) for v in versions]
    values: dict[str, set[str]] = {d: {full[i] for _s, full in truth} for i, d in enumerate(DIMS)}
    for r in stored:  # every value a published figure names is a value of the grid
        for t in r.tables:
            if t.metric == METRIC and set(t.dimensions) <= set(DIMS):
                for k in t.cells:
                    for d, v in zip(t.dimensions, k, strict=True):
                        if v != TOTAL:
                            values[d].add(v)
    keys = list(itertools.product(*(sorted(values[d]) for d in DIMS)))
    attacker = SpanAttacker(list(SEGMENTS), keys=keys)  # type: ignore[arg-type]
    for r in stored:
        attacker.read_stored(r, truth)
    return attacker, attacker.breaches(attacker.unpublished(truth), large_may_be_pinned=True)


# -- hand-made records: the differencing the history prevents -----------------------------------------


def _h1_then_h2(engine: Engine) -> None:
    """20 women and 15 men in H1; 2 more women and 12 men in H2: H2's women are the small count."""
    f = Fixture()
    for i in range(20):
        f.victim(f"2024-0{1 + i % 6}-10", sex="female", age=25, exploitation_type="forced_labour")
    for i in range(15):
        f.victim(f"2024-0{1 + i % 6}-12", sex="male", age=30, exploitation_type="forced_labour")
    for i in range(2):
        f.victim(f"2024-0{7 + i}-10", sex="female", age=26, exploitation_type="forced_labour")
    for i in range(12):
        f.victim(f"2024-{7 + i % 6:02d}-14", sex="male", age=31, exploitation_type="forced_labour")
    f.save(engine)


def _publish_h1(session: Session) -> Release:
    asked = releases.ReleaseRequest([METRIC], ["2024-H1"], ["sex", "exploitation_form:sex"])
    return releases.create_release(session, SYSTEM, asked)


def test_a_glotip_export_after_a_release_hides_what_their_difference_would_show(engine: Engine) -> None:
    _h1_then_h2(engine)
    with Session(engine) as session:
        first = _publish_h1(session)
        export = export_tables(
            session, SYSTEM, "glotip", parse_period("2024"), _victim_specs(glotip_module.SPECS)
        )
        assert export.release is not None and export.release > first.version
        attacker, breaches = _attack(session, [first.version, export.release])
        session.rollback()
    assert attacker.hidden, "the export must hide something, or H2's two women show by difference"
    assert breaches == []


def test_blind_export_is_caught_by_the_same_attack(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack is not blind: with no history given to the gate, it recovers H2's women."""
    from ctis.exports import release as release_module

    _h1_then_h2(engine)
    monkeypatch.setattr(release_module, "earlier_figures", lambda session: [])
    with Session(engine) as session:
        first = _publish_h1(session)
        export = export_tables(
            session, SYSTEM, "glotip", parse_period("2024"), _victim_specs(glotip_module.SPECS)
        )
        assert export.release is not None
        _attacker, breaches = _attack(session, [first.version, export.release])
        session.rollback()
    assert any("2024-H2" in b and "female" in b for b in breaches), breaches


def test_exports_are_recorded_with_their_kind_and_audited_with_the_release(engine: Engine) -> None:
    _h1_then_h2(engine)
    with Session(engine) as session:
        transparency = _publish_h1(session).version
        table = export_glotip(session, SYSTEM, parse_period("2024"))
        rows = export_ctdc(session, SYSTEM, parse_period("2024"), k=2)
        exact = export_tip(session, SYSTEM, parse_period("TIP2025"), exact=True)
        session.commit()
    assert exact.release is None and table.release and rows.release
    with Session(engine) as session:
        listed = {r.version: r for r in releases.list_releases(session)}
        assert len(listed) == 3  # the exact export is official, not public: no release
        assert listed[table.release].kind == export_kind("glotip") == "export:glotip"
        assert listed[table.release].note == "GLOTIP export, 2024"
        assert listed[rows.release].kind == "export:ctdc" and listed[rows.release].method == "k-anonymity"
        ctdc_params = releases.describe(listed[rows.release])["parameters"]
        assert ctdc_params == {"k": 2, "rows": len(rows.rows), "dropped": rows.dropped}
        n_cells = session.scalar(
            select(func.count())
            .select_from(ReleaseCell)
            .where(ReleaseCell.release_id == listed[rows.release].id)
        )
        assert n_cells == 0
        # the page shows the latest transparency release, never an export
        latest = releases.latest_release(session)
        assert latest is not None and latest.version == transparency
        assert releases.get_release(session, table.release, releases.TRANSPARENCY) is None
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "export")).all()
        by_kind = {e.kind: e for e in entries}
        assert by_kind["glotip"].record_id == listed[table.release].id
        assert json.loads(by_kind["glotip"].detail or "{}")["release"] == table.release
        assert by_kind["ctdc"].record_id == listed[rows.release].id
        assert (
            by_kind["tip"].record_id is None and json.loads(by_kind["tip"].detail or "{}")["release"] is None
        )
        # later releases see the export's figures
        figures = releases.earlier_figures(session)
        assert {f.end for f in figures} == {date(2024, 6, 30), date(2024, 12, 31)}


def test_a_dp_export_spends_from_the_ledger_and_is_refused_past_the_budget(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _h1_then_h2(engine)
    monkeypatch.setenv("CTIS_PRIVACY_BUDGET", "1")
    specs = _victim_specs(glotip_module.SPECS)
    with Session(engine) as session:
        done = export_tables(
            session, SYSTEM, "glotip", parse_period("2024"), specs, method=Method.DP, params=DpParams(0.75)
        )
        session.commit()
    assert done.release is not None and done.gated.epsilon == pytest.approx(0.75)
    with Session(engine) as session:
        assert releases.spent_epsilon(session) == pytest.approx(0.75)
        # the caller cannot bring its own ledger: budget and spent come from the database
        with pytest.raises(ReleaseRefused, match="budget"):
            export_tables(
                session, SYSTEM, "glotip", parse_period("2024"), specs,
                method="dp", params=DpParams(epsilon=0.5, budget=100, spent=0),
            )  # fmt: skip
        session.rollback()
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 1
        assert session.scalar(select(func.count()).where(AuditEntry.action == "export")) == 1


# -- the command line -----------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_lists_exports_with_their_kind(sqlite_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from ctis import services
    from ctis.cli import main

    monkeypatch.setattr(main, "console", Console(width=300))  # the listing is wide; keep its cells whole

    assert runner.invoke(app, ["init"]).exit_code == 0
    _h1_then_h2(services.engine())
    out = sqlite_env / "g.csv"
    done = runner.invoke(app, ["standard", "glotip", "--period", "2024", "--out", str(out)])
    assert done.exit_code == 0, done.stderr
    assert "Recorded as release 1" in done.stdout
    exact = runner.invoke(app, ["standard", "glotip", "--period", "2024", "--exact", "--out", str(out)])
    assert exact.exit_code == 0 and "Recorded as release" not in exact.stdout
    listed = runner.invoke(app, ["publish", "--list"])
    assert listed.exit_code == 0
    assert "export:glotip" in listed.stdout and "GLOTIP export, 2024" in listed.stdout
    assert listed.stdout.count("export:") == 1  # the exact export is not there


def test_cli_dp_export_spends_from_the_ledger(sqlite_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctis import services

    monkeypatch.setenv("CTIS_PRIVACY_BUDGET", "1.5")
    assert runner.invoke(app, ["init"]).exit_code == 0
    _h1_then_h2(services.engine())
    out = sqlite_env / "g.csv"
    args = ["standard", "glotip", "--period", "2024", "--out", str(out), "--method", "dp"]
    done = runner.invoke(app, [*args, "--epsilon", "1"])
    assert done.exit_code == 0, done.stderr
    with out.open(encoding="utf-8") as fh:
        cells = list(csv.DictReader(fh))
    assert cells and all(r["mode"] == "protected" for r in cells)
    with Session(services.engine()) as session:
        assert releases.spent_epsilon(session) == pytest.approx(1.0)
    out.unlink()
    refused = runner.invoke(app, [*args, "--epsilon", "1"])  # 1 more would pass the budget of 1.5
    assert refused.exit_code == 1 and "the release gate refused" in " ".join(refused.stderr.split())
    assert not out.exists()
    for bad, words in (
        (["standard", "ctdc", "--period", "2024", "--method", "dp"], "suppression only"),
        ([*args, "--exact"], "exclude each other"),
        ([*args, "--epsilon", "0"], "epsilon"),
        (["standard", "tip", "--period", "TIP2024", "--method", "noise"], "unknown method"),
    ):
        result = runner.invoke(app, bad)
        assert result.exit_code == 2 and words in " ".join(result.stderr.split()), (bad, result.stderr)


# -- the demo records: a release and both table exports -----------------------------------------------


@pytest.mark.slow
def test_release_then_tip_and_glotip_exports_of_the_demo_withstand_the_attack(
    demo_engine: Engine, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("the gate's work does not depend on the engine; once is enough")
    with Session(demo_engine) as session:
        first = _publish_h1(session)
        tip = export_tables(
            session, SYSTEM, "tip", parse_period("TIP2024"), _victim_specs(tip_module.specs())
        )
        glotip = export_tables(
            session, SYSTEM, "glotip", parse_period("2024"), _victim_specs(glotip_module.SPECS)
        )
        assert tip.release and glotip.release
        attacker, breaches = _attack(session, [first.version, tip.release, glotip.release])
        session.rollback()
    assert attacker.hidden, "the demo has small cells: something must be hidden"
    assert breaches == []
