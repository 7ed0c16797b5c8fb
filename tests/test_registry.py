"""Registry figures against expectations worked out by hand, on both engines."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctis.domain.periods import parse_period
from ctis.metrics import METRICS, compute_report, drill_down
from ctis.metrics.registry import DIMENSIONS
from tests.factories import Fixture

REQUIRED = {
    "cases_cracked_down", "operations", "suspects_arrested", "suspects_arrested_foreign",
    "suspects_prosecuted", "suspects_convicted", "victims_rescued", "victims_rescued_female",
    "victims_rescued_minor", "victims_assisted", "victims_repatriated", "victims_referred",
}  # fmt: skip


def report(engine: Engine, period: str, by: tuple[str, ...] = ()) -> dict:
    with Session(engine) as session:
        return compute_report(session, parse_period(period), None, by).as_dict()


def drill(
    engine: Engine, key: str, period: str, dim: str | None = None, value: str | None = None
) -> list[str]:
    with Session(engine) as session:
        _unit, rows = drill_down(session, key, parse_period(period), dim, value)
    return [r.external_id for r in rows]


def test_registry_defines_every_required_metric_once_with_labels_and_rule() -> None:
    assert set(METRICS) >= REQUIRED
    for m in METRICS.values():
        assert m.label_en and m.label_km and len(m.definition) > 40
        assert any("\u1780" <= ch <= "\u17ff" for ch in m.label_km), m.key  # Khmer script
        assert set(m.dimensions) <= set(DIMENSIONS)


def test_half_year_boundary_30_june_vs_1_july(engine: Engine) -> None:
    f = Fixture()
    f.victim("2024-06-30", external_id="v-june")
    f.victim("2024-07-01", external_id="v-july")
    f.save(engine)
    assert report(engine, "2024-H1")["metrics"]["victims_rescued"] == 1
    assert report(engine, "2024-H2")["metrics"]["victims_rescued"] == 1
    assert drill(engine, "victims_rescued", "2024-H1") == ["v-june"]
    assert drill(engine, "victims_rescued", "2024-Q3") == ["v-july"]
    assert report(engine, "2024")["metrics"]["victims_rescued"] == 2


def test_eighteenth_birthday_on_rescue_day_is_not_a_minor(engine: Engine) -> None:
    f = Fixture()
    f.victim("2024-03-10", date_of_birth="2006-03-10", external_id="turns-18")
    f.victim("2024-03-10", date_of_birth="2006-03-11", external_id="one-day-short")
    f.victim("2024-03-10", age=17, external_id="age-only-17")
    f.victim("2024-03-10", external_id="age-unknown")
    f.save(engine)
    r = report(engine, "2024-03", ("age_band",))
    assert r["metrics"]["victims_rescued_minor"] == 2
    assert drill(engine, "victims_rescued_minor", "2024-03") == ["one-day-short", "age-only-17"]
    assert r["by"]["age_band"]["victims_rescued"] == {"18-20": 1, "9-17": 2, "unknown": 1}


def test_tip_year_boundary_31_march_vs_1_april(engine: Engine) -> None:
    f = Fixture()
    f.suspect(arrest_date="2023-03-31", external_id="s-before")
    f.suspect(arrest_date="2023-04-01", external_id="s-first-day")
    f.suspect(arrest_date="2024-03-31", external_id="s-last-day")
    f.suspect(arrest_date="2024-04-01", external_id="s-after")
    f.save(engine)
    assert report(engine, "TIP2024")["metrics"]["suspects_arrested"] == 2
    assert drill(engine, "suspects_arrested", "TIP2024") == ["s-first-day", "s-last-day"]
    assert drill(engine, "suspects_arrested", "TIP2025") == ["s-after"]


def test_victim_linked_to_two_operations_counts_once(engine: Engine) -> None:
    f = Fixture()
    op1 = f.operation("2024-02-01", province="KH-18")
    op2 = f.operation("2024-05-01", province="KH-12")
    case = f.case(op1, op2, external_id="c-two-ops")
    f.victim("2024-02-01", op1, op2, case=case.external_id, external_id="v-two-ops")
    f.save(engine)
    r = report(engine, "2024-H1", ("province",))
    assert r["metrics"]["victims_rescued"] == 1
    assert r["metrics"]["cases_cracked_down"] == 1
    assert r["metrics"]["operations"] == 2
    # A case with operations in two provinces appears under each, once in the total.
    assert r["by"]["province"]["cases_cracked_down"] == {"KH-12": 1, "KH-18": 1}
    assert drill(engine, "cases_cracked_down", "2024-H1") == ["c-two-ops"]


def test_cases_count_only_trafficking_offences_with_an_operation_in_period(engine: Engine) -> None:
    f = Fixture()
    in_period = f.operation("2024-04-04")
    earlier = f.operation("2023-12-31")
    f.case(in_period, offence_type="sexual_exploitation", external_id="c-sex")
    f.case(in_period, offence_type="forced_criminality", external_id="c-scam")
    f.case(in_period, offence_type="child_labour", external_id="c-child-labour")
    f.case(earlier, offence_type="trafficking_in_persons", external_id="c-earlier")
    f.case(offence_type="trafficking_in_persons", external_id="c-no-operation")
    f.save(engine)
    r = report(engine, "2024-H1", ("offence_type",))
    assert r["metrics"]["cases_cracked_down"] == 2
    assert r["by"]["offence_type"]["cases_cracked_down"] == {
        "forced_criminality": 1,
        "sexual_exploitation": 1,
    }


def test_foreign_means_known_non_cambodian_nationality(engine: Engine) -> None:
    f = Fixture()
    f.suspect(arrest_date="2024-01-05", nationality="KHM")
    f.suspect(arrest_date="2024-01-05", nationality="CHN", external_id="s-chn")
    f.suspect(arrest_date="2024-01-05", nationality="Viet Nam", external_id="s-vnm")
    f.suspect(arrest_date="2024-01-05")  # unknown nationality
    f.suspect(nationality="THA")  # never arrested
    f.save(engine)
    r = report(engine, "2024-H1", ("nationality",))
    assert r["metrics"]["suspects_arrested"] == 4
    assert r["metrics"]["suspects_arrested_foreign"] == 2
    assert r["by"]["nationality"]["suspects_arrested"] == {
        "CHN": 1,
        "KHM": 1,
        "VNM": 1,
        "unknown": 1,
    }
    assert drill(engine, "suspects_arrested", "2024-H1", "nationality", "unknown") != []


def test_female_minors_count_in_both_and_breakdowns_sum_to_totals(engine: Engine) -> None:
    f = Fixture()
    f.victim("2024-01-10", sex="female", age=15)
    f.victim("2024-01-10", sex="female", age=30)
    f.victim("2024-01-10", sex="male", age=12)
    f.victim("2024-01-10", sex="male", age=40, nationality="THA", exploitation_type="forced_labour")
    f.save(engine)
    r = report(engine, "2024-H1", tuple(DIMENSIONS))
    assert r["metrics"]["victims_rescued"] == 4
    assert r["metrics"]["victims_rescued_female"] == 2
    assert r["metrics"]["victims_rescued_minor"] == 2
    assert r["by"]["sex"]["victims_rescued_minor"] == {"female": 1, "male": 1}
    for dim, per_metric in r["by"].items():
        for key, counts in per_metric.items():
            if METRICS[key].unit == "victims" and key.startswith("victims_rescued"):
                assert sum(counts.values()) == r["metrics"][key], (dim, key)


def test_prosecutions_convictions_assistance_and_referrals(engine: Engine) -> None:
    f = Fixture()
    shelter = f.agency(external_id="AG-SH", agency_kind="ngo")
    s1 = f.suspect(arrest_date="2023-11-01", external_id="s1")
    s2 = f.suspect(arrest_date="2024-02-01", external_id="s2")
    f.prosecution(
        s1,
        charged_on="2024-01-10",
        outcome="convicted",
        verdict_on="2024-05-20",
        sentence_months=60,
    )
    f.prosecution(s1, charged_on="2024-02-10")  # a second prosecution: still one suspect
    f.prosecution(s2, charged_on="2024-03-01", outcome="acquitted", verdict_on="2024-06-01")
    v1 = f.victim("2024-01-02", external_id="v1", nationality="VNM")
    v2 = f.victim("2023-12-30", external_id="v2")
    f.assistance(v1, assistance_type="shelter", start_date="2024-01-02", agency="AG-SH")
    f.assistance(v1, assistance_type="repatriation", start_date="2024-02-15")
    f.assistance(v2, assistance_type="medical", start_date="2023-12-30")
    f.referral(v1, shelter, referred_on="2024-01-05", consent="yes", consent_date="2024-01-05")
    f.referral(v2, shelter, referred_on="2024-01-06", consent="no")
    f.save(engine)
    m = report(engine, "2024-H1")["metrics"]
    assert m["suspects_prosecuted"] == 2
    assert m["suspects_convicted"] == 1
    assert m["victims_assisted"] == 1
    assert m["victims_repatriated"] == 1
    assert m["victims_referred"] == 1
    assert drill(engine, "suspects_convicted", "2024-H1") == ["s1"]
    assert drill(engine, "victims_referred", "2024-H1") == ["v1"]


def test_drill_down_by_cell_and_errors(engine: Engine) -> None:
    f = Fixture()
    f.victim("2024-01-10", sex="female", province="Siem Reap", external_id="v-sr")
    f.victim("2024-01-10", sex="female", province="KH-12", external_id="v-pp")
    f.save(engine)
    assert drill(engine, "victims_rescued", "2024-01", "province", "KH-17") == ["v-sr"]
    with pytest.raises(ValueError, match="no breakdown"):
        drill(engine, "operations", "2024-01", "sex", "female")
    with pytest.raises(KeyError, match="unknown metric"):
        drill(engine, "victims_saved", "2024-01")
    with pytest.raises(ValueError, match="unknown dimension"):
        report(engine, "2024-01", ("colour",))


def test_report_json_shape(engine: Engine) -> None:
    r = report(engine, "2024-H1", ("sex",))
    assert set(r["metrics"]) == set(METRICS)
    assert r["period"] == {
        "label": "2024-H1",
        "kind": "half",
        "start": "2024-01-01",
        "end": "2024-06-30",
    }
    assert r["deduplicated"] is False
    assert "sex" in r["by"]


def test_report_cache_never_serves_figures_of_changed_records(engine: Engine) -> None:
    from ctis.metrics.report import ReportCache

    cache = ReportCache(size=4)
    f = Fixture()
    f.victim("2024-02-01", external_id="v-cache-1")
    f.save(engine)
    with Session(engine) as s:
        first = cache.report(s, parse_period("2024-H1"), ["victims_rescued"])
        assert cache.report(s, parse_period("2024-H1"), ["victims_rescued"]) is first  # served from the cache
    g = Fixture()
    g.victim("2024-03-01", external_id="v-cache-2")
    g.save(engine)
    with Session(engine) as s:
        again = cache.report(s, parse_period("2024-H1"), ["victims_rescued"])
    assert (first.metrics["victims_rescued"], again.metrics["victims_rescued"]) == (1, 2)
