"""Benchmark: the metric registry against hand-written SQL and DuckDB.

What is measured
----------------
The 2024-H1 report with the twelve metrics of the original report and its seven
breakdown dimensions, as the CLI and the exports compute it:
``compute_report(session, 2024-H1, metrics, dimensions)``, which runs one SQL
query per metric total and one per metric and dimension (73 queries), each
built by SQLAlchemy from the registry's facts.  People are counted as persons
(``COUNT(DISTINCT COALESCE(person_id, id))``); 5 % of the generated victim and
suspect records are linked to an earlier record, as ``ctis link`` would leave them.

It is timed against

(a) the same figures from SQL written by hand, as an analyst would write it
    (``SELECT sex, COUNT(DISTINCT COALESCE(person_id, id)) FROM victims WHERE
    rescue_date BETWEEN ... GROUP BY 1``), executed through the same engine
    with ``text()``; and
(b) the same hand-written SQL in DuckDB over a copy of the same data, as a
    yardstick of what a columnar engine does with the same work.

Why
---
The registry promises that routing every figure through one set of definitions
costs nothing: its queries are the ones a person would write.  The goal is
that the registry stays within 1.5x of the hand-written SQL on each engine
(SQLite and PostgreSQL).  The benchmark also checks that the three ways of
counting agree exactly (every total and every breakdown cell) and exits with
status 1 if they do not, so it doubles as a large-data correctness check.

How
---
Synthetic data (default 1,000,000 victims, 300,000 suspects, 200,000 cases and
their operations, links, assistance, referrals and prosecutions; dates spread
over 2022-2025, so 2024-H1 holds about 1/8 of them) is generated once with a
seeded ``random.Random`` (deterministic), written to CSV files in a temporary
directory and loaded straight into the schema that ``ctis.storage.db.migrate``
builds (secondary indexes dropped and rebuilt from their own DDL, foreign-key
checks off while loading): SQLite through SQLAlchemy Core ``executemany`` on the connection,
PostgreSQL with ``COPY ... FROM STDIN`` (psycopg), DuckDB with ``read_csv``.
The domain layer and the ORM are bypassed: they validate (and seal) one record
at a time, far too slow for this volume.  After loading, statistics are
gathered (``ANALYZE``; ``VACUUM ANALYZE`` on PostgreSQL, the state autovacuum
reaches on a live server).  Loading is not part of any timing.

Each timing is the best of ``--repeat`` runs after one warm-up run; registry and
hand-written runs alternate, so a change in the machine's load favours neither.  The
PostgreSQL database is created fresh (``ctis_bench_<random>``) on the server
named by ``CTIS_BENCH_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and dropped at the end,
also on error.

Run it with ``make bench`` or::

    .venv/bin/python benchmarks/report_bench.py [--victims N --suspects N --cases N
        --engines sqlite,postgresql --repeat K --detail]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Boolean, Date, DateTime, Engine, Integer, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from ctis.domain.periods import parse_period
from ctis.metrics import METRICS, compute_report
from ctis.metrics.report import breakdown_query, total_query
from ctis.storage.db import make_engine, migrate
from ctis.storage.models import Base

PERIOD = parse_period("2024-H1")
DEFAULT_PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL = 1.5  # registry within this factor of hand-written SQL
CHUNK = 50_000


# --------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------

FIRST_DAY = date(2022, 1, 1)
N_DAYS = (date(2025, 12, 31) - FIRST_DAY).days + 1  # 2022-2025
#: ISO dates by day number; past the end so that follow-up dates (assistance after
#: a rescue, a verdict after a charge) can fall after 2025 as they would in life.
DAYS = [(FIRST_DAY + timedelta(days=d)).isoformat() for d in range(N_DAYS + 800)]
STAMP = "2026-01-01 00:00:00.000000"  # created_at / updated_at, SQLAlchemy's format
AUTHOR = "bench"
RECORD_COLUMNS = (
    "id",
    "external_id",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "version",
)

N_AGENCIES = 10
PROVINCES = [f"KH-{i}" for i in range(1, 26)]
SEXES = ("female", "male")
NATIONALITIES = ("KHM", "VNM", "CHN", "THA", "IDN", "MMR", "LAO", "MYS", None)
EXPLOITATION = (
    "sexual_exploitation",
    "forced_labour",
    "forced_criminality",
    "forced_marriage",
    "other",
    None,
)
OFFENCES = (
    "trafficking_in_persons",
    "sexual_exploitation",
    "forced_labour",
    "forced_criminality",
    "forced_marriage",
    "child_labour",
    "other",
)
ASSISTANCE_TYPES = ("shelter", "medical", "legal", "psychosocial", "repatriation", "reintegration")


@dataclass
class TableData:
    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    csv_path: Path | None = None


def _record(prefix: str, ids: range) -> list[tuple[Any, ...]]:
    return [(i, f"{prefix}-{i:08d}", STAMP, STAMP, AUTHOR, AUTHOR, 1) for i in ids]


def _expand(counts: Sequence[int], *columns: Sequence[Any]) -> list[list[Any]]:
    """Repeat each item of ``columns`` ``counts[i]`` times (one row per child record)."""
    return [[v for v, c in zip(col, counts, strict=True) for _ in range(c)] for col in columns]


def _agency_ids(rng: random.Random, n: int, null_share: float) -> list[int | None]:
    values: list[int | None] = [*range(1, N_AGENCIES + 1), None]
    weights = [(1 - null_share) / N_AGENCIES] * N_AGENCIES + [null_share]
    return rng.choices(values, weights=weights, k=n)


def _provinces(rng: random.Random, n: int, null_share: float) -> list[str | None]:
    values: list[str | None] = [*PROVINCES, None]
    weights = [(1 - null_share) / len(PROVINCES)] * len(PROVINCES) + [null_share]
    return rng.choices(values, weights=weights, k=n)


def _ages(rng: random.Random, n: int, low: int, high: int, minor_share: float) -> list[int | None]:
    """Ages with 5 % unknown; ``minor_share`` of them under 18."""
    values: list[int | None] = [None, *range(low, high + 1)]
    weights = [0.05]
    for age in range(low, high + 1):
        if age < 18:
            weights.append(0.95 * minor_share / (18 - low))
        elif age <= 30:
            weights.append(0.95 * (1 - minor_share) * 0.6 / 13)
        else:
            weights.append(0.95 * (1 - minor_share) * 0.4 / (high - 30))
    return rng.choices(values, weights=weights, k=n)


def _person_ids(rng: random.Random, n: int, share: float = 0.05) -> list[int | None]:
    """Person linkage's output: ``share`` of the records are a second record of an earlier one.

    A linked record and the one it joins both get the person's id (the smallest record id among
    them), as ``ctis link`` writes it; records never linked keep NULL and count as their own person.
    """
    person: list[int | None] = [None] * (n + 1)
    for i in range(2, n + 1):
        if rng.random() < share:
            j = rng.randrange(max(1, i - 1000), i)
            rep = person[j] or j
            person[j] = person[i] = rep
    return person[1:]


def generate(n_victims: int, n_suspects: int, n_cases: int, seed: int) -> list[TableData]:
    """All tables, in foreign-key order, as rows of plain values (dates as ISO text)."""
    rng = random.Random(seed)
    tables: list[TableData] = []
    days = range(N_DAYS)

    agency_kinds = ["police"] * 4 + ["ministry", "court", "ngo", "ngo", "io", "committee"]
    agencies = [
        (*rec, f"Agency {i}", agency_kinds[i - 1])
        for i, rec in enumerate(_record("AG", range(1, N_AGENCIES + 1)), start=1)
    ]
    tables.append(TableData("agencies", (*RECORD_COLUMNS, "name_en", "agency_kind"), agencies))

    # Cases, each cracked down by 1-3 operations (1.3 on average) dated within 90 days
    # of the case's start; 10 % of operations also concern a second case.
    case_ids = range(1, n_cases + 1)
    case_day = rng.choices(days, k=n_cases)
    offence = rng.choices(OFFENCES, weights=(30, 25, 20, 10, 5, 5, 5), k=n_cases)
    case_agency = _agency_ids(rng, n_cases, 0.05)
    ops_per_case = rng.choices((1, 2, 3), weights=(75, 20, 5), k=n_cases)
    cases = [
        (*rec, off, DAYS[d], "open", ag)
        for rec, off, d, ag in zip(_record("CS", case_ids), offence, case_day, case_agency, strict=True)
    ]
    tables.append(
        TableData("cases", (*RECORD_COLUMNS, "offence_type", "opened_on", "status", "agency_id"), cases)
    )

    op_case, op_base = _expand(ops_per_case, case_ids, case_day)
    n_ops = len(op_case)
    op_ids = range(1, n_ops + 1)
    op_offset = rng.choices(range(91), k=n_ops)
    op_day = [min(b + o, N_DAYS - 1) for b, o in zip(op_base, op_offset, strict=True)]
    op_province = rng.choices(PROVINCES, k=n_ops)
    op_agency = _agency_ids(rng, n_ops, 0.02)
    operations = [
        (*rec, DAYS[d], prov, ag, "raid")
        for rec, d, prov, ag in zip(_record("OP", op_ids), op_day, op_province, op_agency, strict=True)
    ]
    tables.append(
        TableData(
            "operations",
            (*RECORD_COLUMNS, "operation_date", "province", "lead_agency_id", "operation_kind"),
            operations,
        )
    )
    links = list(zip(op_case, op_ids, strict=True))
    second = rng.choices(case_ids, k=n_ops)
    extra = rng.choices((True, False), weights=(10, 90), k=n_ops)
    links += [
        (c2, op) for op, own, c2, e in zip(op_ids, op_case, second, extra, strict=True) if e and c2 != own
    ]
    tables.append(TableData("case_operations", ("case_id", "operation_id"), links))

    # Suspects (1 % without an arrest date) and their prosecutions (0.7 per suspect).
    suspect_ids = range(1, n_suspects + 1)
    arrest: list[int | None] = [
        None if r < 0.01 else d
        for r, d in zip((rng.random() for _ in suspect_ids), rng.choices(days, k=n_suspects), strict=False)
    ]
    s_case: list[int | None] = [
        c if r < 0.8 else None
        for c, r in zip(
            rng.choices(case_ids, k=n_suspects), (rng.random() for _ in suspect_ids), strict=False
        )
    ]
    suspects = [
        (*rec, sex, age, nat, prov, None if d is None else DAYS[d], case, ag, person)
        for rec, sex, age, nat, prov, d, case, ag, person in zip(
            _record("SU", suspect_ids),
            rng.choices(SEXES, weights=(35, 65), k=n_suspects),
            _ages(rng, n_suspects, 15, 70, 0.03),
            rng.choices(NATIONALITIES, weights=(80, 5, 6, 3, 1, 1, 1, 1, 2), k=n_suspects),
            _provinces(rng, n_suspects, 0.02),
            arrest,
            s_case,
            _agency_ids(rng, n_suspects, 0.03),
            _person_ids(rng, n_suspects),
            strict=True,
        )
    ]
    tables.append(
        TableData(
            "suspects",
            (
                *RECORD_COLUMNS,
                *("sex", "age_at_arrest", "nationality", "province", "arrest_date"),
                *("case_id", "agency_id", "person_id"),
            ),
            suspects,
        )
    )

    # Victims, rescued in operations (each linked to one, 10 % to a second).
    victim_ids = range(1, n_victims + 1)
    rescue = rng.choices(days, k=n_victims)
    v_case: list[int | None] = [
        c if r < 0.7 else None
        for c, r in zip(rng.choices(case_ids, k=n_victims), (rng.random() for _ in victim_ids), strict=False)
    ]
    victims = [
        (*rec, sex, age, nat, expl, DAYS[d], "confirmed", prov, case, ag, person)
        for rec, sex, age, nat, expl, d, prov, case, ag, person in zip(
            _record("VI", victim_ids),
            rng.choices(SEXES, weights=(62, 38), k=n_victims),
            _ages(rng, n_victims, 3, 65, 0.35),
            rng.choices(NATIONALITIES, weights=(70, 10, 6, 4, 2, 2, 1, 1, 4), k=n_victims),
            rng.choices(EXPLOITATION, weights=(35, 35, 15, 8, 4, 3), k=n_victims),
            rescue,
            _provinces(rng, n_victims, 0.02),
            v_case,
            _agency_ids(rng, n_victims, 0.03),
            _person_ids(rng, n_victims),
            strict=True,
        )
    ]
    tables.append(
        TableData(
            "victims",
            (
                *RECORD_COLUMNS,
                *("sex", "age_at_rescue", "nationality", "exploitation_type", "rescue_date"),
                *("status", "province", "case_id", "agency_id", "person_id"),
            ),
            victims,
        )
    )
    first_op = rng.choices(op_ids, k=n_victims)
    second_op = rng.choices(op_ids, k=n_victims)
    extra = rng.choices((True, False), weights=(10, 90), k=n_victims)
    victim_links = list(zip(victim_ids, first_op, strict=True))
    victim_links += [
        (v, o2) for v, o1, o2, e in zip(victim_ids, first_op, second_op, extra, strict=True) if e and o1 != o2
    ]
    tables.append(TableData("victim_operations", ("victim_id", "operation_id"), victim_links))

    # Prosecutions: charged within 180 days of arrest; 45 % convicted 30-400 days later.
    per_suspect = rng.choices((0, 1, 2), weights=(40, 50, 10), k=n_suspects)
    fallback = rng.choices(days, k=n_suspects)
    base = [f if a is None else a for a, f in zip(arrest, fallback, strict=True)]
    p_suspect, p_day, p_case = _expand(per_suspect, suspect_ids, base, s_case)
    n_pros = len(p_suspect)
    charged = [d + o for d, o in zip(p_day, rng.choices(range(181), k=n_pros), strict=True)]
    convicted = rng.choices((True, False), weights=(45, 55), k=n_pros)
    verdict_delay = rng.choices(range(30, 401), k=n_pros)
    prosecutions = [
        (
            *rec,
            s,
            case,
            DAYS[c],
            "convicted" if conv else "pending",
            DAYS[c + delay] if conv else None,
        )
        for rec, s, case, c, conv, delay in zip(
            _record("PR", range(1, n_pros + 1)),
            p_suspect,
            p_case,
            charged,
            convicted,
            verdict_delay,
            strict=True,
        )
    ]
    tables.append(
        TableData(
            "prosecutions",
            (*RECORD_COLUMNS, "suspect_id", "case_id", "charged_on", "outcome", "verdict_on"),
            prosecutions,
        )
    )

    # Assistance (1.5 per victim), starting within 90 days of the rescue.
    per_victim = rng.choices((0, 1, 2, 3, 4), weights=(20, 35, 28, 12, 5), k=n_victims)
    a_victim, a_day = _expand(per_victim, victim_ids, rescue)
    n_assist = len(a_victim)
    assistance = [
        (*rec, v, kind, DAYS[d + o], ag)
        for rec, v, kind, d, o, ag in zip(
            _record("AS", range(1, n_assist + 1)),
            a_victim,
            rng.choices(ASSISTANCE_TYPES, weights=(30, 25, 10, 15, 10, 10), k=n_assist),
            a_day,
            rng.choices(range(91), k=n_assist),
            _agency_ids(rng, n_assist, 0.05),
            strict=True,
        )
    ]
    tables.append(
        TableData(
            "assistance",
            (*RECORD_COLUMNS, "victim_id", "assistance_type", "start_date", "agency_id"),
            assistance,
        )
    )

    # Referrals (0.4 per victim) within 120 days of the rescue; 85 % with consent.
    per_victim = rng.choices((0, 1, 2), weights=(66, 28, 6), k=n_victims)
    r_victim, r_day = _expand(per_victim, victim_ids, rescue)
    n_ref = len(r_victim)
    referrals = [
        (*rec, v, ag, DAYS[d + o], consent)
        for rec, v, ag, d, o, consent in zip(
            _record("RF", range(1, n_ref + 1)),
            r_victim,
            rng.choices(range(1, N_AGENCIES + 1), k=n_ref),
            r_day,
            rng.choices(range(121), k=n_ref),
            rng.choices((1, 0), weights=(85, 15), k=n_ref),
            strict=True,
        )
    ]
    tables.append(
        TableData(
            "referrals",
            (*RECORD_COLUMNS, "victim_id", "to_agency_id", "referred_on", "consent"),
            referrals,
        )
    )
    return tables


def write_csvs(tables: list[TableData], folder: Path) -> None:
    """One headerless CSV per table; NULL is an empty field (PostgreSQL and DuckDB agree)."""
    for table in tables:
        path = folder / f"{table.name}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(table.rows)
        table.csv_path = path


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_sqlite(engine: Engine, tables: list[TableData]) -> None:
    names = [t.name for t in tables]
    with engine.connect() as conn:
        # Loading only: outside a transaction (pysqlite opens one only before DML),
        # no foreign-key checks, no fsync, a 1 GB page cache.
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.exec_driver_sql("PRAGMA synchronous=OFF")
        conn.exec_driver_sql("PRAGMA cache_size=-1000000")
        # Secondary indexes are dropped and rebuilt from their own DDL (bulk-load practice).
        indexes = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join('?' for _ in names)})",
            tuple(names),
        ).all()
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        for table in tables:
            sql = (
                f"INSERT INTO {table.name} ({', '.join(table.columns)}) "
                f"VALUES ({', '.join('?' for _ in table.columns)})"
            )
            for start in range(0, len(table.rows), CHUNK):
                conn.exec_driver_sql(sql, table.rows[start : start + CHUNK])
        for _, ddl in indexes:
            conn.exec_driver_sql(ddl)
        conn.commit()
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def load_postgresql(engine: Engine, tables: list[TableData]) -> None:
    raw = engine.raw_connection()
    try:
        pg: Any = raw.driver_connection  # psycopg.Connection
        with pg.cursor() as cur:
            # Loading only: skip foreign-key triggers (the data is consistent by
            # construction); drop the secondary indexes and rebuild them from their DDL.
            cur.execute("SET session_replication_role = replica")
            cur.execute("SET maintenance_work_mem = '512MB'")
            cur.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
                ([t.name for t in tables],),
            )
            indexes = cur.fetchall()
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
            for table in tables:
                assert table.csv_path is not None  # noqa: S101
                sql = f"COPY {table.name} ({', '.join(table.columns)}) FROM STDIN (FORMAT csv)"
                with cur.copy(sql) as copy, table.csv_path.open("rb") as f:
                    while block := f.read(1 << 20):
                        copy.write(block)
            for _, ddl in indexes:
                cur.execute(ddl)
            cur.execute("SET session_replication_role = DEFAULT")
        pg.commit()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def _duck_type(sa_type: Any) -> str:
    if isinstance(sa_type, Boolean):
        return "BOOLEAN"
    if isinstance(sa_type, DateTime):
        return "TIMESTAMP"
    if isinstance(sa_type, Date):
        return "DATE"
    if isinstance(sa_type, Integer):
        return "INTEGER"
    return "VARCHAR"


def load_duckdb(path: Path, tables: list[TableData]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute("SET enable_progress_bar = false")
    for table in tables:
        assert table.csv_path is not None  # noqa: S101
        sa_columns = Base.metadata.tables[table.name].c
        columns = ", ".join(f"'{c}': '{_duck_type(sa_columns[c].type)}'" for c in table.columns)
        con.execute(
            f"CREATE TABLE {table.name} AS SELECT * FROM read_csv('{table.csv_path}', "
            f"header = false, auto_detect = false, columns = {{{columns}}})"
        )
    con.execute("ANALYZE")
    return con


# --------------------------------------------------------------------------------------
# The figures, by hand
# --------------------------------------------------------------------------------------

H1 = "BETWEEN '2024-01-01' AND '2024-06-30'"


def age_band(col: str) -> str:
    return (
        f"CASE WHEN {col} IS NULL THEN 'unknown' WHEN {col} <= 8 THEN '0-8' "
        f"WHEN {col} <= 17 THEN '9-17' WHEN {col} <= 20 THEN '18-20' "
        f"WHEN {col} <= 23 THEN '21-23' WHEN {col} <= 26 THEN '24-26' "
        f"WHEN {col} <= 29 THEN '27-29' WHEN {col} <= 38 THEN '30-38' "
        f"WHEN {col} <= 47 THEN '39-47' ELSE '48+' END"
    )


@dataclass(frozen=True)
class HandMetric:
    """A metric as an analyst writes it: the total, and one GROUP BY query per dimension."""

    total: str
    by: dict[str, str]


#: People are counted as persons: a record never linked is its own person (docs/metrics.md).
PERSONS = "COUNT(DISTINCT COALESCE(person_id, id))"


def _victims_rescued(extra: str = "") -> HandMetric:
    where = f"FROM victims WHERE rescue_date {H1}{extra}"
    n = PERSONS
    return HandMetric(
        total=f"SELECT {n} {where}",
        by={
            "sex": f"SELECT sex, {n} {where} GROUP BY sex",
            "age_band": f"SELECT {age_band('age_at_rescue')}, {n} {where} GROUP BY 1",
            "nationality": f"SELECT nationality, {n} {where} GROUP BY nationality",
            "province": f"SELECT province, {n} {where} GROUP BY province",
            "exploitation_type": (f"SELECT exploitation_type, {n} {where} GROUP BY exploitation_type"),
            "agency": f"SELECT agency_id, {n} {where} GROUP BY agency_id",
        },
    )


def _victims_via(table: str, date_col: str, agency_col: str, extra: str) -> HandMetric:
    """Victims counted once through a child table (assistance, referrals)."""
    joined = f"FROM {table} x JOIN victims v ON v.id = x.victim_id WHERE x.{date_col} {H1}{extra}"
    n = "COUNT(DISTINCT COALESCE(v.person_id, v.id))"
    return HandMetric(
        total=f"SELECT {n} {joined}",
        by={
            "sex": f"SELECT v.sex, {n} {joined} GROUP BY v.sex",
            "age_band": f"SELECT {age_band('v.age_at_rescue')}, {n} {joined} GROUP BY 1",
            "nationality": f"SELECT v.nationality, {n} {joined} GROUP BY v.nationality",
            "province": f"SELECT v.province, {n} {joined} GROUP BY v.province",
            "exploitation_type": (f"SELECT v.exploitation_type, {n} {joined} GROUP BY v.exploitation_type"),
            "agency": f"SELECT x.{agency_col}, {n} {joined} GROUP BY x.{agency_col}",
        },
    )


def _suspects_arrested(extra: str = "") -> HandMetric:
    where = f"FROM suspects WHERE arrest_date {H1}{extra}"
    n = PERSONS
    return HandMetric(
        total=f"SELECT {n} {where}",
        by={
            "sex": f"SELECT sex, {n} {where} GROUP BY sex",
            "age_band": f"SELECT {age_band('age_at_arrest')}, {n} {where} GROUP BY 1",
            "nationality": f"SELECT nationality, {n} {where} GROUP BY nationality",
            "province": f"SELECT province, {n} {where} GROUP BY province",
            "agency": f"SELECT agency_id, {n} {where} GROUP BY agency_id",
        },
    )


def _suspects_prosecuted(condition: str) -> HandMetric:
    joined = f"FROM prosecutions p JOIN suspects s ON s.id = p.suspect_id WHERE {condition}"
    n = "COUNT(DISTINCT COALESCE(s.person_id, s.id))"
    return HandMetric(
        total=f"SELECT {n} {joined}",
        by={
            "sex": f"SELECT s.sex, {n} {joined} GROUP BY s.sex",
            "age_band": f"SELECT {age_band('s.age_at_arrest')}, {n} {joined} GROUP BY 1",
            "nationality": f"SELECT s.nationality, {n} {joined} GROUP BY s.nationality",
            "province": f"SELECT s.province, {n} {joined} GROUP BY s.province",
            "agency": f"SELECT s.agency_id, {n} {joined} GROUP BY s.agency_id",
        },
    )


CRACKED = (
    "FROM operations o JOIN case_operations co ON co.operation_id = o.id "
    "JOIN cases c ON c.id = co.case_id "
    f"WHERE o.operation_date {H1} AND c.offence_type IN ('trafficking_in_persons', "
    "'sexual_exploitation', 'forced_labour', 'forced_criminality', 'forced_marriage')"
)
OPERATIONS = f"FROM operations WHERE operation_date {H1}"

HAND: dict[str, HandMetric] = {
    "cases_cracked_down": HandMetric(
        total=f"SELECT COUNT(DISTINCT c.id) {CRACKED}",
        by={
            "province": f"SELECT o.province, COUNT(DISTINCT c.id) {CRACKED} GROUP BY o.province",
            "offence_type": (
                f"SELECT c.offence_type, COUNT(DISTINCT c.id) {CRACKED} GROUP BY c.offence_type"
            ),
            "agency": (f"SELECT o.lead_agency_id, COUNT(DISTINCT c.id) {CRACKED} GROUP BY o.lead_agency_id"),
        },
    ),
    "operations": HandMetric(
        total=f"SELECT COUNT(*) {OPERATIONS}",
        by={
            "province": f"SELECT province, COUNT(*) {OPERATIONS} GROUP BY province",
            "agency": f"SELECT lead_agency_id, COUNT(*) {OPERATIONS} GROUP BY lead_agency_id",
        },
    ),
    "suspects_arrested": _suspects_arrested(),
    "suspects_arrested_foreign": _suspects_arrested(" AND nationality <> 'KHM'"),
    "suspects_prosecuted": _suspects_prosecuted(f"p.charged_on {H1}"),
    "suspects_convicted": _suspects_prosecuted(f"p.outcome = 'convicted' AND p.verdict_on {H1}"),
    "victims_rescued": _victims_rescued(),
    "victims_rescued_female": _victims_rescued(" AND sex = 'female'"),
    "victims_rescued_minor": _victims_rescued(" AND age_at_rescue < 18"),
    "victims_assisted": _victims_via("assistance", "start_date", "agency_id", ""),
    "victims_repatriated": _victims_via(
        "assistance", "start_date", "agency_id", " AND x.assistance_type = 'repatriation'"
    ),
    "victims_referred": _victims_via("referrals", "referred_on", "to_agency_id", " AND x.consent"),
}


# --------------------------------------------------------------------------------------
# Running and checking
# --------------------------------------------------------------------------------------


@dataclass
class Figures:
    metrics: dict[str, int]
    by: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


Execute = Callable[[str], Sequence[Sequence[Any]]]


#: What is timed: the twelve metrics of the original report by its seven dimensions (73 queries).
#: The registry has grown since (sentences, forms, screened posts); those have no hand-written
#: counterpart here, so they are left out of both sides.
BENCH_METRICS = tuple(HAND)
BENCH_DIMENSIONS = (
    "sex", "age_band", "nationality", "province", "exploitation_type", "offence_type", "agency",
)  # fmt: skip


def hand_figures(execute: Execute, keys: Sequence[str] | None = None) -> Figures:
    figures = Figures(metrics={})
    for key in keys or list(HAND):
        hand = HAND[key]
        figures.metrics[key] = int(execute(hand.total)[0][0])
        for dim in BENCH_DIMENSIONS:
            if dim not in hand.by:
                continue
            counts = {
                ("unknown" if value is None else str(value)): int(n) for value, n in execute(hand.by[dim])
            }
            figures.by.setdefault(dim, {})[key] = dict(sorted(counts.items()))
    return figures


def registry_figures(engine: Engine, keys: Sequence[str] | None = None) -> Figures:
    with Session(engine) as session:
        report = compute_report(session, PERIOD, list(keys or BENCH_METRICS), list(BENCH_DIMENSIONS))
    return Figures(report.metrics, report.by)


def hand_on(engine: Engine, keys: Sequence[str] | None = None) -> Figures:
    with engine.connect() as conn:
        return hand_figures(lambda sql: conn.execute(text(sql)).all(), keys)


def hand_on_duckdb(con: duckdb.DuckDBPyConnection, keys: Sequence[str] | None = None) -> Figures:
    return hand_figures(lambda sql: con.execute(sql).fetchall(), keys)


def differences(label: str, expected: Figures, got: Figures) -> list[str]:
    out: list[str] = []
    for key in sorted(set(expected.metrics) | set(got.metrics)):
        a, b = expected.metrics.get(key), got.metrics.get(key)
        if a != b:
            out.append(f"{label}: total {key}: registry {a} != {b}")
    for dim in sorted(set(expected.by) | set(got.by)):
        ea, gb = expected.by.get(dim, {}), got.by.get(dim, {})
        for key in sorted(set(ea) | set(gb)):
            if key not in ea or key not in gb:
                out.append(f"{label}: {key} by {dim} only on one side")
                continue
            for value in sorted(set(ea[key]) | set(gb[key])):
                a, b = ea[key].get(value), gb[key].get(value)
                if a != b:
                    out.append(f"{label}: {key} by {dim} = {value}: registry {a} != {b}")
    return out


def race(fns: Sequence[Callable[[], Any]], repeat: int) -> tuple[list[float], list[Any]]:
    """Warm each function up once, then time them in turn ``repeat`` times; best of each.

    Interleaving (A, B, A, B, ...) rather than A A A then B B B keeps a drift in the
    machine's load from favouring one side.  Returns the best times and the
    results of the warm-up runs (the runs that are checked).
    """
    results = [fn() for fn in fns]
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best, results


@contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A fresh database on ``server``, dropped afterwards whatever happens."""
    url = make_url(server)
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"ctis_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass
class EngineResult:
    engine: str
    load_s: float
    registry_s: float
    hand_s: float
    #: (metric, "total" or dimension) -> (registry s, hand-written s), with --detail
    detail: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)


def time_queries(engine: Engine, repeat: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Each registry query against its hand-written counterpart, one by one."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    with engine.connect() as conn:
        for key in BENCH_METRICS:
            facts = METRICS[key].facts(PERIOD)
            pairs: list[tuple[str, Any, str]] = [("total", total_query(facts), HAND[key].total)]
            dims = [d for d in facts.dimensions if d in BENCH_DIMENSIONS]
            pairs += [(d, breakdown_query(facts, d), HAND[key].by[d]) for d in dims]
            for part, query, sql in pairs:
                (reg, hand), _ = race(
                    [lambda q=query: conn.execute(q).all(), lambda h=sql: conn.execute(text(h)).all()],
                    repeat,
                )
                out[key, part] = (reg, hand)
    return out


def time_engine(
    label: str,
    url: str,
    tables: list[TableData],
    duck: Figures,
    repeat: int,
    detail: bool,
    problems: list[str],
) -> EngineResult:
    engine = make_engine(url)
    try:
        migrate(engine)
        start = time.perf_counter()
        if label == "sqlite":
            load_sqlite(engine, tables)
        else:
            load_postgresql(engine, tables)
        load_s = time.perf_counter() - start
        print(f"  load {label}: {load_s:.1f} s (incl. ANALYZE)", flush=True)

        (registry_s, hand_s), (reg, hand) = race(
            [lambda: registry_figures(engine), lambda: hand_on(engine)], repeat
        )
        problems += differences(f"{label} registry vs hand-written", reg, hand)
        problems += differences(f"{label} registry vs duckdb", reg, duck)
        result = EngineResult(label, load_s, registry_s, hand_s)
        if detail:
            result.detail = time_queries(engine, repeat)
        return result
    finally:
        engine.dispose()


def print_results(results: list[EngineResult], duck_s: float) -> None:
    head = (
        f"{'engine':<12}{'registry s':>12}{'hand-written s':>16}{'registry/hand':>15}"
        f"{'duckdb s':>10}{'registry/duckdb':>17}"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.engine:<12}{r.registry_s:>12.3f}{r.hand_s:>16.3f}{r.registry_s / r.hand_s:>14.2f}x"
            f"{duck_s:>10.3f}{r.registry_s / duck_s:>16.1f}x"
        )
    print()
    verdicts = ", ".join(
        f"{r.engine} {'PASS' if r.registry_s <= GOAL * r.hand_s else 'MISS'} ({r.registry_s / r.hand_s:.2f}x)"
        for r in results
    )
    print(f"goal: registry within {GOAL}x of hand-written SQL on each engine: {verdicts}")
    for r in results:
        if not r.detail:
            continue
        print(f"\nper query on {r.engine}, seconds (best of the repeats):")
        print(f"  {'metric':<28}{'part':<19}{'registry':>9}{'hand':>9}{'ratio':>8}")
        for (key, part), (reg, hand) in r.detail.items():
            print(f"  {key:<28}{part:<19}{reg:>9.4f}{hand:>9.4f}{reg / hand:>7.2f}x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--victims", type=int, default=1_000_000)
    parser.add_argument("--suspects", type=int, default=300_000)
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after a warm-up")
    parser.add_argument("--seed", type=int, default=20240630)
    parser.add_argument("--detail", action="store_true", help="also time each query alone")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown))}")
    server = os.environ.get("CTIS_BENCH_POSTGRES_URL", DEFAULT_PG_SERVER)

    print(
        f"CTIS report benchmark: {PERIOD.label} report, {len(BENCH_METRICS)} metrics, "
        f"{len(BENCH_DIMENSIONS)} dimensions; best of {args.repeat} after a warm-up"
    )
    with tempfile.TemporaryDirectory(prefix="ctis_bench_") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        tables = generate(args.victims, args.suspects, args.cases, args.seed)
        gen_s = time.perf_counter() - start
        start = time.perf_counter()
        write_csvs(tables, folder)
        csv_s = time.perf_counter() - start
        sizes = ", ".join(f"{t.name} {len(t.rows):,}" for t in tables)
        print(f"  generate: {gen_s:.1f} s, write CSV: {csv_s:.1f} s ({sizes})", flush=True)

        start = time.perf_counter()
        con = load_duckdb(folder / "bench.duckdb", tables)
        print(f"  load duckdb: {time.perf_counter() - start:.1f} s", flush=True)
        try:
            (duck_s,), (duck,) = race([lambda: hand_on_duckdb(con)], args.repeat)
        finally:
            con.close()

        problems: list[str] = []
        results: list[EngineResult] = []
        for label in engines:
            if label == "sqlite":
                url = f"sqlite:///{folder / 'bench.db'}"
                results.append(time_engine(label, url, tables, duck, args.repeat, args.detail, problems))
            else:
                with postgres_database(server) as url:
                    results.append(time_engine(label, url, tables, duck, args.repeat, args.detail, problems))

    print_results(results, duck_s)
    print("\nfigures: " + ("MISMATCH" if problems else "registry = hand-written SQL = DuckDB, every cell"))
    for line in problems[:50]:
        print(f"  {line}")
    if len(problems) > 50:
        print(f"  ... and {len(problems) - 50} more")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
