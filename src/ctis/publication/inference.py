"""What an attacker can infer from published figures: exact feasible intervals.

Every published figure is a sum of unknown, non-negative whole numbers: the
counts of one metric in one stretch of time (a *segment*: the pieces that all
published periods cut the calendar into, so Q1 and H1 give Q1 and Q2) and one
combination of breakdown values (the union of every breakdown published for the
metric, so a sex table and a sex × age table share their unknowns).  A published
value fixes its sum; a hidden one says only that the sum is at least 1 (zeros
are always published, so a hidden cell is known not to be zero).  The smallest
and largest value any other sum can take under all of that is a pair of integer
programmes, solved with HiGHS (:mod:`ctis.publication.lp`).

The gate uses this to audit a release against everything published before it;
the attack test uses it to try to recover every hidden cell.

Limits, stated so that nobody reads more into the audit than it does:

* a metric that can count one record under several values or periods
  (``fan_out``: a case with operations in two provinces or two quarters) is not
  additive, so its periods are not split into segments and its grand totals are
  not used as equations: the audit is then weaker than an attacker who knows how
  much overlap there is;
* when the combinations of every breakdown of a metric would exceed
  :data:`MAX_ATOMS`, each breakdown set is modelled on its own.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from ctis.publication.lp import System, interval, lowest

#: the key value of a dimension that a figure sums over (a margin)
TOTAL = "*"
MAX_ATOMS = 20_000


@dataclass(frozen=True)
class Figure:
    """One number as published (``value``), or a hidden one (``value`` None)."""

    metric: str
    start: date
    end: date
    dimensions: tuple[str, ...]
    key: tuple[str, ...]
    value: int | None

    @property
    def where(self) -> dict[str, str]:
        """The breakdown values the figure is restricted to (summed dimensions left out)."""
        return {d: v for d, v in zip(self.dimensions, self.key, strict=True) if v != TOTAL}


def _fan_out(metric: str) -> bool:
    from ctis.domain.periods import parse_period
    from ctis.metrics.registry import METRICS

    m = METRICS.get(metric)
    return bool(m is not None and m.facts(parse_period("2024")).fan_out)


@dataclass
class _Group:
    dims: tuple[str, ...]
    values: dict[str, list[str]]
    segments: list[tuple[date, date]]
    additive: bool
    offset: int

    def size(self) -> int:
        return len(self.segments) * math.prod(len(self.values[d]) for d in self.dims)


class Knowledge:
    """Everything published, as a system of equations over unknown counts."""

    def __init__(
        self,
        figures: Iterable[Figure],
        *,
        fan_out: Callable[[str], bool] = _fan_out,
        extra_periods: Iterable[tuple[str, date, date]] = (),
    ):
        self.figures = list(figures)
        by_metric: dict[str, list[Figure]] = defaultdict(list)
        for f in self.figures:
            by_metric[f.metric].append(f)
        periods: dict[str, set[tuple[date, date]]] = defaultdict(set)
        for f in self.figures:
            periods[f.metric].add((f.start, f.end))
        for metric, start, end in extra_periods:
            periods[metric].add((start, end))
        self.groups: dict[tuple[str, tuple[str, ...] | None], _Group] = {}
        offset = 0
        for metric, figs in by_metric.items():
            additive = not fan_out(metric)
            segments = _segments(periods[metric]) if additive else sorted(periods[metric])
            dims_sets = {f.dimensions for f in figs}
            union = tuple(dict.fromkeys(d for ds in sorted(dims_sets) for d in ds))
            group = _Group(union, _values(figs, union), segments, additive, offset)
            if group.size() <= MAX_ATOMS:
                self.groups[(metric, None)] = group
                offset += group.size()
                continue
            for ds in sorted(dims_sets):
                sub = [f for f in figs if f.dimensions == ds]
                g = _Group(ds, _values(sub, ds), segments, additive, offset)
                self.groups[(metric, ds)] = g
                offset += g.size()
        self.system = System(offset)
        self._memo: dict[tuple[int, ...], tuple[int, float]] = {}
        #: a lower bound at least this large ends the search (set by the gate to its threshold)
        self.enough = math.inf
        for f in self.figures:
            terms = self.terms(f)
            if terms is None:
                continue
            if f.value is None:
                self.system.between(terms, 1, math.inf)
            else:
                self.system.equal(terms, f.value)

    def _group(self, metric: str, dims: tuple[str, ...]) -> _Group | None:
        return self.groups.get((metric, None)) or self.groups.get((metric, dims))

    def terms(self, f: Figure) -> dict[int, float] | None:
        """The unknowns whose sum is ``f``; None when ``f`` is no equation (a non-additive total)."""
        g = self._group(f.metric, f.dimensions)
        if g is None:
            return None
        where = f.where
        if not g.additive and not where and (f.dimensions or g.dims):
            return None
        if any(v not in g.values.get(d, ()) for d, v in where.items()):
            return {}  # a value nobody published: the sum of no unknowns
        if g.additive:
            segs = [i for i, (s, e) in enumerate(g.segments) if f.start <= s and e <= f.end]
        else:
            segs = [i for i, se in enumerate(g.segments) if se == (f.start, f.end)]
        per_segment = math.prod(len(g.values[d]) for d in g.dims)
        choices = [[where[d]] if d in where else g.values[d] for d in g.dims]
        index = {d: {v: i for i, v in enumerate(g.values[d])} for d in g.dims}
        out: dict[int, float] = {}
        for combo in itertools.product(*choices):
            flat = 0
            for d, v in zip(g.dims, combo, strict=True):
                flat = flat * len(g.values[d]) + index[d][v]
            for s in segs:
                out[g.offset + s * per_segment + flat] = 1.0
        return out

    def interval(self, f: Figure) -> tuple[int, float]:
        """Smallest and largest value the figure's count can take given everything published.

        Remembered per count, not per table: a one-way table's cell and the
        cross-table's margin are the same count and cost one pair of solves.
        """
        terms = self.terms(f)
        if not terms:
            return (0, 0) if terms == {} else (0, math.inf)
        memo = tuple(sorted(terms))
        if memo not in self._memo:
            self._memo[memo] = interval(self.system, terms)
        return self._memo[memo]

    def lowest(self, f: Figure) -> int:
        """The smallest value the figure's count can take given everything published."""
        terms = self.terms(f)
        if not terms:
            return 0
        if tuple(sorted(terms)) in self._memo:
            return self._memo[tuple(sorted(terms))][0]
        # the LP relaxation's minimum is never above the whole-number one, and much cheaper:
        # when it already reaches the threshold, so does the exact one
        relaxed = lowest(self.system, terms, integer=False)
        return relaxed if relaxed >= self.enough else lowest(self.system, terms)

    def segments(self, metric: str) -> list[tuple[date, date]]:
        g = next((g for (m, _d), g in self.groups.items() if m == metric), None)
        return list(g.segments) if g is not None and g.additive else []


def _values(figs: Sequence[Figure], dims: tuple[str, ...]) -> dict[str, list[str]]:
    values: dict[str, dict[str, None]] = {d: {} for d in dims}
    for f in figs:
        if f.value == 0:  # a value seen only in zeros has no unknowns: its sums are empty
            continue
        for d, v in f.where.items():
            if d in values:
                values[d][v] = None
    return {d: list(v) or ["-"] for d, v in values.items()}


def _segments(periods: set[tuple[date, date]]) -> list[tuple[date, date]]:
    """The pieces that every period boundary cuts the union of ``periods`` into."""
    cuts = sorted({s for s, _e in periods} | {e + timedelta(days=1) for _s, e in periods})
    out = []
    for a, b in itertools.pairwise(cuts):
        last = b - timedelta(days=1)
        if any(s <= a and last <= e for s, e in periods):
            out.append((a, last))
    return out


def required_margin(value: int, protection: int) -> int:
    """How far a hidden count must stay uncertain: ``protection`` % of it, at least 1.

    Rounded as τ-Argus rounds its protection levels (to the nearest, halves to
    even), so that what the gate asks of τ-Argus and what it audits agree.
    """
    return max(1, round(value * protection / 100))


def is_protected(value: int, low: int, high: float, protection: int) -> bool:
    """Whether an interval leaves a hidden ``value`` uncertain enough.

    The interval must reach ``required_margin`` above the value and be at least
    twice that wide.  It is not asked to reach as far below: zeros are always
    published, so everyone knows a hidden cell is at least 1, and a sum of two
    hidden cells at least 2; a lower bound that comes only from that knowledge
    says nothing about any person.
    """
    need = required_margin(value, protection)
    return low <= value <= high and high >= value + need and high - low >= 2 * need
