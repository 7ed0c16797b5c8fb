"""Claim checking: find statistical claims in English prose and check them against the records.

>>> results = check_text(session, "Police rescued 290 victims in the first half of 2024.")  # doctest: +SKIP
>>> print(format_results(results, "table"))  # doctest: +SKIP

Every figure is computed through the metric registry (``ctis.metrics``), so a
claim is checked against the same definition as every report.  See
``docs/claims.md`` for what the finder understands and its limits.
"""

from ctis.claims.check import (
    CONTRADICTED,
    SUPPORTED,
    UNVERIFIABLE,
    ClaimChecker,
    ClaimResult,
    check_text,
    format_results,
    holds,
)
from ctis.claims.extract import Breakdown, Claim, extract_claims, resolve_metric
from ctis.claims.numbers import find_numbers, parse_number
from ctis.claims.periods import resolve_period

__all__ = [
    "CONTRADICTED",
    "SUPPORTED",
    "UNVERIFIABLE",
    "Breakdown",
    "Claim",
    "ClaimChecker",
    "ClaimResult",
    "check_text",
    "extract_claims",
    "find_numbers",
    "format_results",
    "holds",
    "parse_number",
    "resolve_metric",
    "resolve_period",
]
