"""Rendering reports for the terminal and for files (table, JSON, CSV, XLSX)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ctis.domain.values import country_label, value_set
from ctis.io.files import write_csv, write_xlsx
from ctis.metrics import METRICS, Report


def value_label(dimension: str, code: str, agencies: dict[str, str], lang: str = "en") -> str:
    if code == "unknown":
        return "Unknown" if lang == "en" else "មិនដឹង"
    if dimension == "agency":
        return agencies.get(code, code)
    if dimension == "nationality":
        return f"{country_label(code, lang)} ({code})"
    if dimension == "age_band":
        return code
    return value_set(dimension).label(code, lang)


def long_rows(report: Report, agencies: dict[str, str]) -> list[dict[str, Any]]:
    """Report as rows of (metric, dimension, value, label, count): the CSV layout."""
    rows: list[dict[str, Any]] = []
    for key, total in report.metrics.items():
        rows.append({"metric": key, "dimension": "total", "value": "", "label": "", "count": total})
    for dim, per_metric in report.by.items():
        for key, counts in per_metric.items():
            for code, n in counts.items():
                rows.append(
                    {"metric": key, "dimension": dim, "value": code,
                     "label": value_label(dim, code, agencies), "count": n}
                )  # fmt: skip
    return rows


LONG_HEADER = ["period", "metric", "dimension", "value", "label", "count"]


def render_table(report: Report, agencies: dict[str, str], console: Console, lang: str = "en") -> None:
    p = report.period
    table = Table(title=f"CTIS report {p.label} ({p.start} – {p.end})", title_justify="left")
    table.add_column("Metric")
    table.add_column("Key", style="dim")
    table.add_column("Count", justify="right")
    for key, total in report.metrics.items():
        table.add_row(METRICS[key].label(lang), key, f"{total:,}")
    console.print(table)
    for dim, per_metric in report.by.items():
        codes = sorted({c for counts in per_metric.values() for c in counts})
        t = Table(title=f"by {dim}", title_justify="left")
        t.add_column("Metric")
        for code in codes:
            t.add_column(value_label(dim, code, agencies, lang), justify="right")
        for key, counts in per_metric.items():
            t.add_row(METRICS[key].label(lang), *[str(counts.get(c, 0)) for c in codes])
        console.print(t)
    console.print(
        f"[dim]Counts are of {'persons' if report.deduplicated else 'records'}; "
        "definitions: ctis metrics; records behind a figure: ctis drill METRIC --period P[/dim]"
    )


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2)


def render_csv(report: Report, agencies: dict[str, str]) -> str:
    out = io.StringIO()
    rows = [{"period": report.period.label, **r} for r in long_rows(report, agencies)]
    write_csv(out, LONG_HEADER, rows)
    return out.getvalue()


def render_xlsx(report: Report, agencies: dict[str, str], path: Path) -> None:
    summary = [
        {"metric": k, "label_en": METRICS[k].label_en, "label_km": METRICS[k].label_km, "count": v}
        for k, v in report.metrics.items()
    ]
    rows = [{"period": report.period.label, **r} for r in long_rows(report, agencies)]
    write_xlsx(
        path,
        {
            report.period.label: (["metric", "label_en", "label_km", "count"], summary),
            "breakdowns": (LONG_HEADER, rows),
            "definitions": (
                ["metric", "definition"],
                [{"metric": k, "definition": METRICS[k].definition} for k in report.metrics],
            ),
        },
    )
