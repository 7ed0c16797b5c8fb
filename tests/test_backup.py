"""Backup and restore, on SQLite and PostgreSQL.

The promise under test: what a backup holds comes back exactly (every table's
row count and content hash), a file that is not a backup changes nothing, and
a SQLite backup taken while the application writes is one consistent moment.
The ``engine`` fixture is shared by the whole session, so every test here also
checks, implicitly, that the database is still usable after a restore.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, func, select, update
from sqlalchemy.orm import Session

from ctis.storage import backup as backup_mod
from ctis.storage.backup import BackupError, backup, fingerprint, restore
from ctis.storage.db import make_engine
from ctis.storage.models import Agency, Assistance, Referral, Victim
from tests.factories import Fixture


def _populate(engine: Engine) -> None:
    f = Fixture()
    police = f.agency(name_en="Anti-trafficking police", agency_kind="police")
    ngo = f.agency(name_en="Shelter NGO", name_km="អង្គការ", agency_kind="ngo")
    op1 = f.operation("2024-02-01", province="KH-18", lead_agency=police.external_id)
    op2 = f.operation("2024-05-01", province="KH-12", description="Second raid")
    case = f.case(op1, op2, agency=police.external_id)
    sus = f.suspect(name_latin="Sok Dara", arrest_date="2024-02-01", case=case.external_id, age=40)
    v1 = f.victim(
        "2024-02-01",
        op1,
        name_latin="Chan Sophea",
        name_khmer="ចាន់ សុភា",
        date_of_birth="2008-03-10",
        case=case.external_id,
        exploitation_type="forced_labour",
    )
    v2 = f.victim("2024-05-01", op1, op2, age=25, phone="+855 12 345 678")
    f.prosecution(
        sus,
        charged_on="2024-03-01",
        outcome="convicted",
        verdict_on="2024-09-01",
        sentence_months=60,
        suspended=False,
    )
    f.assistance(v1, assistance_type="shelter", start_date="2024-02-02", agency=ngo.external_id)
    f.assistance(v2, assistance_type="medical", start_date="2024-05-02")
    f.referral(v1, ngo, referred_on="2024-02-02", consent=True, consent_date="2024-02-02")
    f.referral(v2, ngo, referred_on="2024-05-02", consent=False)
    f.save(engine)


def _modify(engine: Engine) -> None:
    """Delete some rows, insert others and update one, as a bad import might."""
    with Session(engine) as session, session.begin():
        session.execute(delete(Referral))
        session.execute(delete(Assistance).where(Assistance.assistance_type == "medical"))
        session.execute(update(Agency).where(Agency.agency_kind == "ngo").values(name_en="Renamed NGO"))
    f = Fixture()
    f.agency(name_en="Agency added after the backup")
    f.victim("2024-07-01", name_latin="Added Later")
    f.save(engine)


def _file_fingerprint(path: Path) -> dict[str, tuple[int, str]]:
    """Fingerprint of a SQLite backup file, opened without the app's pragmas."""
    other = create_engine(f"sqlite:///{path}")
    try:
        return fingerprint(other)
    finally:
        other.dispose()


def test_round_trip_restores_every_table_exactly(engine: Engine, tmp_path: Path) -> None:
    _populate(engine)
    before = fingerprint(engine)
    assert before["victims"][0] == 2
    assert before["referrals"][0] == 2
    assert before["provinces"][0] > 0  # reference tables are covered too
    assert "alembic_version" in before

    out = backup(engine, tmp_path / "nested" / "ctis.backup")
    assert out == (tmp_path / "nested" / "ctis.backup").resolve()
    magic = b"SQLite format 3\x00" if engine.dialect.name == "sqlite" else b"PGDMP"
    assert out.read_bytes().startswith(magic)
    assert [p.name for p in out.parent.iterdir()] == ["ctis.backup"]  # no temp files left

    _modify(engine)
    changed = fingerprint(engine)
    assert changed != before
    for name in ("referrals", "assistance", "agencies", "victims"):
        assert changed[name] != before[name], name
    assert changed["provinces"] == before["provinces"]

    restore(engine, out)
    assert fingerprint(engine) == before

    # The shared engine still works: ORM reads and new writes after the restore.
    with Session(engine) as session:
        names = set(session.scalars(select(Agency.name_en)))
        assert names == {"Anti-trafficking police", "Shelter NGO"}
        assert session.scalar(select(func.count()).select_from(Victim)) == 2
    f = Fixture()
    f.victim("2024-08-01", name_latin="After restore")
    f.save(engine)
    assert fingerprint(engine)["victims"][0] == 3


def test_backup_replaces_an_existing_file_atomically(engine: Engine, tmp_path: Path) -> None:
    _populate(engine)
    target = tmp_path / "ctis.backup"
    target.write_bytes(b"an older backup")
    backup(engine, target)
    assert target.read_bytes()[:5] in {b"SQLit", b"PGDMP"}
    assert [p.name for p in tmp_path.iterdir()] == ["ctis.backup"]


def test_restore_refuses_files_that_are_not_backups(engine: Engine, tmp_path: Path) -> None:
    _populate(engine)
    good = backup(engine, tmp_path / "good.backup")
    before = fingerprint(engine)

    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a backup\n")
    empty = tmp_path / "empty.backup"
    empty.write_bytes(b"")
    other_sqlite = tmp_path / "other.db"
    with sqlite3.connect(other_sqlite) as conn:
        conn.execute("CREATE TABLE victims (id INTEGER PRIMARY KEY)")
    conn.close()
    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(good.read_bytes()[: max(len(good.read_bytes()) // 2, 100)])
    if engine.dialect.name == "sqlite":
        wrong_kind = tmp_path / "pg.dump"
        wrong_kind.write_bytes(b"PGDMP\x01\x0e\x00" + b"\x00" * 64)
    else:
        wrong_kind = other_sqlite

    for bad in (text_file, empty, other_sqlite, truncated, wrong_kind, tmp_path / "missing"):
        with pytest.raises(BackupError) as err:
            restore(engine, bad)
        assert str(err.value), bad
        assert fingerprint(engine) == before, bad

    with pytest.raises(BackupError, match="is a backup of"):
        restore(engine, wrong_kind)
    with pytest.raises(BackupError, match="not a CTIS backup"):
        restore(engine, text_file)


def test_sqlite_live_file_is_never_used_as_a_backup(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    _populate(engine)
    before = fingerprint(engine)
    live = Path(str(engine.url.database))
    for action in (backup, restore):
        for path in (live, live.with_name(live.name + "-wal")):
            with pytest.raises(BackupError, match="live database itself"):
                action(engine, path)
    assert fingerprint(engine) == before


def test_sqlite_backup_during_open_write_transaction(engine: Engine, tmp_path: Path) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's online backup API only")
    _populate(engine)
    before = fingerprint(engine)
    database = engine.url.database
    assert database

    writer = sqlite3.connect(database, isolation_level=None, timeout=1)
    try:
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock until COMMIT
        writer.execute("DELETE FROM referrals")
        writer.execute("UPDATE agencies SET name_en = 'uncommitted'")
        out = backup(engine, tmp_path / "during-write.backup")
        writer.execute("COMMIT")
    finally:
        writer.close()

    with sqlite3.connect(out) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # A self-contained file: no WAL side file is needed to read it.
        assert check.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    check.close()
    # The backup holds the last committed state, without the open transaction's changes.
    assert _file_fingerprint(out) == before
    assert fingerprint(engine) != before
    restore(engine, out)
    assert fingerprint(engine) == before


@contextlib.contextmanager
def _session_holding_a_lock(engine: Engine) -> Iterator[None]:
    """Another connection with an open transaction, as a stuck web request would leave."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        assert database
        holder = sqlite3.connect(database, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            holder.execute("UPDATE agencies SET name_en = name_en")
            yield
            holder.execute("ROLLBACK")
        finally:
            holder.close()
    else:
        other = create_engine(engine.url)
        try:
            with other.connect() as conn, conn.begin() as tx:
                conn.execute(select(func.count()).select_from(Victim))  # then idle in transaction
                yield
                tx.rollback()
        finally:
            other.dispose()


def test_restore_blocked_by_another_session_gives_up_and_changes_nothing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session left open elsewhere must not make the restore hang, nor half-apply it."""
    _populate(engine)
    saved = fingerprint(engine)
    out = backup(engine, tmp_path / "ctis.backup")
    _modify(engine)
    modified = fingerprint(engine)
    monkeypatch.setattr(backup_mod, "SQLITE_LOCK_TIMEOUT_S", 1.0)
    monkeypatch.setattr(backup_mod, "PG_LOCK_TIMEOUT_S", 1.0)

    if engine.dialect.name == "sqlite":
        expected = "locked for more than 1 s"
    else:
        expected = r"other sessions using the database \(pid \d+ .*idle in transaction"
    with _session_holding_a_lock(engine), pytest.raises(BackupError, match=expected):
        restore(engine, out)
    assert fingerprint(engine) == modified
    restore(engine, out)
    assert fingerprint(engine) == saved


def test_sqlite_backups_while_another_engine_commits(engine: Engine, tmp_path: Path) -> None:
    """Each backup is one moment: an agency and a victim committed together are never split."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's online backup API only")
    database = engine.url.database
    assert database
    other = make_engine(f"sqlite:///{database}")
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            while not stop.is_set():
                f = Fixture()
                f.agency(name_en="Concurrent")
                f.victim("2024-01-01")
                f.save(other)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        outs = [backup(engine, tmp_path / f"b{i}.backup") for i in range(8)]
    finally:
        stop.set()
        thread.join(timeout=30)
        other.dispose()
    assert not errors, errors
    for out in outs:
        counts = {name: count for name, (count, _) in _file_fingerprint(out).items()}
        assert counts["agencies"] == counts["victims"], out


def test_fingerprint_is_order_independent_and_sensitive(engine: Engine) -> None:
    _populate(engine)
    first = fingerprint(engine)
    assert fingerprint(engine) == first
    with Session(engine) as session, session.begin():
        session.execute(update(Victim).where(Victim.age == 25).values(age=26))
    changed = fingerprint(engine)
    assert changed["victims"][0] == first["victims"][0]
    assert changed["victims"][1] != first["victims"][1]
    assert {k: v for k, v in changed.items() if k != "victims"} == {
        k: v for k, v in first.items() if k != "victims"
    }


def test_canonical_values() -> None:
    from datetime import date, datetime
    from decimal import Decimal

    canon = backup_mod._canonical
    assert canon(True) == 1 and canon(False) == 0
    assert canon(b"\x00\xff") == "00ff" and canon(memoryview(b"\x01")) == "01"
    assert canon(date(2024, 2, 29)) == "2024-02-29"
    assert canon(datetime(2024, 2, 29, 13, 5, 1, 7)) == "2024-02-29T13:05:01.000007"
    assert canon(Decimal("1.50")) == "1.50"
    assert canon(None) is None and canon(7) == 7 and canon("ស") == "ស"


# -- PostgreSQL tools ---------------------------------------------------------


def _require_pg(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("pg_dump / pg_restore only")


def test_pg_password_travels_in_the_environment_only(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_pg(engine)
    secret = "s3cret-Pass"
    # The test server trusts local connections, so any password is accepted.
    with_password = create_engine(engine.url.set(password=secret))
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        calls.append((list(argv), dict(kwargs.get("env") or {})))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(backup_mod.subprocess, "run", spy)
    try:
        out = backup(with_password, tmp_path / "pg.backup")
        restore(with_password, out)
    finally:
        with_password.dispose()
    dumps = [c for c in calls if Path(c[0][0]).name in {"pg_dump", "pg_restore"}]
    assert any("-Fc" in argv for argv, _ in dumps)
    assert any("--single-transaction" in argv for argv, _ in dumps)
    for argv, env in dumps:
        assert Path(argv[0]).is_absolute()
        assert not any(secret in a for a in argv), argv
        if "--version" not in argv:
            assert env["PGPASSWORD"] == secret


def test_pg_missing_tools_give_an_actionable_error(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_pg(engine)
    monkeypatch.setattr(backup_mod, "PG_BIN_DIRS", ())
    monkeypatch.setattr(backup_mod.shutil, "which", lambda _name: None)
    with pytest.raises(BackupError, match=r"pg_dump was not found.*postgresql-client"):
        backup(engine, tmp_path / "pg.backup")
    assert not (tmp_path / "pg.backup").exists()


def test_pg_too_old_tools_are_refused(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_pg(engine)
    monkeypatch.setattr(backup_mod, "_tool_major", lambda _path: 9)
    with pytest.raises(BackupError, match=r"only older pg_dump was found"):
        backup(engine, tmp_path / "pg.backup")
    assert list(tmp_path.iterdir()) == []


def test_cli_backup_and_restore_round_trip_with_audit(sqlite_env: Path) -> None:
    from typer.testing import CliRunner

    from ctis import services
    from ctis.cli.main import app
    from tests.factories import Fixture

    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    f = Fixture()
    f.victim("2024-01-01", external_id="v-backup", name_latin="Backup Person")
    f.save(services.engine())
    before = fingerprint(services.engine())
    target = sqlite_env / "ctis.backup"
    made = runner.invoke(app, ["backup", str(target)])
    assert made.exit_code == 0 and "key ring" in made.stdout
    g = Fixture()
    g.victim("2024-01-02", external_id="v-after-backup")
    g.save(services.engine())
    assert fingerprint(services.engine()) != before
    done = runner.invoke(app, ["restore", str(target)])
    assert done.exit_code == 0, done.stdout
    assert "intact" in done.stdout
    after = fingerprint(services.engine())
    assert {t: v for t, v in after.items() if t != "audit_log"} == {
        t: v for t, v in before.items() if t != "audit_log"
    }
    assert after["audit_log"][0] == before["audit_log"][0] + 1  # the restore itself is logged
    bad = runner.invoke(app, ["restore", str(sqlite_env / "nothing.bin")])
    assert bad.exit_code == 1


def test_cli_backups_are_audited_private_and_restores_need_the_key_ring(
    sqlite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session
    from typer.testing import CliRunner

    from ctis import services
    from ctis.cli.main import app
    from ctis.security import audit
    from ctis.storage.models import AuditEntry

    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    target = sqlite_env / "kept" / "ctis.backup"
    assert runner.invoke(app, ["backup", str(target)]).exit_code == 0
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    with Session(services.engine()) as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert (last.action, json.loads(last.detail or "{}")) == ("backup", {"file": "ctis.backup"})
    assert audit.verify(services.engine()).ok
    # A fresh machine without the key ring: the restore is refused before anything is written.
    monkeypatch.delenv("CTIS_FIELD_KEYS")
    monkeypatch.setenv("CTIS_DATA_DIR", str(sqlite_env / "elsewhere"))
    services.engine.cache_clear()
    refused = runner.invoke(app, ["restore", str(target)])
    assert refused.exit_code == 1 and "key ring" in refused.stderr and "keys.json" in refused.stderr
    assert not (sqlite_env / "elsewhere" / "ctis.db").exists()
