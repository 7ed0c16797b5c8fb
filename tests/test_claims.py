"""Claim checking: number words, period phrases, and a labelled set of sentences checked on both engines.

The labelled set (``tests/data/claims/labelled.jsonl``) stores, for each
sentence, the claims a careful reader finds in it: metric, period, claimed
value and comparator (and, where it matters, a breakdown, a percentage base,
or ``"verdict": "unverifiable"`` when nothing in the records can settle the
claim).  Expected verdicts are computed here, from the demo database through
the registry, never stored — except that the published 2024-H1 figures are
asserted as published.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctis.claims import (
    ClaimChecker,
    check_text,
    extract_claims,
    find_numbers,
    format_results,
    holds,
    parse_number,
    resolve_period,
)
from ctis.domain.periods import parse_period
from ctis.metrics import METRICS, compute_report

LABELLED = Path(__file__).parent / "data" / "claims" / "labelled.jsonl"
THRESHOLD = 0.95


def _labelled() -> list[dict[str, Any]]:
    with LABELLED.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("290", 290),
        ("1,234", 1234),
        ("12,345,678", 12345678),
        ("four", 4),
        ("Twelve", 12),
        ("twenty-four", 24),
        ("one hundred and four", 104),
        ("two hundred ninety", 290),
        ("two hundred and forty-one", 241),
        ("a hundred", 100),
        ("a dozen", 12),
        ("two dozen", 24),
        ("three thousand five hundred", 3500),
        ("one thousand two hundred and thirty-four", 1234),
        ("a thousand", 1000),
        ("1.2 million", 1_200_000),
        ("3 thousand", 3000),
        ("២៩០", 290),
        ("១,២៣៤", 1234),
        ("83.5", 83.5),
    ],
)
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text", ["hundred hundred", "twenty twenty", "one and", "and four", "a", "", "four-ish"]
)
def test_parse_number_refuses_what_is_not_one_number(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number(text)


def test_find_numbers_reads_digits_words_percentages_and_fractions() -> None:
    found = find_numbers(
        "290 victims, two hundred forty-one women, 83% female, 46 per cent minors, half of them"
    )
    assert [(n.value, n.kind) for n in found] == [
        (290, "count"),
        (241, "count"),
        (83, "percent"),
        (46, "percent"),
        (50.0, "fraction"),
    ]
    assert [(n.value, n.kind) for n in find_numbers("hundreds of victims, one in five suspects")] == [
        (200, "vague"),
        (20.0, "fraction"),
    ]
    assert find_numbers("eighty-three percent")[0].value == 83


def test_find_numbers_leaves_ordinals_and_glued_digits_alone() -> None:
    assert find_numbers("the 12th National Day, COVID-19, a 15-year-old, G20, a four-day raid") == []


# --- periods ---------------------------------------------------------------------------------------

AS_OF = date(2024, 12, 12)


@pytest.mark.parametrize(
    ("phrase", "label"),
    [
        ("the first half of 2024", "2024-H1"),
        ("H1 2024", "2024-H1"),
        ("2024-H1", "2024-H1"),
        ("1H 2024", "2024-H1"),
        ("between January and June 2024", "2024-H1"),
        ("January to June 2024", "2024-H1"),
        ("Jan-Jun 2024", "2024-H1"),
        ("from 1 January to 30 June 2024", "2024-H1"),
        ("the first six months of 2024", "2024-H1"),
        ("the second half of 2023", "2023-H2"),
        ("in 2023", "2023"),
        ("calendar year 2022", "2022"),
        ("last year", "2023"),
        ("this year", "2024"),
        ("the first half of this year", "2024-H1"),
        ("the second half of last year", "2023-H2"),
        ("in the first quarter of 2024", "2024-Q1"),
        ("Q3 2024", "2024-Q3"),
        ("2024-Q3", "2024-Q3"),
        ("the first three months of 2024", "2024-Q1"),
        ("last quarter", "2024-Q3"),
        ("in March 2024", "2024-03"),
        ("in March", "2024-03"),
        ("last month", "2024-11"),
        ("the 2024 TIP reporting period", "TIP2024"),
        ("TIP year 2024", "TIP2024"),
        ("TIP2024", "TIP2024"),
        ("the 2024 Trafficking in Persons report", "TIP2024"),
        ("April 2023 to March 2024", "TIP2024"),
        ("so far this year", "2024-01-01..2024-12-12"),
        ("the past 12 months", "2023-12-13..2024-12-12"),
        ("since 2022", "2022-01-01..2024-12-12"),
        ("between 2022 and 2024", "2022-01-01..2024-12-31"),
        ("from 1 to 7 December 2024", "2024-12-01..2024-12-07"),
        ("last week", "2024-12-02..2024-12-08"),
    ],
)
def test_resolve_period(phrase: str, label: str) -> None:
    period = resolve_period(phrase, AS_OF)
    assert period is not None and period.label == label
    assert parse_period(label) == period  # labels are the registry's own


def test_relative_periods_need_a_reference_date() -> None:
    with pytest.raises(ValueError, match="reference date"):
        resolve_period("last year", None)
    assert resolve_period("the first half of the year", None, year=2023).label == "2023-H1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("phrase", "why"),
    [
        ("in recent years", "vague"),
        ("to date", "vague"),
        ("fiscal year 2024", "fiscal"),
        ("in 2023-24", "ambiguous"),
        ("by the end of 2024", "cumulative"),
        ("next year", "future"),
    ],
)
def test_unresolvable_period_phrases_say_why(phrase: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        resolve_period(phrase, AS_OF)


def test_a_dateline_dates_relative_phrases() -> None:
    claims = extract_claims(
        "PHNOM PENH, 12 December 2024 — Police rescued 290 victims in the first half of this year."
    )
    assert [(c.metric, c.period.label if c.period else None, c.claimed) for c in claims] == [
        ("victims_rescued", "2024-H1", 290)
    ]


def test_periods_carry_over_to_the_next_sentence_and_can_be_replaced() -> None:
    text = "In 2023, the courts were busy. They convicted 107 traffickers. In 2024 they convicted 138."
    got = [(c.metric, c.period.label if c.period else None, c.claimed) for c in extract_claims(text)]
    assert got == [("suspects_convicted", "2023", 107), ("suspects_convicted", "2024", 138)]


# --- finding claims without a database -------------------------------------------------------------


def test_the_brief_sentence() -> None:
    text = (
        "Its committee reported for the first half of 2024: 104 trafficking and sexual-exploitation cases "
        "cracked down, 134 suspects arrested of whom 4 foreigners, 290 victims rescued of whom 241 female "
        "and 134 under 18."
    )
    got = [
        (c.metric, c.period.label if c.period else None, c.claimed, c.comparator)
        for c in extract_claims(text)
    ]
    assert got == [
        ("cases_cracked_down", "2024-H1", 104, "="),
        ("suspects_arrested", "2024-H1", 134, "="),
        ("suspects_arrested_foreign", "2024-H1", 4, "="),
        ("victims_rescued", "2024-H1", 290, "="),
        ("victims_rescued_female", "2024-H1", 241, "="),
        ("victims_rescued_minor", "2024-H1", 134, "="),
    ]


@pytest.mark.parametrize(
    ("text", "comparator", "claimed"),
    [
        ("More than 200 victims were rescued in 2024.", ">", 200),
        ("Over 200 victims were rescued in 2024.", ">", 200),
        ("At least 200 victims were rescued in 2024.", ">=", 200),
        ("Nearly 600 victims were rescued in 2024.", "~", 600),
        ("Almost 600 victims were rescued in 2024.", "~", 600),
        ("About 600 victims were rescued in 2024.", "~", 600),
        ("Around 600 victims were rescued in 2024.", "~", 600),
        ("Approximately 600 victims were rescued in 2024.", "~", 600),
        ("Fewer than 700 victims were rescued in 2024.", "<", 700),
        ("Up to 700 victims were rescued in 2024.", "<=", 700),
        ("Hundreds of victims were rescued in 2024.", ">=", 200),
    ],
)
def test_comparators(text: str, comparator: str, claimed: int) -> None:
    [claim] = extract_claims(text)
    assert (claim.metric, claim.comparator, claim.claimed) == ("victims_rescued", comparator, claimed)


@pytest.mark.parametrize(
    "text",
    [
        "The 12th National Day Against Human Trafficking was held on 12 December 2024.",
        "Under Article 15 of the 2008 law, offenders face 7 to 15 years in prison.",
        "Call 1288 or 012 345 678 to report trafficking.",
        "A 15-year-old girl, aged 15, was among those rescued.",
        "Cambodia was ranked Tier 3 for 2024.",
        "No claims here at all.",
        "",
    ],
)
def test_numbers_that_are_not_claims(text: str) -> None:
    assert extract_claims(text) == []


def test_holds() -> None:
    assert holds("=", 290, 290) and not holds("=", 300, 290)
    assert holds(">", 200, 290) and not holds(">", 290, 290)
    assert holds("~", 300, 290) and not holds("~", 310, 290)  # within 5%
    assert holds("=", 83, 83.1, "percent") and not holds("=", 85, 83.1, "percent")
    assert holds("~", 50, 46.2, "percent")  # "nearly half": 5 percentage points
    assert holds("between", 200, 290, claimed_max=300)


# --- checking against the records, on SQLite and PostgreSQL -----------------------------------------


@pytest.fixture(scope="module")
def session(demo_engine: Engine) -> Iterator[Session]:
    with Session(demo_engine) as s:
        yield s


def test_published_first_half_2024_figures_are_supported(session: Session) -> None:
    text = (
        "PHNOM PENH, 12 December 2024 — In the first half of this year the committee recorded 104 cases "
        "of trafficking and sexual exploitation cracked down and 134 suspects arrested, including four "
        "foreigners. Authorities rescued 290 victims, of whom 241 were women and girls and 134 were children."
    )
    results = check_text(session, text, None)
    got = {(r.metric, r.period, r.claimed, r.actual, r.verdict) for r in results}
    assert got == {
        ("cases_cracked_down", "2024-H1", 104, 104, "supported"),
        ("suspects_arrested", "2024-H1", 134, 134, "supported"),
        ("suspects_arrested_foreign", "2024-H1", 4, 4, "supported"),
        ("victims_rescued", "2024-H1", 290, 290, "supported"),
        ("victims_rescued_female", "2024-H1", 241, 241, "supported"),
        ("victims_rescued_minor", "2024-H1", 134, 134, "supported"),
    }
    assert all(r.drill == {"metric": r.metric, "period": "2024-H1"} for r in results)


def test_contradicted_and_unverifiable_claims_say_why(session: Session) -> None:
    [wrong] = check_text(session, "Police rescued 300 victims in the first half of 2024.")
    assert (wrong.verdict, wrong.actual) == ("contradicted", 290)
    assert "290" in wrong.reason
    [vague] = check_text(session, "In recent years, police rescued 5,000 victims.")
    assert vague.verdict == "unverifiable" and "recent years" in vague.reason
    [no_period] = check_text(session, "Police rescued 290 victims.")
    assert no_period.verdict == "unverifiable" and "no period" in no_period.reason
    assert check_text(session, "Nothing to check here.") == []


def test_format_results(session: Session) -> None:
    results = check_text(session, "Police rescued 290 victims and arrested 140 suspects in H1 2024.")
    lines = format_results(results, "json").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["metric"], r["claimed"], r["actual"], r["verdict"]) for r in rows] == [
        ("victims_rescued", 290, 290, "supported"),
        ("suspects_arrested", 140, 134, "contradicted"),
    ]
    assert {"text", "metric", "period", "claimed", "actual", "verdict"} <= set(rows[0])
    table = format_results(results, "table")
    assert "supported" in table and "contradicted" in table and "2024-H1" in table
    assert format_results([], "table") == "" and format_results([], "json") == ""
    with pytest.raises(ValueError):
        format_results(results, "xml")


# --- the labelled set ------------------------------------------------------------------------------


class Records:
    """Expected figures, computed through the registry (independently of ctis.claims)."""

    def __init__(self, session: Session):
        self.session = session

    def count(self, metric: str, period: str, breakdown: str | None) -> int:
        if breakdown is None:
            return compute_report(self.session, parse_period(period), [metric]).metrics[metric]
        dim, codes = breakdown.split("=")
        cells = compute_report(self.session, parse_period(period), [metric], by=[dim]).by[dim][metric]
        if codes == "foreign":
            return sum(n for code, n in cells.items() if code not in {"KHM", "unknown"})
        return sum(cells.get(code, 0) for code in codes.split("+"))

    def expected(self, label: dict[str, Any]) -> tuple[str, float | None]:
        if label.get("verdict") == "unverifiable" or label["metric"] is None or label["period"] is None:
            return "unverifiable", None
        actual: float = self.count(label["metric"], label["period"], label.get("breakdown"))
        if label.get("unit") == "percent":
            base = self.count(label["base"], label["period"], None)
            actual = round(100 * actual / base, 1)
        claimed, comparator = label["claimed"], label["comparator"]
        percent = label.get("unit") == "percent"
        ok = {
            "=": abs(actual - claimed) <= 0.5 if percent else actual == claimed,
            ">": actual > claimed,
            ">=": actual >= claimed,
            "<": actual < claimed,
            "<=": actual <= claimed,
            "~": abs(actual - claimed) <= (5 if percent else 0.05 * claimed),
            "between": claimed <= actual <= label.get("claimed_max", claimed),
        }[comparator]
        return ("supported" if ok else "contradicted"), actual


def _key(metric: str | None, period: str | None, claimed: float, breakdown: str | None) -> tuple[Any, ...]:
    return (metric, period, float(claimed), breakdown)


def test_labelled_set_is_well_formed() -> None:
    rows = _labelled()
    assert len(rows) >= 100
    for row in rows:
        assert set(row) == {"text", "as_of", "claims"}, row
        for claim in row["claims"]:
            assert claim["metric"] is None or claim["metric"] in METRICS, claim
            assert claim["comparator"] in {"=", ">", ">=", "<", "<=", "~", "between"}, claim
            if claim["period"] is not None:
                parse_period(claim["period"])
    assert sum(not row["claims"] for row in rows) >= 20  # sentences without claims, decoy numbers only


def test_labelled_set(session: Session, capsys: pytest.CaptureFixture[str]) -> None:
    """Claim detection precision and recall, and verdict accuracy, on the labelled sentences."""
    records = Records(session)
    checker = ClaimChecker(session)
    detected = labelled = matched = right = 0
    misses: list[str] = []
    for row in _labelled():
        as_of = date.fromisoformat(row["as_of"]) if row["as_of"] else None
        results = checker.check(row["text"], as_of)
        expected = list(row["claims"])
        detected += len(results)
        labelled += len(expected)
        for result in results:
            breakdown = result.breakdown.label if result.breakdown else None
            key = _key(result.metric, result.period, result.claimed, breakdown)
            hit = next(
                (
                    e
                    for e in expected
                    if _key(e["metric"], e["period"], e["claimed"], e.get("breakdown")) == key
                ),
                None,
            )
            if hit is None:
                misses.append(f"extra {key} in {row['text']!r}")
                continue
            expected.remove(hit)
            matched += 1
            verdict, actual = records.expected(hit)
            if result.verdict == verdict and (actual is None or result.actual == actual):
                right += 1
            else:
                got = f"{result.verdict}/{result.actual}"
                misses.append(f"verdict {got} != {verdict}/{actual} for {key} in {row['text']!r}")
        misses.extend(f"missed {e} in {row['text']!r}" for e in expected)
    precision, recall = matched / detected, matched / labelled
    accuracy = right / matched
    with capsys.disabled():
        print(
            f"\nclaims labelled set: {labelled} labelled, {detected} detected, {matched} matched; "
            f"precision {precision:.3f}, recall {recall:.3f}, verdict accuracy {accuracy:.3f}"
        )
        for miss in misses:
            print("  ", miss)
    assert precision >= THRESHOLD, misses
    assert recall >= THRESHOLD, misses
    assert accuracy >= THRESHOLD, misses
