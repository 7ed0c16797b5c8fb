"""Small-cell and complementary suppression: τ-Argus for each table, an exact audit across them.

τ-Argus (pytauargus) decides which cells to hide: the frequency rule marks
counts in ``1 .. threshold-1`` (margins included) as primary, and optimal
suppression (``OPT``, solved with HiGHS) chooses the cheapest set of further
cells so that no primary cell can be worked out from the table's totals.  It
sees one table at a time, so the gate then audits the whole release together
with every earlier release (:class:`~ctis.publication.inference.Knowledge`):
a hidden count, or a count implied by differencing periods (H1 − Q1), that is
left too narrow sends the published cells that pin it back to τ-Argus as
primary, and the tables are solved again.  A count hidden in an earlier
release stays hidden in whichever table shows it later, so that republishing
(after a correction, or in another shape) cannot reveal what was hidden.

The τ-Argus batch files hold exact counts; they are written to a private
temporary directory and removed as soon as the engine has run.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence

from ctis.domain.periods import parse_period
from ctis.publication.gate import (
    MAX_ROUNDS,
    TOTAL,
    CellStatus,
    Figure,
    Method,
    ProtectedRelease,
    ProtectedTable,
    PublishedCell,
    ReleaseRefused,
    SuppressionParams,
    margins_of,
    workdir,
)
from ctis.publication.inference import Knowledge, is_protected, required_margin
from ctis.publication.lp import System, feasible, interval
from ctis.publication.tables import CountTable

log = logging.getLogger(__name__)

_TAU_TOTAL = "Total"
#: Longest one table's suppression may take before the release fails
SOLVER_SECONDS = 120
Statuses = dict[str, dict[tuple[str, ...], CellStatus]]
#: per table, figures to hide and the protection level to ask of τ-Argus for each (0: its own rule)
Demands = dict[str, dict[tuple[str, ...], int]]


def suppress(
    tables: list[CountTable],
    params: SuppressionParams,
    earlier: Sequence[Figure],
    recount: Callable[[Figure], int | None] | None = None,
) -> ProtectedRelease:
    k = params.threshold
    for t in tables:
        if 0 < t.total < k:
            raise ReleaseRefused(
                f"table {t.name!r} ({t.metric}, {t.period}) has a total of fewer than {k}: "
                "every figure in it would be hidden; choose a longer period or fewer breakdowns"
            )
    # per table: figures to hide, each with the protection level τ-Argus must give it (0: its own)
    forced: Demands = {t.name: dict.fromkeys(_sticky(t, earlier), 0) for t in tables}
    solved: dict[str, tuple[frozenset[tuple[tuple[str, ...], int]], dict[tuple[str, ...], CellStatus]]] = {}
    exact = {t.name: margins_of(t) for t in tables}
    for _round in range(MAX_ROUNDS * 2):
        statuses: Statuses = {}
        for t in tables:
            key = frozenset(forced[t.name].items())
            if t.name not in solved or solved[t.name][0] != key:
                solved[t.name] = (key, _solve_table(t, params, forced[t.name]))
            statuses[t.name] = solved[t.name][1]
        more = _linked(tables, statuses)
        if not more:
            more, exposed = _audit(tables, statuses, earlier, params, recount, forced)
            if not exposed:
                return _release(tables, statuses, params)
        grew = False
        for name, demands in more.items():
            for key, level in demands.items():
                old = forced[name].get(key)
                if exact[name][key] <= 0 or (old is not None and level == 0):
                    continue
                want = max(level, old + 1) if old else level  # a level already asked for was not enough
                if want != old:
                    forced[name][key] = want
                    grew = True
        if not grew:
            break
    raise ReleaseRefused(
        "the release cannot be protected: with the earlier releases, some hidden counts would still be "
        "recoverable; publish fewer overlapping periods or breakdowns"
    )


def _identity(t: CountTable, key: tuple[str, ...]) -> tuple[str, str, frozenset[tuple[str, str]]]:
    """What a figure counts, whichever table it is in: a sex table's "female" is a sex × age margin."""
    where = frozenset((d, v) for d, v in zip(t.dimensions, key, strict=True) if v != TOTAL)
    return t.metric, t.period, where


def _linked(tables: list[CountTable], statuses: Statuses) -> Demands:
    """Figures hidden in one table but published in another that shows the same count.

    Tables of one metric and period share figures (a one-way table is a margin
    of the cross-table); τ-Argus solves them one at a time, so a figure it hid in
    one is hidden in the others too and those are solved again.
    """
    hidden = {
        _identity(t, key)
        for t in tables
        for key, st in statuses[t.name].items()
        if st in (CellStatus.PRIMARY, CellStatus.SECONDARY)
    }
    more: Demands = {}
    for t in tables:
        for key, st in statuses[t.name].items():
            if st is CellStatus.PUBLISHED and _identity(t, key) in hidden:
                more.setdefault(t.name, {})[key] = 0
    return more


def _sticky(t: CountTable, earlier: Sequence[Figure]) -> set[tuple[str, ...]]:
    """Counts an earlier release hid stay hidden wherever this table shows them.

    The same count may sit in another table shape (a one-way table's cell is a
    cross-table's margin), so the match is on what is counted, not on the table.
    """
    period = parse_period(t.period)
    hidden = {
        frozenset(f.where.items())
        for f in earlier
        if f.value is None and f.metric == t.metric and (f.start, f.end) == (period.start, period.end)
    }
    return {
        key
        for key in margins_of(t)
        if frozenset((d, v) for d, v in zip(t.dimensions, key, strict=True) if v != TOTAL) in hidden
    }


def _solve_table(
    t: CountTable, params: SuppressionParams, forced: dict[tuple[str, ...], int]
) -> dict[tuple[str, ...], CellStatus]:
    """The status of every figure of ``t`` (cells, margins, total) after τ-Argus."""
    figures = margins_of(t)
    k = params.threshold
    status = {key: CellStatus.PRIMARY if 0 < n < k else CellStatus.PUBLISHED for key, n in figures.items()}
    if not t.dimensions or (not any(status[key] is CellStatus.PRIMARY for key in figures) and not forced):
        return status
    hidden = _tau_argus(t, params, forced)  # a non-additive grand total follows the sum's fate
    for key, n in figures.items():
        if key in hidden and n > 0:
            status[key] = CellStatus.PRIMARY if n < k else CellStatus.SECONDARY
    return status


def _tau_argus(
    t: CountTable, params: SuppressionParams, forced: dict[tuple[str, ...], int]
) -> set[tuple[str, ...]]:
    """Run τ-Argus's frequency rule and optimal suppression on one table; the keys it hides."""
    from pytauargus.arb import micro_arb
    from pytauargus.micro import micro_asc_rda
    from pytauargus.result import TableResult

    names = [f"v{i}" for i in range(len(t.dimensions))]
    columns: dict[str, list[object]] = {n: [] for n in [*names, "n"]}
    codes: list[dict[str, str]] = [{} for _ in names]
    for key, count in t.cells.items():
        if count <= 0:
            continue
        for i, value in enumerate(key):
            code = codes[i].setdefault(value, f"c{len(codes[i])}")  # τ-Argus codes: short, no separators
            columns[names[i]].extend([code] * count)
        columns["n"].extend([1] * count)
    back = [{code: value for value, code in c.items()} | {_TAU_TOTAL: TOTAL} for c in codes]
    wd = workdir()
    try:
        asc, rda, arb, out = (str(wd / f) for f in ("m.asc", "m.rda", "b.arb", "t.tab"))
        micro_asc_rda(columns, asc_filename=asc, rda_filename=rda)
        apriori = None
        lines, levels = [], []
        for key, level in sorted(forced.items()):
            if all(v == TOTAL or v in codes[i] for i, v in enumerate(key)):
                cell = ";".join(_TAU_TOTAL if v == TOTAL else codes[i][v] for i, v in enumerate(key))
                lines.append(f"{cell};u\n")
                if level > 0:
                    levels.append(f"{cell};PL;{level};{level}\n")
        if lines:
            (wd / "a.hst").write_text("".join(lines + levels), encoding="ascii")
            apriori = {"hst": [str(wd / "a.hst")], "sep": ";", "ignore_err": 0, "exp_triv": 0}
        micro_arb(
            arb_filename=arb,
            asc_filename=asc,
            rda_filename=rda,
            explanatory_vars=[names],
            response_var="n",
            safety_rules=f"FREQ({params.threshold},{params.protection})",
            suppress="OPT(1)",
            output_names=[out],
            output_type="5",
            output_options="SO+",
            apriori=apriori,
        )
        # The native solver writes its logs and LP files into the working directory, and those
        # hold exact counts: run the batch in a child process inside the private directory.
        done = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
            [
                sys.executable,
                "-c",
                "import sys; from pytauargus.engine import run_batch; run_batch(sys.argv[1])",
                arb,
            ],
            cwd=wd,
            capture_output=True,
            text=True,
            timeout=SOLVER_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"τ-Argus failed: {tail[0]}")
        result = TableResult(path=out, exp_vars=names, response="n", is_freq=False)
        hidden = set()
        for row in result.rows:
            if str(row["status"]).upper() in ("U", "M"):
                hidden.add(tuple(back[i][str(row[n]).strip()] for i, n in enumerate(names)))
        return hidden
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def _figures(tables: list[CountTable], statuses: Statuses) -> list[Figure]:
    out = []
    for t in tables:
        p = parse_period(t.period)
        for key, n in margins_of(t).items():
            hidden = statuses[t.name][key] in (CellStatus.PRIMARY, CellStatus.SECONDARY)
            out.append(Figure(t.metric, p.start, p.end, t.dimensions, key, None if hidden else n))
    return out


def _exposed(low: int, high: float, params: SuppressionParams) -> bool:
    """Whether a count whose exact value the gate does not know may be a small one left too narrow."""
    if low >= params.threshold or high == 0:
        return False
    # the count may be any small value in the range: ask for the margin of the largest of them
    need = required_margin(int(min(high, params.threshold - 1)), params.protection)
    return not (math.isinf(high) or high - low >= 2 * need)


def _shortfall(value: int, low: int, high: float, params: SuppressionParams, *, known: bool = True) -> int:
    """How much wider a hidden small count's interval must grow (0: wide enough).

    With ``known`` False the value is the caller's best estimate (a count now,
    for a figure of an earlier release) and the interval need not contain it.
    """
    if not 0 < value < params.threshold:
        return 0  # a zero or a large count could have been published: pinning it reveals nothing small
    if known and is_protected(value, low, high, params.protection):
        return 0
    need = required_margin(value, params.protection)
    top = int(min(high, 10**9))
    gap = max(value + need - top, 2 * need - (top - low))  # short above it, or too narrow
    return max(1, gap) if known else max(0, gap)


def _audit(
    tables: list[CountTable],
    statuses: Statuses,
    earlier: Sequence[Figure],
    params: SuppressionParams,
    recount: Callable[[Figure], int | None] | None = None,
    forced: Demands | None = None,
) -> tuple[Demands, int]:
    """Figures to hide or protect further, per table, and how many counts were found exposed."""
    forced = forced or {}
    new = _figures(tables, statuses)
    now = {}
    for t in tables:
        p = parse_period(t.period)
        for key, n in margins_of(t).items():
            now[(t.metric, p.start, p.end, t.dimensions, key)] = n
    # An earlier figure of a table published again stays public whatever this release does:
    # keep it, unless the records changed under it (then the versions are compared in _twins).
    older = [
        f
        for f in earlier
        if f.value is None or now.get((f.metric, f.start, f.end, f.dimensions, f.key), f.value) == f.value
    ]
    knowledge = Knowledge([*new, *older])
    if not feasible(knowledge.system):
        # earlier releases were computed on records that have changed since:
        # audit this release alone (the hidden figures of the same tables stay hidden)
        log.info("earlier releases disagree with the records now; auditing the release on its own")
        knowledge = Knowledge(new)
    knowledge.enough = params.threshold
    more: Demands = {}
    exposed = 0
    exact = {t.name: margins_of(t) for t in tables}

    def protect_more(name: str, key: tuple[str, ...], value: int, short: int) -> None:
        level = max(forced.get(name, {}).get(key, 0), required_margin(value, params.protection)) + short
        more.setdefault(name, {})[key] = max(level, more.get(name, {}).get(key, 0))

    for t in tables:
        p = parse_period(t.period)
        for key, st in statuses[t.name].items():
            if st is not CellStatus.PRIMARY:
                continue
            low, high = knowledge.interval(Figure(t.metric, p.start, p.end, t.dimensions, key, None))
            value = exact[t.name][key]
            short = _shortfall(value, low, high, params)
            if short:
                exposed += 1
                _blame(t, key, statuses, more)
                protect_more(t.name, key, value, short)  # and ask τ-Argus for more room around it
    for f in older:
        if f.value is None:
            low, high = knowledge.interval(f)
            value = recount(f) if recount is not None else None
            bad = _exposed(low, high, params) if value is None else _shortfall(value, low, high, params) > 0
            if bad:
                exposed += 1
                for name, key in _cover(f, tables, statuses, more):
                    protect_more(name, key, exact[name][key], 1)
    for f in _derived(knowledge, tables, older):
        if knowledge.lowest(f) >= params.threshold:
            continue  # any value it can take could be published anyway
        low, high = knowledge.interval(f)
        if _exposed(low, high, params):
            exposed += 1
            for name, key in _cover(f, tables, statuses, more):
                protect_more(name, key, exact[name][key], 1)
    for name, key, value, short in _twins(tables, statuses, earlier, params, recount):
        exposed += 1
        protect_more(name, key, value, short)
    return more, exposed


def _twins(
    tables: list[CountTable],
    statuses: Statuses,
    earlier: Sequence[Figure],
    params: SuppressionParams,
    recount: Callable[[Figure], int | None] | None,
) -> list[tuple[str, tuple[str, ...], int, int]]:
    """A table published again after records were added: audit the two versions side by side.

    An attacker who assumes records were only added (each cell grew by 0 or
    more, by the growth of the total in all) combines the two versions; hidden
    small cells of either must survive that.  Returns (table, key, value,
    shortfall) for each hidden cell of the new table that needs more protection.
    """
    out = []
    for t in tables:
        p = parse_period(t.period)
        twin = [
            f
            for f in earlier
            if (f.metric, f.start, f.end, f.dimensions) == (t.metric, p.start, p.end, t.dimensions)
        ]
        figures = margins_of(t)
        grand = (TOTAL,) * len(t.dimensions)
        old_total = next((f.value for f in twin if f.key == grand), None)
        if not twin or not t.dimensions or old_total is None or t.total < old_total:
            continue
        growth = t.total - old_total
        keys = list(t.cells)
        system = System(2 * len(keys))

        def terms(key: tuple[str, ...], offset: int, keys: list[tuple[str, ...]] = keys) -> dict[int, float]:
            return {
                offset + i: 1.0
                for i, cell in enumerate(keys)
                if all(v in (TOTAL, c) for v, c in zip(key, cell, strict=True))
            }

        alone = System(len(keys))  # what the earlier version told by itself
        for f in twin:
            for sys_ in (system, alone):
                if f.value is None:
                    sys_.between(terms(f.key, 0), 1, math.inf)
                else:
                    sys_.equal(terms(f.key, 0), f.value)
        for key, st in statuses[t.name].items():
            if st in (CellStatus.PRIMARY, CellStatus.SECONDARY):
                system.between(terms(key, len(keys)), 1, math.inf)
            else:
                system.equal(terms(key, len(keys)), figures[key])
        for i in range(len(keys)):
            system.between({len(keys) + i: 1.0, i: -1.0}, 0, growth)
        system.equal(
            {**{len(keys) + i: 1.0 for i in range(len(keys))}, **{i: -1.0 for i in range(len(keys))}}, growth
        )
        if not feasible(system):
            continue  # records were corrected, not only added: the sticky hidden figures are what holds
        for key, st in statuses[t.name].items():
            if st not in (CellStatus.PRIMARY, CellStatus.SECONDARY):
                continue
            value = figures[key]
            if not 0 < value < params.threshold:
                continue  # a large hidden cell pinned tells where records were added, as exact counts would
            for offset, known in ((len(keys), True), (0, False)):  # the new version, then the old
                low, high = interval(system, terms(key, offset))
                short = _shortfall(value, low, high, params, known=known)
                if short and not known and (low, high) == interval(alone, terms(key, 0)):
                    short = 0  # the earlier release alone said as much: this one adds nothing
                if short:
                    out.append((t.name, key, value, short))
                    break
    return out


def _derived(knowledge: Knowledge, tables: list[CountTable], older: Sequence[Figure]) -> list[Figure]:
    """Figures nobody published but differencing periods gives: each table's figures per segment."""
    published = {(f.metric, f.start, f.end) for f in knowledge.figures}
    out = []
    for t in tables:
        p = parse_period(t.period)
        for start, end in knowledge.segments(t.metric):
            if (t.metric, start, end) in published or not (p.start <= start and end <= p.end):
                continue
            for key, n in margins_of(t).items():
                if n > 0:  # nobody in the longer period: nobody in the segment either
                    out.append(Figure(t.metric, start, end, t.dimensions, key, None))
    return out


def _cover(
    f: Figure,
    tables: list[CountTable],
    statuses: Statuses,
    more: Demands,
) -> list[tuple[str, tuple[str, ...]]]:
    """Hide in this release the published figures counting what ``f`` counts, over a longer period.

    Returns the ones already hidden: those need more protection instead.
    """
    where = f.where
    hidden = []
    for t in tables:
        p = parse_period(t.period)
        if t.metric != f.metric or not (p.start <= f.start and f.end <= p.end):
            continue
        for key, st in statuses[t.name].items():
            mine = {d: v for d, v in zip(t.dimensions, key, strict=True) if v != TOTAL}
            if mine != where:
                continue
            if st is CellStatus.PUBLISHED:
                more.setdefault(t.name, {})[key] = 0
            else:
                hidden.append((t.name, key))
    return hidden


def _blame(
    t: CountTable,
    key: tuple[str, ...],
    statuses: Statuses,
    more: Demands,
) -> None:
    """A primary cell left too narrow by the other tables: hide the margins on its row and column."""
    if len(key) < 2 or TOTAL in key:
        return
    for k2 in ((key[0], TOTAL), (TOTAL, key[1])):
        if statuses[t.name].get(k2) is CellStatus.PUBLISHED:
            more.setdefault(t.name, {})[k2] = 0


def _release(
    tables: list[CountTable],
    statuses: Statuses,
    params: SuppressionParams,
) -> ProtectedRelease:
    out = []
    for t in tables:
        cells = {}
        for key, n in margins_of(t).items():
            st = statuses[t.name][key]
            cells[key] = PublishedCell(key, n if st is CellStatus.PUBLISHED else None, st)
        out.append(
            ProtectedTable(t.name, t.metric, t.period, t.dimensions, cells, t.title, t.unit, list(t.notes))
        )
    return ProtectedRelease(Method.SUPPRESSION, params.as_dict(), out)
