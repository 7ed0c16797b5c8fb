"""Writing standard exports to CSV and XLSX, always with their notes.

A figure read without its definition, its protection and the values that did
not map is a figure misread, so the notes travel with the data: a ``notes``
sheet (the first one) in a workbook, a ``.notes.csv`` file beside a CSV.  An
exact export says so in the notes and, for tables, on every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctis.exports.ctdc import CtdcExport, codebook
from ctis.exports.release import TableExport, keys_of, label_of
from ctis.io.files import write_csv, write_xlsx
from ctis.metrics.registry import METRICS
from ctis.publication.gate import TOTAL, ProtectedTable

NOTES_HEADER = ["section", "item", "detail", "count"]
HIDDEN = "x"
LONG_HEADER = [
    "table",
    "metric",
    "dimension_1",
    "value_1",
    "dimension_2",
    "value_2",
    "count",
    "status",
    "mode",
]


def sidecar(path: Path) -> Path:
    """``ctdc.csv`` -> ``ctdc.notes.csv``."""
    return path.with_name(path.stem + ".notes.csv")


def _common_notes(layout: str, period: Any, protection: str, unmapped: list[Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [
        ["protection", "mode", protection, ""],
        ["export", "layout", layout, ""],
        ["export", "period", f"{period.label} ({period.start} to {period.end})", ""],
    ]
    if not unmapped:
        rows.append(["unmapped", "-", "every source value had a mapping", 0])
    for u in unmapped:
        rows.append(["unmapped", f"{u.field}={u.value}", u.action, u.count])
    return rows


def ctdc_notes(result: CtdcExport) -> list[list[Any]]:
    rows = _common_notes(
        "CTDC global synthetic dataset layout, codebook 2024 (27 variables)",
        result.period,
        result.protection(),
        result.unmapped,
    )
    rows.append(
        [
            "export",
            "rows",
            "victim records in the period (registry metric victims_rescued)",
            result.source_rows,
        ]
    )
    rows.append(["export", "rows written", "after protection", len(result.rows)])
    for column, n in result.generalised.items():
        rows.append(["protection", f"blanked {column}", "values blanked to reach k-anonymity", n])
    for v in codebook():
        rows.append(["variable", v.name, v.source, ""])
    return rows


def table_notes(result: TableExport) -> list[list[Any]]:
    rows = _common_notes(
        f"{result.layout.upper()} tables", result.period, result.protection(), result.unmapped
    )
    if not result.exact:
        rows.append(["protection", "hidden", f"'{HIDDEN}' marks a figure the release gate hides", ""])
    for name, reason in result.gated.withheld:
        rows.append(["withheld", name, reason, ""])
    for spec in result.specs:
        metric = METRICS[spec.metric]
        rows.append(["table", spec.name, f"{spec.title}. Metric {metric.key}: {metric.definition}", ""])
    return rows


def write_ctdc(result: CtdcExport, path: Path, fmt: str) -> list[Path]:
    """The CTDC rows and their notes; returns the files written."""
    header = list(result.columns)
    if fmt == "xlsx":
        write_xlsx(path, {"notes": (NOTES_HEADER, ctdc_notes(result)), "ctdc": (header, result.rows)})
        return [path]
    with path.open("w", encoding="utf-8", newline="") as fh:
        write_csv(fh, header, result.rows)
    with sidecar(path).open("w", encoding="utf-8", newline="") as fh:
        write_csv(fh, NOTES_HEADER, ctdc_notes(result))
    return [path, sidecar(path)]


def _ordered(table: ProtectedTable, axis: int) -> list[str]:
    seen = [k[axis] for k in table.cells if k[axis] != TOTAL]
    known = keys_of(table.dimensions[axis])
    return [k for k in known if k in seen] + [k for k in dict.fromkeys(seen) if k not in known]


def _shown(table: ProtectedTable, key: tuple[str, ...]) -> Any:
    cell = table.cells.get(key)
    if cell is None:
        return ""
    return HIDDEN if cell.value is None else cell.value


def wide_rows(table: ProtectedTable) -> tuple[list[str], list[list[Any]]]:
    """A table as a reader expects it: one row per value of the first breakdown, totals last."""
    dims = table.dimensions
    if not dims:
        return ["total"], [[_shown(table, ())]]
    rows_keys = _ordered(table, 0)
    if len(dims) == 1:
        body = [[label_of(dims[0], r), _shown(table, (r,))] for r in rows_keys]
        return [dims[0], "count"], [*body, ["Total", _shown(table, (TOTAL,))]]
    col_keys = _ordered(table, 1)
    header = [f"{dims[0]} / {dims[1]}", *(label_of(dims[1], c) for c in col_keys), "Total"]
    body = [
        [label_of(dims[0], r), *(_shown(table, (r, c)) for c in col_keys), _shown(table, (r, TOTAL))]
        for r in rows_keys
    ]
    last = ["Total", *(_shown(table, (TOTAL, c)) for c in col_keys), _shown(table, (TOTAL, TOTAL))]
    return header, [*body, last]


def long_rows(result: TableExport) -> list[list[Any]]:
    mode = "EXACT - not for publication" if result.exact else "protected"
    out: list[list[Any]] = []
    for t in result.tables:
        for key, cell in t.cells.items():
            d1, v1 = (t.dimensions[0], key[0]) if t.dimensions else ("", "")
            d2, v2 = (t.dimensions[1], key[1]) if len(t.dimensions) > 1 else ("", "")
            value = "" if cell.value is None else cell.value
            out.append([t.name, t.metric, d1, v1, d2, v2, value, cell.status.value, mode])
    return out


def write_tables(result: TableExport, path: Path, fmt: str) -> list[Path]:
    """The published tables and their notes; returns the files written."""
    if fmt == "xlsx":
        sheets: dict[str, tuple[list[str], list[Any]]] = {"notes": (NOTES_HEADER, table_notes(result))}
        for t in result.tables:
            sheets[t.name] = wide_rows(t)
        write_xlsx(path, sheets)
        return [path]
    with path.open("w", encoding="utf-8", newline="") as fh:
        write_csv(fh, LONG_HEADER, long_rows(result))
    with sidecar(path).open("w", encoding="utf-8", newline="") as fh:
        write_csv(fh, NOTES_HEADER, table_notes(result))
    return [path, sidecar(path)]
