"""Linear and integer programmes through the HiGHS solver that ships with pytauargus.

The release gate and its attack test both need one question answered: given
every number a release (and the releases before it) made public, what is the
smallest and the largest value a hidden cell can still take?  That is a pair of
integer programmes.  No Python LP package is installed, but the τ-Argus wheel
bundles the open HiGHS solver as a shared library; its small, stable C API is
called here through :mod:`ctypes` rather than adding a dependency.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

#: HiGHS model status codes (``HighsModelStatus``) the callers care about.
OPTIMAL = 7
INFEASIBLE = 8
UNBOUNDED_OR_INFEASIBLE = 9
UNBOUNDED = 10

_INF = 1e30  # HiGHS's default infinity is 1e20 and larger values are clamped to it
_lock = threading.Lock()  # one solve at a time: the library keeps some global state


class SolverUnavailable(RuntimeError):
    """The HiGHS library bundled with pytauargus could not be loaded."""


@cache
def _library() -> ctypes.CDLL:
    import pytauargus

    libs = Path(pytauargus.__file__).resolve().parent.parent / "pytauargus.libs"
    found = sorted(libs.glob("libhighs*.so*")) + sorted(libs.glob("libhighs*.dylib"))
    if not found:
        raise SolverUnavailable(f"no HiGHS library under {libs}")
    lib = ctypes.CDLL(str(found[0]))
    lib.Highs_create.restype = ctypes.c_void_p
    lib.Highs_destroy.argtypes = [ctypes.c_void_p]
    lib.Highs_setBoolOptionValue.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.Highs_run.argtypes = [ctypes.c_void_p]
    lib.Highs_getModelStatus.argtypes = [ctypes.c_void_p]
    lib.Highs_getObjectiveValue.argtypes = [ctypes.c_void_p]
    lib.Highs_getObjectiveValue.restype = ctypes.c_double
    dbl, i32 = ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_int)
    lib.Highs_passMip.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_double,
        dbl,
        dbl,
        dbl,
        dbl,
        dbl,
        i32,
        i32,
        dbl,
        i32,
    ]
    return lib


@dataclass
class System:
    """``lower[j] <= sum(coef * x) <= upper[j]`` rows over non-negative integer columns."""

    columns: int
    rows: list[tuple[dict[int, float], float, float]] = field(default_factory=list)

    def equal(self, terms: dict[int, float], value: float) -> None:
        self.rows.append((terms, value, value))

    def between(self, terms: dict[int, float], low: float, high: float) -> None:
        self.rows.append((terms, low, high))


def _optimise(system: System, objective: dict[int, float], sense: int, integer: bool) -> float | None:
    """The optimum of ``objective`` (sense 1 = minimise, -1 = maximise); None if unbounded."""
    lib = _library()
    n, m = system.columns, len(system.rows)
    starts, index, values = [], [], []
    for terms, _low, _high in system.rows:  # row-wise matrix (a_format 2)
        starts.append(len(index))
        for col, coef in terms.items():
            index.append(col)
            values.append(coef)
    dbl = ctypes.c_double

    def arr(kind: type, items: Sequence[float]) -> ctypes.Array:  # type: ignore[type-arg]
        return (kind * max(1, len(items)))(*items)

    cost = arr(dbl, [objective.get(j, 0.0) for j in range(n)])
    col_low, col_up = arr(dbl, [0.0] * n), arr(dbl, [_INF] * n)
    row_low = arr(dbl, [r[1] for r in system.rows])
    row_up = arr(dbl, [r[2] for r in system.rows])
    integrality = arr(ctypes.c_int, [1 if integer else 0] * n)
    with _lock:
        highs = lib.Highs_create()
        try:
            lib.Highs_setBoolOptionValue(highs, b"output_flag", 0)
            lib.Highs_passMip(
                highs,
                n,
                m,
                len(index),
                2,
                sense,
                0.0,
                cost,
                col_low,
                col_up,
                row_low,
                row_up,
                arr(ctypes.c_int, starts),
                arr(ctypes.c_int, index),
                arr(dbl, values),
                integrality,
            )
            lib.Highs_run(highs)
            status = lib.Highs_getModelStatus(highs)
            if status in (UNBOUNDED, UNBOUNDED_OR_INFEASIBLE):
                return None
            if status != OPTIMAL:
                raise ValueError(f"the published figures are inconsistent (HiGHS status {status})")
            return float(lib.Highs_getObjectiveValue(highs))
        finally:
            lib.Highs_destroy(highs)


def feasible(system: System) -> bool:
    """Whether any non-negative whole numbers satisfy every row of ``system``."""
    try:
        _optimise(system, {}, 1, True)
    except ValueError:
        return False
    return True


def lowest(system: System, quantity: dict[int, float], *, integer: bool = True) -> int:
    """The smallest value ``quantity`` can take under ``system`` (whole-number columns by default)."""
    low = _optimise(system, quantity, 1, integer)
    return 0 if low is None else math.ceil(low - 1e-6)


def interval(system: System, quantity: dict[int, float], *, integer: bool = True) -> tuple[int, float]:
    """The smallest and largest value ``quantity`` can take under ``system``.

    With ``integer`` (the default) the columns are whole numbers, as counts are,
    so the interval is the exact one an attacker with an integer solver gets.
    The upper end is ``math.inf`` when nothing published bounds it.
    """
    low = _optimise(system, quantity, 1, integer)
    high = _optimise(system, quantity, -1, integer)
    lo = 0 if low is None else math.ceil(low - 1e-6)
    hi = math.inf if high is None or high >= _INF / 10 else math.floor(high + 1e-6)
    return lo, hi
