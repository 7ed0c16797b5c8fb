"""An attacker with an integer-programming solver tries to recover every hidden count.

The attacker knows every published number of every release, that zeros are
always published (so a hidden cell holds at least one), how the periods nest
(H1 = Q1 + Q2) and, for a table published again, that exactly one record was
added in between.  For every hidden cell, and every small count of a period
nobody published (Q2, by differencing), it computes the exact range of values
still possible.  The gate must leave none of them pinned to a single value, and
every small hidden count uncertain by the protection margin.

The model is built here, independently of ``ctis.publication.inference``; only
the solver (HiGHS, through ``ctis.publication.lp``) is shared.  Two naive
publishers — primary suppression only, and τ-Argus without the earlier release —
must be caught, so the attack cannot pass by being blind.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctis.publication.gate import (
    TOTAL,
    CellStatus,
    Figure,
    Method,
    ProtectedRelease,
    ProtectedTable,
    PublishedCell,
    SuppressionParams,
    protect,
)
from ctis.publication.inference import required_margin
from ctis.publication.lp import System, interval
from ctis.publication.tables import CountTable

METRIC = "victims_rescued"
SEXES = ["female", "male", "unknown"]
AGES = ["0-8", "9-17", "18-24", "25-39", "40+"]
KEYS = list(itertools.product(SEXES, AGES))
PARAMS = SuppressionParams(threshold=10, protection=50)


def table(name: str, period: str, cells: dict[tuple[str, str], int]) -> CountTable:
    return CountTable(name, METRIC, period, ("sex", "age_band"), dict(cells), sum(cells.values()))


def one_way(name: str, period: str, cells: dict[tuple[str, str], int], axis: int) -> CountTable:
    out: dict[tuple[str, ...], int] = {}
    for key, n in cells.items():
        out[(key[axis],)] = out.get((key[axis],), 0) + n
    dims = ("sex",) if axis == 0 else ("age_band",)
    return CountTable(name, METRIC, period, dims, out, sum(cells.values()))


def random_cells(rng: random.Random, small: float = 0.35) -> dict[tuple[str, str], int]:
    """A cross-table with many small cells, some zeros, and enough people to publish."""
    cells = {}
    for key in KEYS:
        r = rng.random()
        cells[key] = 0 if r < 0.15 else rng.randint(1, 9) if r < 0.15 + small else rng.randint(10, 60)
    return cells


@dataclass
class Attacker:
    """Unknown counts per (snapshot, cell); every published figure becomes an equation."""

    snapshots: list[str]
    keys: list[tuple[str, str]] = field(default_factory=lambda: list(KEYS))
    system: System = field(init=False)
    hidden: list[tuple[str, dict[int, float], int]] = field(default_factory=list)
    public: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.system = System(len(self.snapshots) * len(self.keys))

    def var(self, snapshot: str, key: tuple[str, str]) -> int:
        return self.snapshots.index(snapshot) * len(self.keys) + self.keys.index(key)

    def terms(self, snapshots: list[str], t: ProtectedTable, key: tuple[str, ...]) -> dict[int, float]:
        where = dict(zip(t.dimensions, key, strict=True))
        out: dict[int, float] = {}
        for full in self.keys:
            values = {"sex": full[0], "age_band": full[1]}
            if all(v == TOTAL or values[d] == v for d, v in where.items()):
                for s in snapshots:
                    out[self.var(s, full)] = 1.0
        return out

    def read(
        self, release: ProtectedRelease, snapshots: list[str], truth: dict[tuple[str, str], int]
    ) -> None:
        """Take in every figure of ``release``, which counts the sum of ``snapshots``."""
        for t in release.tables:
            for cell in t.cells.values():
                terms = self.terms(snapshots, t, cell.key)
                if cell.value is None:
                    self.system.between(terms, 1, math.inf)
                    where = dict(zip(t.dimensions, cell.key, strict=True))
                    value = sum(
                        n
                        for full, n in truth.items()
                        if all(
                            v == TOTAL or {"sex": full[0], "age_band": full[1]}[d] == v
                            for d, v in where.items()
                        )
                    )
                    self.hidden.append((f"{t.name} {cell.key}", terms, value))
                else:
                    self.system.equal(terms, cell.value)
                    self.public.add((f"{t.name} {cell.key}", cell.value))

    def one_record_added(self, before: str, after: str) -> None:
        """The attacker knows the second snapshot is the first plus exactly one record."""
        diff: dict[int, float] = {}
        for key in self.keys:
            self.system.between({self.var(after, key): 1, self.var(before, key): -1}, 0, 1)
            diff[self.var(after, key)] = 1
            diff[self.var(before, key)] = -1
        self.system.equal(diff, 1)

    def breaches(
        self,
        extra: list[tuple[str, dict[int, float], int]] = (),  # type: ignore[assignment]
        *,
        large_may_be_pinned: bool = False,
    ) -> list[str]:
        """Every hidden or unpublished small count the attacker pins or narrows too far."""
        out = []
        unpublished = {label for label, _t, _v in extra}
        for label, terms, value in [*self.hidden, *extra]:
            low, high = interval(self.system, terms)
            assert low <= value <= high, (
                f"the attack model is wrong for {label}: {value} not in [{low}, {high}]"
            )
            if not 0 < value < PARAMS.threshold:
                # a hidden large cell (secondary) should stay hidden too, unless the very same
                # figure is public already (a table published again after a change)
                pinned = low == high and label not in unpublished and (label, value) not in self.public
                if pinned and not large_may_be_pinned:
                    out.append(f"{label}: pinned at {value}")
                continue  # an unpublished zero or large count could have been published anyway
            need = required_margin(value, PARAMS.protection)
            # a count nobody published need only be ambiguous around its value; a hidden cell
            # must also stay possibly larger by the margin, as τ-Argus's upper protection level asks
            short = label not in unpublished and high < value + need
            if low == high or short or high - low < 2 * need:
                out.append(f"{label}: {value} in [{low}, {high}]")
        return out


def q2_cells(attacker: Attacker, q2: dict[tuple[str, str], int]) -> list[tuple[str, dict[int, float], int]]:
    return [(f"Q2 {key}", {attacker.var("Q2", key): 1.0}, n) for key, n in q2.items() if n > 0]


def recount(cells: dict[tuple[str, str], int]) -> Callable[[Figure], int]:
    """What the release service gives the gate: the exact count now of an earlier figure."""

    def count(f: Figure) -> int:
        where = f.where
        return sum(
            n
            for key, n in cells.items()
            if all(dict(zip(("sex", "age_band"), key, strict=True))[d] == v for d, v in where.items())
        )

    return count


def primary_only(tables: list[CountTable]) -> ProtectedRelease:
    """The naive publisher: hide the small cells, publish everything else."""
    out = []
    for t in tables:
        cells = {}
        figures: dict[tuple[str, ...], int] = dict(t.cells)
        if len(t.dimensions) == 2:
            for axis in (0, 1):
                for v, n in t.margin(axis).items():
                    figures[(v, TOTAL) if axis == 0 else (TOTAL, v)] = n
        figures[(TOTAL,) * len(t.dimensions)] = t.total
        for key, n in figures.items():
            small = 0 < n < PARAMS.threshold
            cells[key] = PublishedCell(
                key, None if small else n, CellStatus.PRIMARY if small else CellStatus.PUBLISHED
            )
        out.append(ProtectedTable(t.name, t.metric, t.period, t.dimensions, cells))
    return ProtectedRelease(Method.SUPPRESSION, {}, out)


# -- the attack catches naive publishers ----------------------------------------------------------


def test_the_attack_recovers_cells_that_primary_suppression_alone_leaves() -> None:
    rng = random.Random(11)
    cells = random_cells(rng)
    attacker = Attacker(["H1"])
    attacker.read(primary_only([table("t", "2024-H1", cells)]), ["H1"], cells)
    assert attacker.hidden, "the naive release must hide something for the test to mean anything"
    assert attacker.breaches(), "the attack failed to see through primary-only suppression"


def test_the_attack_recovers_a_quarter_by_differencing_releases_made_blind() -> None:
    """τ-Argus on each release alone: H1 − Q1 gives Q2 cell by cell."""
    q1 = {key: 20 + i for i, key in enumerate(KEYS)}
    q2 = {key: 2 if key == ("female", "0-8") else 15 for key in KEYS}
    h1 = {key: q1[key] + q2[key] for key in KEYS}
    first = protect([table("q1", "2024-Q1", q1)], Method.SUPPRESSION, PARAMS)
    blind = protect([table("h1", "2024-H1", h1)], Method.SUPPRESSION, PARAMS)  # no earlier=
    attacker = Attacker(["Q1", "Q2"])
    attacker.read(first, ["Q1"], q1)
    attacker.read(blind, ["Q1", "Q2"], h1)
    assert any("('female', '0-8')" in b for b in attacker.breaches(q2_cells(attacker, q2)))


# -- the gate withstands it ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_no_hidden_cell_can_be_recovered_from_one_release(seed: int) -> None:
    rng = random.Random(seed)
    cells = random_cells(rng)
    tables = [
        table("both", "2024-H1", cells),
        one_way("sex", "2024-H1", cells, 0),
        one_way("age", "2024-H1", cells, 1),
    ]
    release = protect(tables, Method.SUPPRESSION, PARAMS)
    attacker = Attacker(["H1"])
    attacker.read(release, ["H1"], cells)
    assert any(c.status is CellStatus.PRIMARY for t in release.tables for c in t.cells.values())
    assert attacker.breaches() == []


@pytest.mark.parametrize("seed", range(3))
def test_q1_then_h1_reveals_no_quarter(seed: int) -> None:
    rng = random.Random(100 + seed)
    q1, q2 = random_cells(rng), random_cells(rng, small=0.5)
    q2[KEYS[seed % len(KEYS)]] = 2  # at least one small Q2 count hiding behind large Q1 and H1 counts
    q1[KEYS[seed % len(KEYS)]] = 25
    h1 = {key: q1[key] + q2[key] for key in KEYS}
    first = protect([table("q1", "2024-Q1", q1)], Method.SUPPRESSION, PARAMS)
    second = protect(
        [table("h1", "2024-H1", h1)], Method.SUPPRESSION, PARAMS, earlier=first.figures(), recount=recount(q1)
    )
    attacker = Attacker(["Q1", "Q2"])
    attacker.read(first, ["Q1"], q1)
    attacker.read(second, ["Q1", "Q2"], h1)
    assert attacker.breaches(q2_cells(attacker, q2)) == []


@pytest.mark.parametrize("seed", range(3))
def test_republishing_after_one_record_was_added_reveals_nothing(seed: int) -> None:
    rng = random.Random(200 + seed)
    before = random_cells(rng)
    after = dict(before)
    small = [k for k, n in before.items() if 0 < n < PARAMS.threshold]
    after[rng.choice(small)] += 1  # the new record falls in a hidden cell: the hardest case
    first = protect([table("t", "2024-H1", before)], Method.SUPPRESSION, PARAMS)
    again = protect(
        [table("t", "2024-H1", after)],
        Method.SUPPRESSION,
        PARAMS,
        earlier=first.figures(),
        recount=recount(after),
    )
    attacker = Attacker(["old", "new"])
    attacker.read(first, ["old"], before)
    attacker.read(again, ["new"], after)
    attacker.one_record_added("old", "new")
    # where the new record went shows in the changed margins, as it would in exact counts;
    # what must not show is any small count, old or new
    assert attacker.breaches(large_may_be_pinned=True) == []


# -- the whole path: registry, gate, storage, on the demo records -------------------------------------


@pytest.mark.postgres
def test_stored_releases_of_the_demo_records_withstand_the_attack(demo_engine: Engine) -> None:
    """Q1 then H1 through ``create_release``, attacked from what was stored."""
    from ctis.domain.periods import parse_period
    from ctis.metrics.report import cross_tab
    from ctis.publication import releases
    from ctis.security.permissions import SYSTEM

    with Session(demo_engine) as db:
        db.begin()
        truth = {
            p: cross_tab(db, parse_period(p), METRIC, ["sex", "age_band"]) for p in ("2024-Q1", "2024-H1")
        }
        keys = sorted(set(truth["2024-Q1"]) | set(truth["2024-H1"]))
        q1 = {k: truth["2024-Q1"].get(k, 0) for k in keys}
        h1 = {k: truth["2024-H1"].get(k, 0) for k in keys}
        q2 = {k: h1[k] - q1[k] for k in keys}
        assert any(0 < n < PARAMS.threshold for n in q2.values()), "the demo has small second-quarter cells"
        attacker = Attacker(["Q1", "Q2"], keys=[(a, b) for a, b in keys])
        for period, snapshots, exact in (("2024-Q1", ["Q1"], q1), ("2024-H1", ["Q1", "Q2"], h1)):
            asked = releases.ReleaseRequest([METRIC], [period], ["sex", "age_band", "sex:age_band"])
            release = releases.create_release(db, SYSTEM, asked)
            attacker.read(_as_published(releases.public_figures(db, release)), snapshots, exact)  # type: ignore[arg-type]
        db.rollback()
    assert attacker.hidden, "the demo's age bands have small cells: something must be hidden"
    assert attacker.breaches(q2_cells(attacker, q2)) == []


def _as_published(figures: list[Any]) -> ProtectedRelease:
    """Stored figures back in the gate's shape, keeping only what the public sees."""
    tables: dict[str, ProtectedTable] = {}
    for f in figures:
        t = tables.setdefault(f.table, ProtectedTable(f.table, f.metric, f.period, f.dimensions, {}))
        status = CellStatus.PUBLISHED if f.value is not None else CellStatus.SECONDARY
        t.cells[f.key] = PublishedCell(f.key, f.value, status)
    return ProtectedRelease(Method.SUPPRESSION, {}, list(tables.values()))
