"""Pure domain rules: periods, ages, value sets and record validation."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from ctis.domain.ages import age_band, age_on, is_minor
from ctis.domain.periods import months, parse_period
from ctis.domain.records import SCHEMAS, VictimIn, columns, parse_date
from ctis.domain.values import parse_country, provinces, value_set


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2024", "2024-01-01", "2024-12-31"),
        ("2024-02", "2024-02-01", "2024-02-29"),
        ("2023-02", "2023-02-01", "2023-02-28"),
        ("2024-Q3", "2024-07-01", "2024-09-30"),
        ("2024-q4", "2024-10-01", "2024-12-31"),
        ("2024-H1", "2024-01-01", "2024-06-30"),
        ("2024-H2", "2024-07-01", "2024-12-31"),
        ("TIP2024", "2023-04-01", "2024-03-31"),
        ("2024-01-15..2024-02-10", "2024-01-15", "2024-02-10"),
    ],
)
def test_parse_period(text: str, start: str, end: str) -> None:
    p = parse_period(text)
    assert (p.start.isoformat(), p.end.isoformat()) == (start, end)


@pytest.mark.parametrize(
    "text",
    [
        "2024-H3",
        "2024-13",
        "2024-Q5",
        "24",
        "last year",
        "2024-02-10..2024-01-01",
        "2024-02-30..2024-03-01",
    ],
)
def test_bad_period_is_refused_with_its_text(text: str) -> None:
    with pytest.raises(ValueError, match="period"):
        parse_period(text)


def test_months_of_a_tip_year() -> None:
    labels = [m.label for m in months(parse_period("TIP2024"))]
    assert labels[0] == "2023-04" and labels[-1] == "2024-03" and len(labels) == 12


def test_age_on_birthdays_and_leap_days() -> None:
    assert age_on(date(2006, 3, 10), date(2024, 3, 10)) == 18
    assert age_on(date(2006, 3, 11), date(2024, 3, 10)) == 17
    assert age_on(date(2004, 2, 29), date(2022, 2, 28)) == 17
    assert age_on(date(2004, 2, 29), date(2022, 3, 1)) == 18
    assert not is_minor(18) and is_minor(17) and not is_minor(None)


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "0-8"),
        (8, "0-8"),
        (9, "9-17"),
        (17, "9-17"),
        (18, "18-20"),
        (47, "39-47"),
        (48, "48+"),
        (None, "unknown"),
    ],
)
def test_ctdc_age_bands(age: int | None, band: str) -> None:
    assert age_band(age) == band


def test_value_sets_accept_codes_labels_khmer_and_aliases() -> None:
    assert provinces().parse("Sihanoukville") == "KH-18"
    assert provinces().parse("ភ្នំពេញ") == "KH-12"
    assert provinces().parse("kh-12") == "KH-12"
    assert len(provinces().codes) == 25
    assert value_set("sex").parse("Female") == "female"
    assert value_set("sex").parse("ស្រី") == "female"
    assert value_set("exploitation_type").parse("Forced labour") == "forced_labour"
    assert (
        parse_country("Cambodia") == "KHM" and parse_country("vn") == "VNM" and parse_country("THA") == "THA"
    )
    with pytest.raises(ValueError, match="unknown country"):
        parse_country("Atlantis")
    with pytest.raises(ValueError, match="unknown province"):
        provinces().parse("Gotham")


def test_dates_iso_and_day_month_year() -> None:
    assert parse_date("2024-06-30") == date(2024, 6, 30)
    assert parse_date("30/06/2024") == date(2024, 6, 30)
    assert parse_date("1.7.2024") == date(2024, 7, 1)
    with pytest.raises(ValueError, match="not a valid date"):
        parse_date("06/30/2024")


def _errors(**fields: object) -> dict[str, str]:
    fields.setdefault("external_id", "x")
    fields.setdefault("rescue_date", "2024-01-01")
    with pytest.raises(ValidationError) as info:
        VictimIn.model_validate(fields, context={"today": date(2025, 1, 1)})
    out = {}
    for e in info.value.errors():
        column = e["loc"][0] if e["loc"] else e["ctx"]["field"]
        out[str(column)] = e["msg"]
    return out


def test_victim_rules_name_the_field() -> None:
    assert "province" in _errors(province="Atlantis")
    assert "nationality" in _errors(nationality="XXX")
    assert "exploitation_type" in _errors(exploitation_type="smuggling")
    assert "rescue_date" in _errors(rescue_date="2026-01-01")  # in the future
    assert "rescue_date" in _errors(date_of_birth="2024-02-01")  # before birth
    msg = _errors(date_of_birth="2010-01-01", age=20)["age"]
    assert "contradicts" in msg and "aged 14" in msg
    assert "rescue_date" in _errors(rescue_date=None)
    assert "external_id" in _errors(external_id="")


def test_victim_age_from_birth_or_recorded_age() -> None:
    v = VictimIn.model_validate(
        {"external_id": "a", "rescue_date": "2024-01-01", "date_of_birth": "2010-01-02"}
    )
    assert v.age_at_rescue == 13
    v = VictimIn.model_validate({"external_id": "a", "rescue_date": "2024-01-01", "age": "16"})
    assert v.age_at_rescue == 16


def test_every_kind_has_a_template_with_external_id_first() -> None:
    for kind in SCHEMAS:
        assert columns(kind)[0] == "external_id"
    assert {"external_id", "name_latin", "name_khmer", "sex", "date_of_birth", "age", "nationality",
            "province", "exploitation_type", "rescue_date"} <= set(columns("victims"))  # fmt: skip
    assert {"external_id", "name_latin", "sex", "date_of_birth", "nationality", "province",
            "arrest_date"} <= set(columns("suspects"))  # fmt: skip


def test_country_names_in_khmer_come_from_the_iso_3166_translations() -> None:
    from ctis.domain.values import country_label

    assert country_label("THA") == "Thailand"
    assert country_label("THA", "km") == "ថៃ"
    assert country_label("KHM", "km") == "កម្ពុជា"
    assert country_label("VNM", "km") == "វៀតណាម"
    assert country_label("XXX", "km") == "XXX" and country_label(None, "km") == "—"
