"""Check claims against the records, through the metric registry."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from ctis.claims.extract import FOREIGN, Breakdown, Claim, extract_claims, reference_date
from ctis.domain.periods import Period
from ctis.domain.values import CAMBODIA
from ctis.metrics.report import UNKNOWN, compute_report

SUPPORTED, CONTRADICTED, UNVERIFIABLE = "supported", "contradicted", "unverifiable"
#: "about", "nearly", "almost": within 5% of the claimed count, or 5 percentage points of a percentage.
APPROXIMATE_SHARE = 0.05
APPROXIMATE_POINTS = 5.0

COMPARATOR_WORDS = {
    "=": "",
    ">": "more than ",
    ">=": "at least ",
    "<": "fewer than ",
    "<=": "at most ",
    "~": "about ",
    "between": "between ",
}


@dataclass
class ClaimResult:
    """One claim and its verdict."""

    text: str  # the sentence the claim is in
    metric: str | None
    period: str | None  # the registry's period label (parse_period reads it back)
    claimed: int | float
    actual: int | float | None  # a count, or a percentage rounded to 0.1
    verdict: str  # supported, contradicted, unverifiable
    reason: str
    comparator: str  # =, >, >=, <, <=, ~, between
    phrase: str = ""  # the words of the claim itself
    span: tuple[int, int] = (0, 0)  # where the phrase is in the checked text
    unit: str = "count"  # count, percent, change
    breakdown: Breakdown | None = None
    claimed_max: int | float | None = None
    period_text: str | None = None  # the period phrase as written
    base_metric: str | None = None  # for a percentage: of what
    base_actual: int | None = None
    part_actual: int | None = None

    @property
    def drill(self) -> dict[str, Any] | None:
        """Where the records behind the figure are: metric, period and (optionally) breakdown cell."""
        if self.metric is None or self.period is None:
            return None
        out: dict[str, Any] = {"metric": self.metric, "period": self.period}
        if self.breakdown is not None:
            out["dimension"] = self.breakdown.dimension
            out["values"] = list(self.breakdown.codes)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "phrase": self.phrase,
            "metric": self.metric,
            "breakdown": self.breakdown.label if self.breakdown else None,
            "period": self.period,
            "period_text": self.period_text,
            "claimed": self.claimed,
            "claimed_max": self.claimed_max,
            "comparator": self.comparator,
            "unit": self.unit,
            "actual": self.actual,
            "verdict": self.verdict,
            "reason": self.reason,
            "drill": self.drill,
            "span": list(self.span),
        }


class ClaimChecker:
    """Checks text against one database session; figures are cached for the checker's life."""

    def __init__(self, session: Session):
        self.session = session
        self._cache: dict[tuple[str, str, str | None], Any] = {}

    def check(self, text: str, as_of: date | None = None) -> list[ClaimResult]:
        """Find the claims in ``text`` and check each one."""
        ref, _span = reference_date(text, as_of)  # a dateline stands in for a missing as_of
        return [self.check_claim(c, ref) for c in extract_claims(text, as_of)]

    # -- figures --
    def count(self, metric: str, period: Period, breakdown: Breakdown | None) -> int:
        key = (metric, period.label, breakdown.dimension if breakdown else None)
        if key not in self._cache:
            by = [breakdown.dimension] if breakdown else []
            report = compute_report(self.session, period, [metric], by=by)
            self._cache[key] = (
                report.metrics[metric],
                report.by.get(breakdown.dimension, {}).get(metric, {}) if breakdown else {},
            )
        total, cells = self._cache[key]
        if breakdown is None:
            return int(total)
        if breakdown.codes == (FOREIGN,):
            return sum(n for code, n in cells.items() if code not in {CAMBODIA, UNKNOWN})
        return sum(int(cells.get(code, 0)) for code in breakdown.codes)

    def check_claim(self, claim: Claim, as_of: date | None = None) -> ClaimResult:
        result = ClaimResult(
            text=claim.sentence,
            metric=claim.metric,
            period=claim.period.label if claim.period else None,
            claimed=claim.claimed,
            actual=None,
            verdict=UNVERIFIABLE,
            reason="",
            comparator=claim.comparator,
            phrase=claim.phrase,
            span=(claim.start, claim.end),
            unit=claim.unit,
            breakdown=claim.breakdown,
            claimed_max=claim.claimed_max,
            period_text=claim.period_text,
            base_metric=claim.base_metric,
        )
        if claim.problem:
            result.reason = claim.problem
            return result
        if claim.metric is None or claim.period is None:  # pragma: no cover - a problem says why
            result.reason = "no metric or no period"
            return result
        if as_of is not None and claim.period.start > as_of:
            result.reason = f"the period {claim.period.label} starts after {as_of.isoformat()}"
            return result
        part = self.count(claim.metric, claim.period, claim.breakdown)
        if claim.unit == "percent":
            assert claim.base_metric is not None  # noqa: S101
            whole = self.count(claim.base_metric, claim.period, claim.base_breakdown)
            result.part_actual, result.base_actual = part, whole
            if whole == 0:
                result.reason = f"no records for {claim.base_metric} in {claim.period.label}: no percentage"
                return result
            actual: int | float = round(100 * part / whole, 1)
        else:
            actual = part
        result.actual = actual
        ok = holds(claim.comparator, claim.claimed, actual, claim.unit, claim.claimed_max)
        result.verdict = SUPPORTED if ok else CONTRADICTED
        shown = f"{actual}%" if claim.unit == "percent" else str(actual)
        detail = f" ({result.part_actual} of {result.base_actual})" if claim.unit == "percent" else ""
        said = describe_claim(claim.comparator, claim.claimed, claim.unit, claim.claimed_max)
        result.reason = f"records show {shown}{detail}; the text says {said}"
        return result


def describe_claim(comparator: str, claimed: float, unit: str, claimed_max: float | None = None) -> str:
    suffix = "%" if unit == "percent" else ""
    if comparator == "between":
        return f"between {claimed}{suffix} and {claimed_max}{suffix}"
    return f"{COMPARATOR_WORDS.get(comparator, comparator + ' ')}{claimed}{suffix}"


def holds(
    comparator: str, claimed: float, actual: float, unit: str = "count", claimed_max: float | None = None
) -> bool:
    """Whether ``actual`` bears out a claim of ``comparator claimed``.

    Exact claims must match (a percentage to the precision it is written in);
    "about" claims may be 5% off (5 percentage points for a percentage).
    """
    if comparator == "=":
        if unit == "percent":
            decimals = (
                len(repr(float(claimed)).split(".")[1].rstrip("0")) if not float(claimed).is_integer() else 0
            )
            return abs(actual - claimed) <= 0.5 * 10**-decimals + 1e-9
        return actual == claimed
    if comparator == ">":
        return actual > claimed
    if comparator == ">=":
        return actual >= claimed
    if comparator == "<":
        return actual < claimed
    if comparator == "<=":
        return actual <= claimed
    if comparator == "~":
        if unit == "percent":
            return abs(actual - claimed) <= APPROXIMATE_POINTS + 1e-9
        return abs(actual - claimed) <= APPROXIMATE_SHARE * claimed + 1e-9
    if comparator == "between":
        return claimed <= actual <= (claimed_max if claimed_max is not None else claimed)
    raise ValueError(f"unknown comparator {comparator!r}")


def check_text(session: Session, text: str, as_of: date | None = None) -> list[ClaimResult]:
    """Find the statistical claims in ``text`` and check each against the records.

    ``as_of`` is the date relative phrases ("last year") are read against; without it, a dateline
    or the first full date in the text is used.  Text with no claims gives an empty list.
    """
    return ClaimChecker(session).check(text, as_of)


def _fmt_number(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value}"


def format_results(results: Sequence[ClaimResult], fmt: str = "table") -> str:
    """Results as a plain-text table or as JSON lines (one object per claim); '' when there are none."""
    if fmt == "json":
        return "\n".join(json.dumps(r.as_dict(), ensure_ascii=False) for r in results)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: use table or json")
    if not results:
        return ""
    rows = [("verdict", "metric", "period", "claimed", "actual", "claim")]
    for r in results:
        suffix = "%" if r.unit == "percent" else ""
        metric = (r.metric or "—") + (f" [{r.breakdown.label}]" if r.breakdown else "")
        claimed = describe_claim(r.comparator, r.claimed, r.unit, r.claimed_max).replace(",", "")
        actual = _fmt_number(r.actual) + (suffix if r.actual is not None else "")
        phrase = r.phrase if len(r.phrase) <= 60 else r.phrase[:57] + "…"
        rows.append((r.verdict, metric, r.period or "—", claimed, actual, phrase))
    widths = [max(len(row[c]) for row in rows) for c in range(5)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(row[:5])) + "  " + row[5])
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 5)
    unverifiable = [r for r in results if r.verdict == UNVERIFIABLE]
    for r in unverifiable:
        lines.append(f"  unverifiable: {r.phrase!r}: {r.reason}")
    return "\n".join(line.rstrip() for line in lines)
