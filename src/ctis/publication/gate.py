"""The release gate: the only way a count leaves CTIS.

:func:`protect` takes exact :class:`~ctis.publication.tables.CountTable` s and
returns a :class:`ProtectedRelease` in which no exact small count survives, or
raises :class:`ReleaseRefused` with a reason a person can act on.  Two methods,
chosen per release:

``suppression``
    A cell with ``0 < count < threshold`` is hidden (*primary*).  Row, column and
    grand totals are published cells too, and τ-Argus (pytauargus, optimal
    suppression solved with HiGHS) hides as few further cells as it can
    (*secondary*) so that no hidden cell can be worked out from the totals.
    Then an exact audit (:mod:`ctis.publication.inference`) takes every number
    of this release *and* of ``earlier`` releases of the same metric — including
    what differencing overlapping periods reveals, H1 − Q1 = Q2 — and checks each
    hidden or implied small count still has a wide interval; where it does not,
    the offending cells go back to τ-Argus as primary and the tables are solved
    again.  A release that cannot be made safe is refused.
    Zeros are published: a zero says that nobody is in the cell, so no person can
    be singled out by it (the choice of CTDC and most statistical offices).
    A table whose grand total is itself in ``1 .. threshold-1`` is **refused**,
    not silently blanked: everything in it would be hidden, and the person asking
    should choose a longer period or fewer breakdowns.

``dp``
    Each interior cell gets discrete Laplace noise from OpenDP; margins and the
    total are sums of the noisy cells, so every table adds up and the margins
    cost no privacy (post-processing).  The release's ε is split evenly between
    its tables (they may count the same people).  One person changes one cell of
    a table by one when the metric counts each person under one value; for a
    metric that can count a record under several values (``fan_out``) the L1
    sensitivity is taken as the number of cells.  Noisy values are rounded by the
    mechanism itself (integer noise) and clamped at zero.  The caller passes the
    ε already spent and the budget; a release that would pass the budget is refused.

The caller must give every table its full list of keys (zeros included, from
the value sets) so that which cells exist does not depend on the data.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from ctis.domain.periods import parse_period
from ctis.publication.inference import TOTAL, Figure
from ctis.publication.tables import CountTable

__all__ = [
    "TOTAL",
    "CellStatus",
    "DpParams",
    "Figure",
    "Method",
    "ProtectedRelease",
    "ProtectedTable",
    "PublishedCell",
    "ReleaseRefused",
    "SuppressionParams",
    "protect",
]

#: At most this many solve-and-audit rounds before a release is refused.
MAX_ROUNDS = 6


class ReleaseRefused(Exception):
    """The release cannot be published as asked; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Method(StrEnum):
    SUPPRESSION = "suppression"
    DP = "dp"


class CellStatus(StrEnum):
    PUBLISHED = "published"  # the exact count (at or above the threshold, or zero)
    PRIMARY = "primary"  # hidden: 0 < count < threshold
    SECONDARY = "secondary"  # hidden so that a primary cell cannot be recovered
    NOISE = "noise"  # differentially private noisy count


@dataclass(frozen=True)
class SuppressionParams:
    """``threshold``: smallest count published (CTDC used 11 for victims; 10 here by default).

    ``protection``: how far, in percent of its value (and at least 1), a hidden
    small count must remain uncertain on each side, given everything published.
    """

    threshold: int = 10
    protection: int = 50

    def __post_init__(self) -> None:
        if not 2 <= self.threshold <= 1000:
            raise ValueError("threshold must be a whole number from 2 to 1000")
        if not 1 <= self.protection <= 100:
            raise ValueError("protection must be a percentage from 1 to 100")

    def as_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "protection": self.protection}


@dataclass(frozen=True)
class DpParams:
    """``epsilon`` for this release; ``spent`` by earlier releases; ``budget`` for all of them."""

    epsilon: float = 1.0
    budget: float = 5.0
    spent: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and 0 < self.epsilon <= 100):
            raise ValueError("epsilon must be a number above 0 and at most 100")
        if not (math.isfinite(self.budget) and self.budget > 0):
            raise ValueError("the privacy budget must be a positive number")

    def as_dict(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "budget": self.budget}


@dataclass(frozen=True)
class PublishedCell:
    """One figure as it leaves: ``key`` has :data:`TOTAL` where a dimension is summed over."""

    key: tuple[str, ...]
    value: int | None  # None when hidden
    status: CellStatus

    @property
    def hidden(self) -> bool:
        return self.value is None

    @property
    def is_margin(self) -> bool:
        return TOTAL in self.key


@dataclass
class ProtectedTable:
    """A :class:`CountTable` after the gate: interior cells, margins and total, none exact if small."""

    name: str
    metric: str
    period: str
    dimensions: tuple[str, ...]
    cells: dict[tuple[str, ...], PublishedCell]
    title: str = ""
    unit: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> PublishedCell:
        return self.cells[(TOTAL,) * len(self.dimensions)]

    def interior(self) -> list[PublishedCell]:
        return [c for c in self.cells.values() if not c.is_margin]

    def margins(self) -> list[PublishedCell]:
        return [c for c in self.cells.values() if c.is_margin]


@dataclass
class ProtectedRelease:
    method: Method
    parameters: dict[str, Any]
    tables: list[ProtectedTable]
    #: ε this release spends (0 for suppression)
    epsilon: float = 0.0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def figures(self) -> list[Figure]:
        """What this release makes public, in the form the next release's gate needs as ``earlier``."""
        out: list[Figure] = []
        for t in self.tables:
            period = parse_period(t.period)
            for cell in t.cells.values():
                out.append(Figure(t.metric, period.start, period.end, t.dimensions, cell.key, cell.value))
        return out


def protect(
    tables: Sequence[CountTable],
    method: Method | str,
    params: SuppressionParams | DpParams,
    *,
    earlier: Sequence[Figure] = (),
    recount: Callable[[Figure], int | None] | None = None,
) -> ProtectedRelease:
    """Protect ``tables`` for publication, or raise :class:`ReleaseRefused`.

    ``earlier`` is every figure earlier releases made public (value ``None`` for
    a hidden one); suppression takes them into account so that comparing this
    release with them reveals no hidden count.  ``recount``, when the caller can
    give it, returns the exact count of an earlier hidden figure (releases keep
    none): with it an earlier small cell is held to the same protection margin
    as a new one; without it the audit assumes the worst small value.  DP needs
    only the ε already spent, which travels in :class:`DpParams`.  Raises
    ``ValueError`` for malformed input (an empty release, a table whose keys do
    not match its dimensions).
    """
    method = Method(method)
    if not tables:
        raise ValueError("a release needs at least one table")
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        raise ValueError("table names in a release must be unique")
    for t in tables:
        _check_table(t)
    if method is Method.SUPPRESSION:
        if not isinstance(params, SuppressionParams):
            raise ValueError("suppression needs SuppressionParams")
        from ctis.publication.suppression import suppress

        return suppress(list(tables), params, earlier, recount)
    if not isinstance(params, DpParams):
        raise ValueError("dp needs DpParams")
    from ctis.publication.dp import noisy_release

    return noisy_release(list(tables), params)


def _check_table(t: CountTable) -> None:
    if len(t.dimensions) > 2:
        raise ValueError(f"table {t.name!r}: at most two breakdowns per table")
    parse_period(t.period)
    for key, n in t.cells.items():
        if len(key) != len(t.dimensions) or TOTAL in key:
            raise ValueError(f"table {t.name!r}: key {key!r} does not match {t.dimensions!r}")
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"table {t.name!r}: counts must be whole numbers from 0")
    if not t.dimensions and set(t.cells) - {()}:
        raise ValueError(f"table {t.name!r} has no breakdown and so no cells")
    if t.total < 0:
        raise ValueError(f"table {t.name!r}: the total cannot be negative")


def workdir() -> Path:
    """A private scratch directory for the τ-Argus batch files (they hold exact counts)."""
    return Path(tempfile.mkdtemp(prefix="ctis-gate-"))


def margins_of(t: CountTable) -> Mapping[tuple[str, ...], int]:
    """Every figure a reader of ``t`` sees, keyed with :data:`TOTAL` for summed dimensions.

    Row and column totals are sums of the cells (:meth:`CountTable.margin`); the
    grand total is the table's own ``total``, which for a metric that counts a
    record under several values can be smaller than the sum.
    """
    out: dict[tuple[str, ...], int] = dict(t.cells)
    dims = len(t.dimensions)
    if dims == 2:
        for axis in (0, 1):
            for value, n in t.margin(axis).items():
                key = (value, TOTAL) if axis == 0 else (TOTAL, value)
                out[key] = n
    out[(TOTAL,) * dims] = t.total
    return out
