"""What ``ctis standard`` does, apart from parsing its options.

Kept beside the exports so that the Typer command in ``ctis.cli.main`` stays a
few lines and a web route can later call :func:`run_export` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ctis.domain.periods import report_period
from ctis.exports.ctdc import CtdcExport, export_ctdc
from ctis.exports.glotip import export_glotip
from ctis.exports.mapping import Unmapped
from ctis.exports.output import write_ctdc, write_tables
from ctis.exports.release import TableExport
from ctis.exports.tip import export_tip
from ctis.publication.gate import DpParams, Method, ReleaseRefused, SuppressionParams
from ctis.security.permissions import Actor, Forbidden
from ctis.storage.db import session_scope


class ExportError(Exception):
    """A problem the person running the export can fix; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class Outcome:
    result: CtdcExport | TableExport
    files: list[Path]

    @property
    def unmapped(self) -> list[Unmapped]:
        return self.result.unmapped


def cli_actor(engine: Engine, username: str | None, operator: str) -> Actor:
    """The account named by ``--user``, or else the machine's operator, who holds the database anyway."""
    if username is None:
        return Actor(id=0, username=operator, role="administrator", agency_id=None, scope="all")
    from ctis.accounts import actor_of
    from ctis.storage.models import User

    with Session(engine) as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.is_active:
            raise ExportError(f"no active account {username!r}", 2)
        return actor_of(user)


def default_path(layout: str, period_label: str, fmt: str, exact: bool) -> Path:
    stem = f"ctis-{layout}-{period_label.replace('..', '_')}" + ("-EXACT" if exact else "")
    return Path(f"{stem}.{fmt}")


def run_export(
    engine: Engine,
    actor: Actor,
    layout: str,
    period_text: str,
    *,
    fmt: str = "csv",
    out: Path | None = None,
    threshold: int = 10,
    exact: bool = False,
    method: str = "suppression",
    epsilon: float = 1.0,
) -> Outcome:
    """Compute, protect, audit and write one standard export; nothing is written if any step fails.

    ``method`` ``dp`` gives every table cell discrete Laplace noise and charges ``epsilon`` to the
    privacy-budget ledger (TIP and GLOTIP only: CTDC rows are records, which noise cannot protect).
    """
    try:
        period = report_period(period_text)
        if method not in {m.value for m in Method}:
            raise ValueError(f"unknown method {method!r}; one of: suppression, dp")
        gate_method = Method(method)
        params: SuppressionParams | DpParams = (
            DpParams(epsilon=epsilon) if gate_method is Method.DP else SuppressionParams(threshold=threshold)
        )
        if gate_method is Method.DP and layout == "ctdc":
            raise ValueError("the CTDC layout is one row per victim: it takes --method suppression only")
        if gate_method is Method.DP and exact:
            raise ValueError("--exact and --method dp exclude each other")
    except ValueError as exc:
        raise ExportError(str(exc), 2) from None
    target = out or default_path(layout, period.label, fmt, exact)
    try:
        with session_scope(engine) as session:
            result: CtdcExport | TableExport
            if layout == "ctdc":
                result = export_ctdc(session, actor, period, exact=exact, k=threshold)
            elif layout in {"tip", "glotip"}:
                export = export_tip if layout == "tip" else export_glotip
                result = export(session, actor, period, exact=exact, method=gate_method, params=params)
            else:
                raise ExportError(f"unknown layout {layout!r}; one of: ctdc, tip, glotip", 2)
            # written inside the transaction: if the file cannot be written, the audit entry goes too
            if isinstance(result, CtdcExport):
                files = write_ctdc(result, target, fmt)
            else:
                files = write_tables(result, target, fmt)
    except Forbidden as exc:
        raise ExportError(str(exc), 1) from None
    except ReleaseRefused as exc:
        raise ExportError(f"the release gate refused: {exc.reason}", 1) from None
    except ValueError as exc:
        raise ExportError(str(exc), 2) from None
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}", 1) from None
    return Outcome(result, files)


def print_summary(outcome: Outcome, console: Console, err: Console) -> None:
    """What was written, how it was protected, and a warning for every unmapped value."""
    result = outcome.result
    if isinstance(result, CtdcExport):
        table = Table(title=f"CTDC export {result.period.label}", title_justify="left")
        table.add_column("Item")
        table.add_column("Value", justify="right")
        table.add_row("victim records in the period", str(result.source_rows))
        table.add_row("rows written", str(len(result.rows)))
        table.add_row("rows dropped (k-anonymity)", str(result.dropped))
        for column, n in result.generalised.items():
            table.add_row(f"values blanked: {column}", str(n))
    else:
        table = Table(title=f"{result.layout.upper()} tables {result.period.label}", title_justify="left")
        for col in ("Table", "Total", "Hidden cells"):
            table.add_column(col, justify="left" if col == "Table" else "right")
        for t in result.tables:
            total = t.total.value
            hidden = sum(1 for c in t.cells.values() if c.value is None)
            table.add_row(t.name, "x" if total is None else str(total), str(hidden))
        for name, reason in result.gated.withheld:
            table.add_row(name, "—", reason)
    console.print(table)
    console.print(f"Protection: {result.protection()}", highlight=False)
    if result.release is not None:
        console.print(f"Recorded as release {result.release} (ctis publish --list).", highlight=False)
    for path in outcome.files:
        err.print(f"Wrote {path}")
    if outcome.unmapped:
        warn = Table("Field", "Source value", "Count", "What was done", title="Values with no mapping")
        for u in outcome.unmapped:
            warn.add_row(u.field, u.value, str(u.count), u.action)
        err.print("[bold yellow]warning:[/bold yellow] some source values have no mapping in this layout")
        err.print(warn)
