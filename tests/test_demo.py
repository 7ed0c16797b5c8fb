"""The demo database reproduces the published 2024-H1 figures from its records."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ctis.demo.generator import DemoBuilder
from ctis.domain.periods import parse_period
from ctis.metrics import compute_report, drill_down
from ctis.metrics.registry import DIMENSIONS
from ctis.storage.models import Victim


def test_2024_h1_report_gives_the_published_figures(demo_engine: Engine) -> None:
    with Session(demo_engine) as s:
        m = compute_report(s, parse_period("2024-H1")).metrics
    assert m["cases_cracked_down"] == 104
    assert m["suspects_arrested"] == 134
    assert m["suspects_arrested_foreign"] == 4
    assert m["victims_rescued"] == 290
    assert m["victims_rescued_female"] == 241
    assert m["victims_rescued_minor"] == 134


def test_demo_spans_2022_to_2025_with_every_breakdown_populated(demo_engine: Engine) -> None:
    with Session(demo_engine) as s:
        first, last = s.execute(select(func.min(Victim.rescue_date), func.max(Victim.rescue_date))).one()
        assert first.year == 2022 and last.year == 2025
        yearly = [
            compute_report(s, parse_period(str(y)), ["victims_rescued"]).metrics["victims_rescued"]
            for y in (2022, 2023, 2024, 2025)
        ]
        assert all(n > 200 for n in yearly)
        rep = compute_report(s, parse_period("2024"), None, list(DIMENSIONS))
    assert len(rep.by["province"]["victims_rescued"]) >= 10
    assert len(rep.by["nationality"]["victims_rescued"]) >= 3
    assert len(rep.by["age_band"]["victims_rescued"]) >= 5
    for key in (
        "operations",
        "suspects_prosecuted",
        "suspects_convicted",
        "victims_assisted",
        "victims_repatriated",
        "victims_referred",
    ):
        assert rep.metrics[key] > 0, key


def test_demo_is_deterministic_and_synthetic() -> None:
    a = DemoBuilder(today=date(2026, 1, 1)).build()
    b = DemoBuilder(today=date(2026, 1, 1)).build()
    dump = lambda builder: [r.model_dump() for rs in builder.records.values() for r in rs]  # noqa: E731
    assert dump(a) == dump(b)
    agencies = [r.model_dump()["name_en"] for r in a.records["agencies"]]
    assert any("fictional" in n for n in agencies)


def test_demo_has_duplicates_across_agencies_that_linkage_counts_once(demo_engine: Engine) -> None:
    period = parse_period("2024-H1")
    with Session(demo_engine) as s:
        in_period = Victim.rescue_date.between(period.start, period.end)
        records = s.scalar(select(func.count()).select_from(Victim).where(in_period))
        rep = compute_report(s, period, ["victims_rescued"], ["agency", "sex"])
        _unit, rows = drill_down(s, "victims_rescued", period)
    assert rep.deduplicated and rep.as_dict()["counts"] == "persons"
    assert records is not None and records > rep.metrics["victims_rescued"] == 290
    people_with_two = [r for r in rows if len(r.records) > 1]
    assert len(people_with_two) == records - 290
    # a person recorded by the police and by a shelter counts under both agencies, once in the total
    assert sum(rep.by["agency"]["victims_rescued"].values()) > 290
    assert sum(rep.by["sex"]["victims_rescued"].values()) == 290  # both records keep the person's sex


def test_demo_duplicates_are_drawn_apart_from_the_other_records() -> None:
    builder = DemoBuilder(today=date(2026, 1, 1)).build()
    assert len(builder.duplicate_of) >= 60
    by_id = {r.external_id: r for rs in builder.records.values() for r in rs}
    for second, first in builder.duplicate_of.items():
        a, b = by_id[first], by_id[second]
        assert a.kind == b.kind and a.sex == b.sex and a.nationality == b.nationality  # type: ignore[attr-defined]
        assert a.agency != b.agency  # type: ignore[attr-defined]
