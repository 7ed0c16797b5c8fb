"""``ctis`` — the command line.

Each command parses its arguments, calls a service and prints; none of them
computes a figure or writes a row itself.  Errors a user can fix (a bad period,
an invalid file) print a message and exit with status 1 or 2, never a traceback.
"""

from __future__ import annotations

import getpass
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from ctis import services
from ctis.cli import render
from ctis.domain.periods import report_period
from ctis.domain.records import SCHEMAS, columns
from ctis.io.files import FileFormatError, write_csv, write_xlsx
from ctis.io.importer import ImportFailed, import_file
from ctis.metrics import METRICS, compute_report, drill_down

app = typer.Typer(
    name="ctis",
    help="CTIS — Counter-Trafficking Information System.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
#: Messages on standard error keep their lines whatever the terminal's width (soft wrap), so that a
#: long path cannot break "no such file" in two for a script or a person searching the output.
err = Console(stderr=True, soft_wrap=True)
KINDS = list(SCHEMAS)


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


class FileFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False)
    raise typer.Exit(code)


def check_kind(kind: str) -> str:
    if kind not in SCHEMAS:
        fail(f"unknown kind {kind!r}; one of: {', '.join(KINDS)}", 2)
    return kind


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


def _agency_labels() -> dict[str, str]:
    with Session(services.engine()) as session:
        from sqlalchemy import select

        from ctis.storage.models import Agency

        return {str(i): n for i, n in session.execute(select(Agency.id, Agency.name_en))}


#: Commands that never open sealed values or the audit chain (``init`` checks the key ring itself).
_NO_KEYS_NEEDED = {None, "init", "metrics", "template"}


@app.callback()
def _check_keys(ctx: typer.Context) -> None:
    # Before any command: an existing database whose key file is gone stops here, with the
    # file to restore, rather than failing later on the first sealed value or audit entry.
    if ctx.invoked_subcommand in _NO_KEYS_NEEDED:
        return
    from ctis.security.crypto import KeyRingMissing

    try:
        services.check_key_ring()
    except KeyRingMissing as exc:
        fail(str(exc))


@app.command()
def init() -> None:
    """Create the database, or migrate it to the latest schema."""
    from ctis.security.crypto import KeyRingMissing

    try:
        services.init_database()
    except KeyRingMissing as exc:
        fail(str(exc))
    console.print(f"Database ready: {services.engine().url.render_as_string(hide_password=True)}")


@app.command()
def demo(
    if_empty: Annotated[bool, typer.Option(help="Do nothing if the database already holds records.")] = False,
    reset: Annotated[bool, typer.Option(help="Delete every record first.")] = False,
    seed: Annotated[
        int, typer.Option(help="Random seed (the default gives the documented demo).")
    ] = 20241212,
) -> None:
    """Fill the database with the synthetic, deterministic 2022–2025 demo records."""
    from ctis.demo.generator import DemoBuilder, build_demo

    services.init_database()
    if not services.is_empty():
        if if_empty:
            console.print("The database already holds records; demo data not added.")
            _print_demo_accounts(services.create_demo_accounts())
            return
        if not reset:
            fail("the database already holds records; use --reset to replace them with the demo")
        services.clear_records()
    builder = DemoBuilder(seed).build()
    with _progress() as progress:
        task = progress.add_task("Writing demo records", total=builder.total)
        counts = build_demo(services.engine(), builder, lambda _k, n: progress.advance(task, n))
    console.print("Demo records: " + ", ".join(f"{n:,} {k}" for k, n in counts.items()))
    from ctis.demo.posts import store_demo_posts

    with console.status("Screening demo recruitment posts"):
        posts = store_demo_posts(services.engine())
    console.print(
        f"Demo posts screened: {posts.posts:,}, {posts.flagged:,} flagged in {posts.networks:,} networks"
    )
    _print_demo_accounts(services.create_demo_accounts())


def _print_demo_accounts(created: list[tuple[str, str, str]]) -> None:
    """Show new demo passwords this once; afterwards only the file that keeps them is named."""
    path = services.demo_accounts_path()
    if created:
        console.print("New demo accounts (username, password, role):")
        for username, role, password in created:
            console.print(f"  {username:10} {password:20} {role}", highlight=False, markup=False)
    if path.exists():
        text = f"Demo accounts (one per role) are kept in {path} (readable only by you)."
        console.print(text, soft_wrap=True)


@app.command()
def metrics(
    lang: Annotated[str, typer.Option(help="en or km")] = "en",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the metrics: key, label, what each counts and its breakdowns."""
    if as_json:
        items = [
            {
                "key": m.key,
                "label_en": m.label_en,
                "label_km": m.label_km,
                "definition": m.definition,
                "unit": m.unit,
                "dimensions": list(m.dimensions),
            }
            for m in METRICS.values()
        ]
        sys.stdout.write(json.dumps(items, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(show_lines=True)
    for col in ("Key", "Label", "Definition", "Breakdowns"):
        table.add_column(col)
    for m in METRICS.values():
        table.add_row(m.key, m.label(lang), m.definition, ", ".join(m.dimensions))
    console.print(table)


@app.command()
def report(
    period: Annotated[str, typer.Option(help="2024, 2024-03, 2024-Q3, 2024-H1, TIP2024 or A..B")],
    by: Annotated[list[str] | None, typer.Option(help="Breakdown (repeatable, or 'all').")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="Only these metrics (repeatable).")] = None,
    format: Annotated[ReportFormat, typer.Option(help="Output format.")] = ReportFormat.table,
    output: Annotated[Path | None, typer.Option(help="Write to this file (required for xlsx).")] = None,
    lang: Annotated[str, typer.Option(help="Labels in en or km.")] = "en",
) -> None:
    """Compute the report for a period through the metric registry."""
    try:
        p = report_period(period)
        with Session(services.engine()) as session:
            rep = compute_report(session, p, metric or None, by or ())
    except (ValueError, KeyError) as exc:
        fail(str(exc).strip("'\""), 2)
    agencies = _agency_labels() if rep.by.get("agency") else {}
    if format in (ReportFormat.csv, ReportFormat.xlsx):  # figures leave as a file: audited, as on the web
        detail = {"period": p.label, "format": format.value, "file": output.name if output else None}
        _audit("export", "report", detail)
    if format is ReportFormat.xlsx:
        target = output or Path(f"ctis-report-{p.label.replace('..', '_')}.xlsx")
        render.render_xlsx(rep, agencies, target)
        err.print(f"Wrote {target}")
        return
    if format is ReportFormat.table:
        render.render_table(rep, agencies, console, lang)
        return
    text = render.render_json(rep) if format is ReportFormat.json else render.render_csv(rep, agencies)
    if output:
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        err.print(f"Wrote {output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
def drill(
    metric_key: Annotated[str, typer.Argument(metavar="METRIC")],
    period: Annotated[str, typer.Option(help="The report period.")],
    dimension: Annotated[str | None, typer.Option(help="A breakdown dimension.")] = None,
    value: Annotated[str | None, typer.Option(help="The breakdown value (code).")] = None,
) -> None:
    """Print the external ids of the records a figure counts."""
    try:
        unit, rows = drill_down_cli(metric_key, period, dimension, value)
    except (ValueError, KeyError) as exc:
        fail(str(exc).strip("'\""), 2)
    _audit("drill", unit, {"metric": metric_key, "period": period, "dimension": dimension,
                           "value": value, "records": len(rows), "hidden": 0})  # fmt: skip
    err.print(f"{len(rows)} {unit}")
    for row in rows:  # one line per person: the external ids of their records in the figure
        sys.stdout.write((" ".join(ext for _, ext in row.records) or row.external_id) + "\n")


def _audit(action: str, kind: str | None, detail: dict[str, object]) -> None:
    """One audit entry for a command run by the operator (the account at the terminal)."""
    from ctis.security import audit
    from ctis.storage.db import session_scope

    with session_scope(services.engine()) as session:
        audit.record(session, f"cli:{getpass.getuser()}", action, kind, None, detail)


def drill_down_cli(metric_key: str, period: str, dimension: str | None, value: str | None):  # type: ignore[no-untyped-def]
    with Session(services.engine()) as session:
        return drill_down(session, metric_key, report_period(period), dimension, value)


@app.command()
def link(
    kind: Annotated[str, typer.Argument(help="victims, suspects or all")] = "all",
    engine: Annotated[str, typer.Option(help="duckdb (one machine) or spark (pyspark)")] = "duckdb",
    match_threshold: Annotated[float, typer.Option(help="Pairs at least this probable link.")] = 0.5,
    review_threshold: Annotated[
        float, typer.Option(help="Pairs from here up to 0.95 go to review, linked or not.")
    ] = 0.2,
    incremental: Annotated[
        bool, typer.Option(help="Reuse the latest run's saved model (no training), e.g. after an import.")
    ] = False,
    user: Annotated[str | None, typer.Option(help="Act as this account (default: the operator).")] = None,
) -> None:
    """Link victim records with each other and suspect records with each other (person linkage)."""
    from ctis.exports.command import ExportError, cli_actor
    from ctis.linkage.service import KINDS as LINK_KINDS
    from ctis.linkage.service import run_linkage
    from ctis.records import Invalid
    from ctis.security.permissions import Forbidden
    from ctis.storage.db import session_scope

    kinds = list(LINK_KINDS) if kind == "all" else [kind]
    if any(k not in LINK_KINDS for k in kinds):
        fail(f"unknown kind {kind!r}; one of: {', '.join(LINK_KINDS)}, all", 2)
    services.init_database()
    failed = False
    for k in kinds:
        try:
            actor = cli_actor(services.engine(), user, f"cli:{getpass.getuser()}")
            with session_scope(services.engine()) as session:
                run = run_linkage(
                    session, actor, k, engine=engine, match_threshold=match_threshold,
                    review_threshold=review_threshold, retrain=not incremental,
                )  # fmt: skip
        except (Invalid, Forbidden, ExportError) as exc:
            fail(str(exc), 2)
        if run.status != "succeeded":
            err.print(f"[bold red]{k}: linkage failed[/bold red] (identities unchanged): {run.error}")
            failed = True
            continue
        console.print(
            f"{k}: {run.records:,} records are {run.persons:,} persons ({run.duplicates:,} duplicates); "
            f"{run.review_pairs:,} pairs to review, {run.stale_decisions:,} decisions to review again, "
            f"{len(run.unlinkable):,} records without a usable name or date left unlinked "
            f"({run.seconds:.1f} s, {'trained' if run.trained else 'saved model'}, run {run.id})"
        )
        if run.unlinkable:
            more = " …" if len(run.unlinkable) > 50 else ""
            console.print("  unlinked: " + " ".join(run.unlinkable[:50]) + more)
    if failed:
        raise typer.Exit(1)


@app.command()
def template(
    kind: Annotated[str, typer.Argument(help="Record kind: " + ", ".join(KINDS))],
    format: Annotated[FileFormat, typer.Option(help="csv or xlsx")] = FileFormat.csv,
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout for CSV).")] = None,
) -> None:
    """Write an empty import template (the header row) for a kind of record."""
    check_kind(kind)
    header = columns(kind)
    if format is FileFormat.xlsx:
        target = output or Path(f"{kind}-template.xlsx")
        write_xlsx(target, {kind: (header, [])})
        err.print(f"Wrote {target}")
    elif output:
        with output.open("w", encoding="utf-8", newline="") as fh:
            write_csv(fh, header, [])
    else:
        write_csv(sys.stdout, header, [])


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8) or XLSX file.")],
    kind: Annotated[str, typer.Option(help="Record kind: " + ", ".join(KINDS))],
    link: Annotated[
        bool, typer.Option(help="After importing victims or suspects, link them with the saved model.")
    ] = True,
) -> None:
    """Validate every row, then import all of them in one transaction, or none.

    Imported victims and suspects are then linked incrementally (the latest run's model, every review
    decision honoured) when they have been linked before, so that reports keep counting persons.  A
    failed linkage leaves the import in place and the earlier person identities unchanged.
    """
    check_kind(kind)
    services.init_database()
    try:
        with _progress() as progress:
            task = progress.add_task(f"Importing {kind}", total=None)
            result = import_file(services.engine(), file, kind, progress=lambda n: progress.advance(task, n))
    except FileFormatError as exc:
        fail(str(exc))
    except ImportFailed as exc:
        err.print(f"[bold red]Import refused:[/bold red] {len(exc.errors)} error(s); nothing was written.")
        table = Table("Row", "Column", "Value", "Reason")
        for e in exc.errors[:200]:
            table.add_row(str(e.row), e.column, e.value, e.reason)
        err.print(table)
        if len(exc.errors) > 200:
            err.print(f"… and {len(exc.errors) - 200} more")
        raise typer.Exit(1) from None
    console.print(
        f"Imported {result.rows} {kind} rows: {result.created} created, "
        f"{result.updated} updated, {result.unchanged} unchanged."
    )
    if link and kind in ("victims", "suspects") and (result.created or result.updated):
        _link_after_import(kind)


def _link_after_import(kind: str) -> None:
    from ctis.exports.command import cli_actor
    from ctis.linkage.service import latest_run, run_linkage
    from ctis.storage.db import session_scope

    eng = services.engine()
    with session_scope(eng) as session:
        if latest_run(session, kind) is None:
            console.print(f"[dim]{kind} were never linked: `ctis link {kind}` counts persons.[/dim]")
            return
        run = run_linkage(session, cli_actor(eng, None, f"cli:{getpass.getuser()}"), kind, retrain=False)
    if run.status != "succeeded":
        err.print(
            f"[yellow]warning:[/yellow] the import stands, but linking {kind} failed (identities "
            f"unchanged; run `ctis link {kind}`): {run.error}"
        )
        return
    console.print(
        f"Linked {kind} with the saved model: {run.records:,} records are {run.persons:,} persons, "
        f"{run.review_pairs:,} pairs to review ({run.seconds:.1f} s)."
    )


@app.command()
def export(
    kind: Annotated[str, typer.Argument(help="Record kind: " + ", ".join(KINDS))],
    format: Annotated[FileFormat, typer.Option(help="csv or xlsx")] = FileFormat.csv,
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout for CSV).")] = None,
) -> None:
    """Export every record of a kind in the import template's columns."""
    check_kind(kind)
    header = columns(kind)
    rows = services.export_rows(kind, actor=f"cli:{getpass.getuser()}")
    if format is FileFormat.xlsx:
        target = output or Path(f"{kind}.xlsx")
        write_xlsx(target, {kind: (header, rows)})
        err.print(f"Wrote {target}")
    elif output:
        with output.open("w", encoding="utf-8", newline="") as fh:
            write_csv(fh, header, rows)
    else:
        write_csv(sys.stdout, header, rows)


@app.command()
def standard(
    layout: Annotated[str, typer.Argument(help="ctdc, tip or glotip")],
    period: Annotated[str, typer.Option(help="TIP2024 for tip; any period for ctdc and glotip")],
    format: Annotated[FileFormat, typer.Option(help="csv (+ .notes.csv) or xlsx")] = FileFormat.csv,
    out: Annotated[Path | None, typer.Option(help="File to write (default: ctis-LAYOUT-PERIOD.FMT).")] = None,
    threshold: Annotated[int, typer.Option(help="Smallest count published; k of the CTDC rows.")] = 10,
    exact: Annotated[bool, typer.Option(help="Exact counts for official use (reports:export).")] = False,
    method: Annotated[str, typer.Option(help="suppression, or dp (noise; tip and glotip)")] = "suppression",
    epsilon: Annotated[float, typer.Option(help="With --method dp: ε charged to the privacy budget.")] = 1.0,
    user: Annotated[str | None, typer.Option(help="Act as this account (default: the operator).")] = None,
) -> None:
    """Standard exports: CTDC victim rows, US TIP report tables, UNODC GLOTIP tables (audited)."""
    from ctis.exports.command import ExportError, cli_actor, print_summary, run_export

    try:
        eng = services.engine()
        actor = cli_actor(eng, user, f"cli:{getpass.getuser()}")
        outcome = run_export(
            eng,
            actor,
            layout,
            period,
            fmt=format.value,
            out=out,
            threshold=threshold,
            exact=exact,
            method=method,
            epsilon=epsilon,
        )
    except ExportError as exc:
        fail(str(exc), exc.code)
    print_summary(outcome, console, err)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    secure_cookies: Annotated[bool, typer.Option(help="Mark cookies Secure (behind HTTPS).")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (one per core).")] = 1,
) -> None:
    """Serve the web application and the API."""
    import os

    import uvicorn

    from ctis.security.ratelimit import shared_store_url
    from ctis.web.app import create_app

    if workers > 1 and not shared_store_url():
        fail(
            "several workers need CTIS_REDIS_URL (e.g. redis://127.0.0.1:6379/0) so that they share "
            "the sign-in rate limits; without it each worker would allow the limit again",
            2,
        )
    from ctis.web.deps import trusted_proxies

    try:
        trusted_proxies()  # a mistyped proxy list stops the start, not the first sign-in
    except ValueError as exc:
        fail(str(exc), 2)
    services.init_database()
    path = services.demo_accounts_path()
    console.print(f"CTIS is running at [bold]http://{host}:{port}/[/bold]  (API docs: /api/docs)")
    if path.exists():  # the path, never the passwords: a server's output ends up in logs
        text = f"Demo accounts (username, password, role) are in {path}"
        console.print(text, highlight=False, soft_wrap=True)
    if secure_cookies:
        os.environ["CTIS_SECURE_COOKIES"] = "1"
    if workers > 1:  # each worker builds its own app and report cache; sign-in limits are in Redis
        uvicorn.run(
            "ctis.web.app:create_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For only from CTIS_TRUSTED_PROXIES (ctis.web.deps)
        )
        return
    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
    )


@app.command()
def publish(
    metric: Annotated[list[str] | None, typer.Option(help="Metric key (repeatable).")] = None,
    period: Annotated[list[str] | None, typer.Option(help="Period (repeatable): 2024-H1, 2024-Q1.")] = None,
    by: Annotated[list[str] | None, typer.Option(help="Breakdown (repeatable); a:b crosses two.")] = None,
    method: Annotated[str, typer.Option(help="suppression or dp")] = "suppression",
    threshold: Annotated[int, typer.Option(help="Suppression: smallest count published.")] = 10,
    epsilon: Annotated[float, typer.Option(help="dp: the ε this release spends.")] = 1.0,
    note: Annotated[str, typer.Option(help="A note kept with the release.")] = "",
    list_: Annotated[bool, typer.Option("--list", help="List the releases and the ε ledger.")] = False,
) -> None:
    """Create a public release through the release gate (suppression or differential privacy; audited)."""
    from ctis.publication import releases
    from ctis.security.permissions import Actor

    with Session(services.engine()) as session:
        if list_:
            table = Table("version", "kind", "created", "by", "method", "parameters", "ε", "note")
            for col in (table.columns[1], table.columns[4]):
                col.no_wrap = True  # kind and method stay readable; parameters and note wrap instead
            for r in releases.list_releases(session):
                d = releases.describe(r)
                table.add_row(str(r.version), r.kind, str(d["created_at"]), r.created_by, r.method,
                              json.dumps(d["parameters"]), f"{r.epsilon:g}", r.note or "")  # fmt: skip
            console.print(table)
            console.print(f"ε spent {releases.spent_epsilon(session):g} of {releases.privacy_budget():g}.")
            return
        actor = Actor(0, f"cli:{getpass.getuser()}", "administrator", agency_id=None, scope="all")
        request = releases.ReleaseRequest(metric or [], period or [], by or [], method, threshold, epsilon)
        request.note = note
        try:
            with session.begin():
                release = releases.create_release(session, actor, request)
                figures = releases.public_figures(session, release)
                version, how = release.version, release.method
        except releases.ReleaseRefused as exc:
            fail(f"release refused: {exc.reason}")
        except (ValueError, KeyError) as exc:
            fail(str(exc).strip("'\""))
    table = Table("table", "breakdown", "value", "published")
    for f in figures:
        key = " × ".join(f.key) if f.key else "total"
        shown = "" if f.value is None else str(f.value)
        table.add_row(f.table, key.replace("*", "all"), shown, f.status)
    console.print(table)
    hidden = sum(1 for f in figures if f.value is None)
    console.print(f"Release {version} ({how}): {len(figures)} figures, {hidden} suppressed.")


@app.command()
def screen(
    file: Annotated[
        Path,
        typer.Argument(
            help="Posts: JSON Lines (.jsonl) or CSV with id, text, title, source, url, posted_at."
        ),
    ],
    format: Annotated[ReportFormat, typer.Option(help="table, json (one object per post), csv or xlsx")] = (
        ReportFormat.table
    ),
    store: Annotated[bool, typer.Option(help="Store posts and networks in the database (audited).")] = True,
    output: Annotated[
        Path | None, typer.Option(help="Write to this file (default for xlsx: ctis-screening.xlsx).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Screening processes (default: one per core, up to 8).")
    ] = None,
) -> None:
    """Screen recruitment posts for trafficking and scam-compound recruitment; link them into networks."""
    from ctis.screening import command
    from ctis.screening.posts import PostError

    if store:
        services.init_database()
    try:
        with _progress() as progress:
            task = progress.add_task("Screening posts", total=None)
            engine = services.engine() if store else None
            outcome = command.run(file, engine, lambda n: progress.advance(task, n), workers)
    except PostError as exc:
        fail(str(exc))
    for bad in outcome.bad:
        err.print(f"{file.name}: {bad}", highlight=False, markup=False)
    if not outcome.results:
        fail(f"no post in {file} could be screened ({len(outcome.bad)} unreadable)")
    written = command.render(outcome, format.value, console, output)
    if written:
        err.print(f"Wrote {written}")


users_app = typer.Typer(help="Accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[
        str, typer.Option(help="administrator, data_officer, investigator, social_worker, analyst, viewer")
    ],
    agency: Annotated[str | None, typer.Option(help="Agency external id.")] = None,
    scope: Annotated[str, typer.Option(help="own or all agencies")] = "own",
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Create an account; the password is read from the terminal (or standard input)."""
    from sqlalchemy import select

    from ctis import accounts
    from ctis.storage.models import Agency

    password = typer.prompt("Password", hide_input=True, confirmation_prompt=sys.stdin.isatty())
    with Session(services.engine()) as session, session.begin():
        agency_id = None
        if agency:
            agency_id = session.scalar(select(Agency.id).where(Agency.external_id == agency))
            if agency_id is None:
                fail(f"no agency with external id {agency!r}")
        try:
            accounts.create_user(session, username, password, role, name, agency_id, scope)
        except accounts.AccountError as exc:
            fail(str(exc))
    console.print(f"Account {username} ({role}) created.")


@users_app.command("list")
def users_list() -> None:
    """Accounts, their roles, scopes and whether they are active."""
    from sqlalchemy import select

    from ctis.storage.models import User

    table = Table("Username", "Role", "Agency", "Scope", "Active")
    with Session(services.engine()) as session:
        for u in session.scalars(select(User).order_by(User.username)):
            table.add_row(
                u.username, u.role, str(u.agency_id or "—"), u.scope, "yes" if u.is_active else "no"
            )
    console.print(table)


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable an account; its sessions end at once."""
    from sqlalchemy import select

    from ctis import accounts
    from ctis.storage.models import User

    with Session(services.engine()) as session, session.begin():
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            fail(f"no account {username!r}")
        accounts.set_active(session, user, False, actor=f"cli:{getpass.getuser()}")
    console.print(f"Account {username} disabled.")


@app.command()
def backup(target: Annotated[Path, typer.Argument(help="File to write.")]) -> None:
    """Back up the database (SQLite online backup API, or pg_dump -Fc)."""
    from ctis.security import audit
    from ctis.security.crypto import key_file_path
    from ctis.storage.backup import BackupError
    from ctis.storage.backup import backup as run_backup
    from ctis.storage.db import session_scope

    try:
        written = run_backup(services.engine(), target)
    except BackupError as exc:
        fail(str(exc))
    with session_scope(services.engine()) as session:  # after the copy: a backup that failed is not one
        audit.record(session, f"cli:{getpass.getuser()}", "backup", None, None, {"file": written.name})
    console.print(f"Backup written to {written}.")
    console.print(
        f"Identifying fields in it are sealed: keep the key ring ({key_file_path()} or CTIS_FIELD_KEYS) "
        "safe and separate, or the backup's names cannot be opened."
    )


@app.command()
def restore(source: Annotated[Path, typer.Argument(help="A file written by 'ctis backup'.")]) -> None:
    """Replace the database with a backup; stop the web server first."""
    from ctis.security import audit
    from ctis.security.crypto import key_file_path, key_ring_available
    from ctis.storage.backup import BackupError
    from ctis.storage.backup import restore as run_restore
    from ctis.storage.db import session_scope

    if not key_ring_available():
        fail(
            f"a restore needs the key ring the backup was sealed with, and {key_file_path()} is missing: "
            "restore keys.json from your key backup (or set CTIS_KEY_FILE or CTIS_FIELD_KEYS) first. "
            "Nothing was changed."
        )
    try:
        run_restore(services.engine(), source)
    except BackupError as exc:
        fail(str(exc))
    services.init_database()  # bring an older backup up to the current schema
    with session_scope(services.engine()) as session:
        audit.record(session, f"cli:{getpass.getuser()}", "restore", None, None, {"file": source.name})
    result = audit.verify(services.engine())
    console.print(f"Restored from {source}. {result}")
    console.print("Export the audit head again (ctis audit head): the log now continues from the backup.")
    if not result.ok:
        raise typer.Exit(1)


claims_app = typer.Typer(help="Check statistical claims in text against the records.", no_args_is_help=True)
app.add_typer(claims_app, name="claims")


@claims_app.command("check")
def claims_check(
    file: Annotated[
        Path, typer.Argument(help="A UTF-8 text file (press release, article, post); - for stdin.")
    ],
    as_of: Annotated[str | None, typer.Option(help="Date the text speaks from (for 'last year').")] = None,
    format: Annotated[str, typer.Option(help="table or json (one object per claim per line)")] = "table",
) -> None:
    """Find the figures a text claims and check each against the registry."""
    from datetime import date

    from ctis.claims import check_text, format_results

    if format not in {"table", "json"}:
        fail("--format is table or json", 2)
    try:
        reference = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)", 2)
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    with Session(services.engine()) as session:
        results = check_text(session, text, reference)
    if not results:
        err.print("No statistical claims found in the text.")
        return
    out = format_results(results, format)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")


keys_app = typer.Typer(help="Keys that seal identifying fields.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new active key and reseal every identifying value with it."""
    try:
        key_id, count = services.rotate_keys()
    except RuntimeError as exc:
        fail(str(exc))
    console.print(f"New active key {key_id}; {count} values resealed. Old keys stay in the ring.")


@audit_app.command("verify")
def audit_verify(
    head: Annotated[Path | None, typer.Option(help="A head exported by 'ctis audit head'.")] = None,
) -> None:
    """Check the chain; report the first entry that was changed, deleted or re-ordered."""
    from ctis.security import audit

    expected = None
    if head is not None:
        try:
            data = json.loads(head.read_text(encoding="utf-8"))
            expected = (int(data["seq"]), str(data["hash"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            fail(f"cannot read the exported head {head}: {exc}")
    result = audit.verify(services.engine(), expected)
    if not result.ok:
        fail(str(result))
    console.print(str(result))


@audit_app.command("head")
def audit_head() -> None:
    """Print the latest entry's sequence number and hash, to keep outside the database."""
    from ctis.security import audit

    with Session(services.engine()) as session:
        current = audit.head(session)
    seq, digest = current if current else (0, audit.GENESIS)
    sys.stdout.write(json.dumps({"seq": seq, "hash": digest}) + "\n")


if __name__ == "__main__":  # pragma: no cover
    app()
