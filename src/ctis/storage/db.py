"""Engines, sessions and schema migration.

``migrate`` runs Alembic to ``head`` (creating a fresh database or upgrading an
old one), then brings the reference tables in line with the domain's data
files.  Tests and the CLI go through the same function, so the schema the tests
exercise is the one migrations build.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ctis.domain.values import provinces
from ctis.storage.models import Province


def _normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (psycopg2 is not installed)."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


#: Seconds an SQLite writer waits for another's write lock before "database is locked".
DEFAULT_SQLITE_BUSY_TIMEOUT = 10.0


def sqlite_busy_timeout() -> float:
    """How long a writer waits for SQLite's single write lock (``CTIS_SQLITE_BUSY_TIMEOUT``, seconds).

    Every web request that reads a person record writes an audit entry, so web
    requests, a CLI import and a linkage run on the same file all queue for that
    one lock.  Web transactions hold it for milliseconds; an import holds it for
    its whole file.  Past this wait the request is answered 503 with Retry-After
    (``web/app.py``), so the value bounds how long a request can hang.
    """
    raw = os.environ.get("CTIS_SQLITE_BUSY_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_SQLITE_BUSY_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 600:
        raise ValueError(f"CTIS_SQLITE_BUSY_TIMEOUT must be a number of seconds from 0 to 600, not {raw!r}")
    return value


#: One queue per SQLite file for this process's writers (see ``_queue_writers``).
_WRITE_QUEUES: dict[str, threading.Lock] = {}
_WRITE_QUEUES_GUARD = threading.Lock()
_HOLDS_TURN = "ctis_write_turn"  # in a pooled connection's info: it holds its file's queue
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _queue_writers(engine: Engine, path: str | None, wait: float) -> None:
    """Make this process's writers to one SQLite file wait their turn in a lock, not by polling.

    SQLite admits one writer at a time, and a connection that finds the write lock
    taken sleeps and tries again (1, 2, 5 ... 100 ms apart): under load the lock is
    often free while every waiter sleeps, and a waiter can lose its turn to
    newcomers again and again.  With 8 clients reading victims (each read is an
    audited write) that gave a p99 of 0.5-1.4 s against a median of 12-45 ms
    (``benchmarks/api_records_load.py``).  Here a transaction takes a lock at its
    first write and gives it back at its commit or rollback, so waiters queue and
    the next wakes as soon as the lock is free.  Other processes (an import, a
    second worker) still meet SQLite's own lock and its busy timeout; so does a
    writer here that waits ``wait`` seconds in vain ("database is locked", 503).
    """
    key = str(Path(path).resolve()) if path and path != ":memory:" else f":memory:{id(engine)}"
    with _WRITE_QUEUES_GUARD:
        queue = _WRITE_QUEUES.setdefault(key, threading.Lock())

    @event.listens_for(engine, "before_cursor_execute")
    def _take_turn(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
        if conn.info.get(_HOLDS_TURN) or not statement.lstrip()[:7].upper().startswith(_WRITE_VERBS):
            return
        if not queue.acquire(timeout=wait):
            reason = sqlite3.OperationalError("database is locked (other writers in this process)")
            raise OperationalError(statement, None, reason)
        conn.info[_HOLDS_TURN] = True

    def _end_turn(info: dict[Any, Any] | None) -> None:
        if info is not None and info.pop(_HOLDS_TURN, False):
            queue.release()

    def _info(dbapi_connection: Any) -> dict[Any, Any] | None:
        try:  # a pooled connection's; the first connect's probe has none
            return dbapi_connection.info
        except (AttributeError, NotImplementedError):
            return None

    # The turn ends once SQLite's own lock is free: after the driver's commit or rollback (the
    # engine's "commit" event comes before it, and a writer woken then would find SQLite's lock
    # still held and sleep), so this engine's dialect gets wrapped methods; the pool's check-in
    # catches a connection given back with neither.
    dialect: Any = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        commit(dbapi_connection)
        _end_turn(_info(dbapi_connection))

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            _end_turn(_info(dbapi_connection))

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback
    event.listen(engine, "checkin", lambda _dbapi, record: _end_turn(record.info) if record else None)


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = _normalise_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        wait = sqlite_busy_timeout()
        connect_args = {"timeout": wait, **kwargs.pop("connect_args", {})}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _queue_writers(engine, path, wait)

        @event.listens_for(engine, "do_connect")
        def _private_file(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
            # Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the
            # database file's mode, so they are private too (SQLite alone makes all three 0644).
            if path and path != ":memory:" and not path.startswith("file:"):
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("ctis.storage") / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def is_initialised(engine: Engine) -> bool:
    """Whether the database already has CTIS's schema (without creating an SQLite file)."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:" and not Path(path).exists():
            return False
    return inspect(engine).has_table("alembic_version")


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema, sync reference data, and open the keyed audit chain.

    A database created here gets the chain's start entry; see :func:`ctis.security.audit.open_chain`.
    """
    from ctis.security import audit
    from ctis.security.crypto import key_ring_available

    new_database = not inspect(engine).has_table("audit_log")
    command.upgrade(alembic_config(engine), "head")
    sync_reference_data(engine)
    if not key_ring_available():
        # Only a caller outside the CLI gets here (a benchmark loading tables directly): every
        # CLI command makes or requires the key ring first, and no entry can be chained without it.
        return
    with Session(engine) as session, session.begin():
        audit.open_chain(session, new_database)


def sync_reference_data(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        existing = {p.code: p for p in session.scalars(select(Province))}
        for value in provinces().values:
            row = existing.get(value.code)
            if row is None:
                session.add(Province(code=value.code, name_en=value.label_en, name_km=value.label_km))
            else:
                row.name_en, row.name_km = value.label_en, value.label_km


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
