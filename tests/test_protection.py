"""Protection at rest and the audit chain, on both engines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from ctis.security import audit
from ctis.security.crypto import DecryptionError, KeyRing, load_key_ring
from ctis.storage.models import AuditEntry, Victim
from ctis.storage.repository import Repository
from tests.factories import Fixture

NAMES = ["Sokunthea Zzyzx", "ស្រីពៅ ឈ្មោះសម្ងាត់", "012 345 678"]


def raw_dump(engine: Engine) -> bytes:
    """Everything the database holds, as an attacker with a dump would see it."""
    if engine.dialect.name == "sqlite":
        path = make_url(str(engine.url)).database
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        data = Path(path).read_bytes()
        wal = Path(path + "-wal")
        return data + (wal.read_bytes() if wal.exists() else b"")
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is needed for this test"
    url = engine.url
    args = [pg_dump, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    args += ["-U", url.username or "postgres", url.database or ""]
    out = subprocess.run(args, check=True, capture_output=True)  # noqa: S603 - test database
    return out.stdout


def test_a_raw_dump_holds_no_identifying_value(engine: Engine) -> None:
    f = Fixture()
    f.victim(
        "2024-01-01",
        name_latin=NAMES[0],
        name_khmer=NAMES[1],
        phone=NAMES[2],
        date_of_birth="2001-02-03",
    )
    f.suspect(name_latin="Zzyzx Recruiter", arrest_date="2024-01-02")
    f.save(engine)
    dump = raw_dump(engine)
    for secret in [*NAMES, "Zzyzx", "Recruiter", "2001-02-03"]:
        assert secret.encode() not in dump, secret
    with Session(engine) as s:
        v = s.scalars(select(Victim)).one()
        assert Repository(s).identity(v)["name_khmer"] == NAMES[1]


def test_a_ciphertext_moved_to_another_row_or_column_fails(engine: Engine) -> None:
    f = Fixture()
    f.victim("2024-01-01", name_latin="First Person", external_id="v-a")
    f.victim("2024-01-01", name_latin="Second Person", external_id="v-b")
    f.save(engine)
    with Session(engine) as s, s.begin():
        a = s.scalars(select(Victim).where(Victim.external_id == "v-a")).one()
        s.execute(
            update(Victim)
            .where(Victim.external_id == "v-b")
            .values(name_latin=a.name_latin, name_khmer=a.name_latin)
        )
    with Session(engine) as s:
        b = s.scalars(select(Victim).where(Victim.external_id == "v-b")).one()
        repo = Repository(s)
        with pytest.raises(DecryptionError, match="moved or altered"):
            repo.unseal(b, "name_latin")
        with pytest.raises(DecryptionError):
            repo.unseal(b, "name_khmer")


def test_name_search_through_the_blind_index(engine: Engine) -> None:
    f = Fixture()
    f.victim("2024-01-01", name_latin="Sok Sreymom", name_khmer="សុខ ស្រីមុំ", external_id="v-sok")
    f.victim("2024-01-01", name_latin="Chan Dara", external_id="v-chan")
    f.save(engine)
    ring = load_key_ring()
    with Session(engine) as s:
        for word in ("sok", "SREYMOM", "ស្រីមុំ"):
            token = ring.index_token(word.casefold())
            hits = s.scalars(select(Victim.external_id).where(Victim.name_index.contains(token))).all()
            assert hits == ["v-sok"], word


def test_key_ring_json_round_trip_and_rotation() -> None:
    ring = KeyRing.generate()
    blob = ring.seal("Keo Bopha", "victims", "name_latin", 7)
    rotated = KeyRing.from_json(ring.rotated().to_json())
    assert rotated.active != ring.active
    assert rotated.open(blob, "victims", "name_latin", 7) == "Keo Bopha"
    assert rotated.key_id_of(rotated.seal("x", "victims", "name_latin", 7)) == rotated.active
    with pytest.raises(ValueError, match="malformed"):
        KeyRing.from_json('{"active": "k1", "keys": {}}')


def test_rotate_reseals_every_value_without_changing_records(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctis import services
    from ctis.security.crypto import write_key_file

    ring = load_key_ring()
    key_file = tmp_path / "keys.json"
    write_key_file(ring, key_file)
    monkeypatch.delenv("CTIS_FIELD_KEYS")
    monkeypatch.setenv("CTIS_KEY_FILE", str(key_file))
    f = Fixture()
    f.victim("2024-01-01", name_latin="Rotate Me", name_khmer="បង្វិល", external_id="v-rot")
    f.save(engine)
    new_key, count = services.rotate_keys(engine)
    assert count == 2 and new_key != ring.active
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    with Session(engine) as s:
        v = s.scalars(select(Victim)).one()
        repo = Repository(s)
        assert repo.keys.key_id_of(v.name_latin) == new_key
        assert repo.identity(v)["name_latin"] == "Rotate Me"
        assert v.version == 1


def _tamper(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql))


def test_audit_chain_catches_edits_deletions_reorders_and_truncation(engine: Engine) -> None:
    f = Fixture()
    for i in range(5):
        f.victim("2024-01-01", external_id=f"v-audit-{i}")
    f.save(engine)
    result = audit.verify(engine)
    assert result.ok, result
    with Session(engine) as s:
        head = audit.head(s)
        ids = s.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
    assert head is not None and len(ids) >= 5
    target = ids[-3]

    _tamper(engine, f"UPDATE audit_log SET actor = 'someone-else' WHERE id = {target}")
    bad = audit.verify(engine)
    assert not bad.ok and bad.first_bad == target and "edited" in bad.reason


def test_audit_chain_catches_deletion_and_reorder(engine: Engine) -> None:
    f = Fixture()
    for i in range(4):
        f.victim("2024-01-01", external_id=f"v-chain-{i}")
    f.save(engine)
    with Session(engine) as s:
        ids = s.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
        head = audit.head(s)
    assert head is not None
    # Re-order: swap the content of two entries (ids stay in sequence).
    a, b = ids[-2], ids[-1]
    cols = "at, actor, action, kind, record_id, detail, prev_hash, hash"
    swap = "UPDATE audit_log SET record_id = :record_id, prev_hash = :prev_hash, hash = :hash WHERE id = "
    with engine.begin() as conn:
        ra = conn.execute(text(f"SELECT {cols} FROM audit_log WHERE id = {a}")).one()._mapping
        rb = conn.execute(text(f"SELECT {cols} FROM audit_log WHERE id = {b}")).one()._mapping
        for target, src in ((a, rb), (b, ra)):
            params = {k: src[k] for k in ("record_id", "prev_hash", "hash")}
            conn.execute(text(f"{swap}{target}"), params)
    swapped = audit.verify(engine)
    assert not swapped.ok and swapped.first_bad == a
    # Put it back, then delete an entry in the middle.
    with engine.begin() as conn:
        for target, src in ((a, ra), (b, rb)):
            params = {k: src[k] for k in ("record_id", "prev_hash", "hash")}
            conn.execute(text(f"{swap}{target}"), params)
    assert audit.verify(engine).ok
    _tamper(engine, f"DELETE FROM audit_log WHERE id = {a}")
    deleted = audit.verify(engine)
    assert not deleted.ok and deleted.first_bad == a and "missing" in deleted.reason
    # Truncation of the tail: the chain is valid, but the exported head is gone.
    _tamper(engine, f"DELETE FROM audit_log WHERE id >= {a}")
    assert audit.verify(engine).ok
    truncated = audit.verify(engine, head)
    assert not truncated.ok and "truncated" in truncated.reason


def test_cli_audit_verify_and_head(sqlite_env: Path) -> None:
    from typer.testing import CliRunner

    from ctis import services
    from ctis.cli.main import app

    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    f = Fixture()
    f.victim("2024-01-01", external_id="v-cli")
    f.save(services.engine())
    head = runner.invoke(app, ["audit", "head"])
    path = sqlite_env / "head.json"
    path.write_text(head.stdout, encoding="utf-8")
    assert json.loads(head.stdout)["seq"] >= 1
    ok = runner.invoke(app, ["audit", "verify", "--head", str(path)])
    assert ok.exit_code == 0 and "intact" in ok.stdout
    with services.engine().begin() as conn:
        conn.execute(text("UPDATE audit_log SET action = 'read' WHERE id = 1"))
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and "BROKEN at entry 1" in broken.stderr


# -- the keyed chain: what someone with write access to the database alone can do --------------------


def _plain_rechain(engine: Engine, start: int = 1) -> None:
    """Recompute every entry's hash with plain SHA-256, as an attacker without the key ring can.

    Written from the documented canonical form, not from CTIS's code: this is what a forger does
    after editing or deleting entries, so that each link and hash matches again.
    """
    import hashlib

    with Session(engine) as s, s.begin():
        before = s.scalar(select(AuditEntry.hash).where(AuditEntry.id == start - 1))
        prev = before or audit.GENESIS
        for e in s.scalars(select(AuditEntry).where(AuditEntry.id >= start).order_by(AuditEntry.id)):
            canonical = [e.id, e.at.isoformat(timespec="microseconds"), e.actor, e.action, e.kind,
                         e.record_id, e.detail, prev]  # fmt: skip
            e.prev_hash = prev
            e.hash = hashlib.sha256(
                json.dumps(canonical, ensure_ascii=False, separators=(",", ":")).encode()
            ).hexdigest()
            prev = e.hash


def test_a_log_edited_and_re_chained_without_the_key_is_detected(engine: Engine) -> None:
    f = Fixture()
    for i in range(3):
        f.victim("2024-01-01", external_id=f"v-rechain-{i}")
    f.save(engine)
    assert audit.verify(engine).ok
    with Session(engine) as s:
        target = s.scalars(select(AuditEntry.id).where(AuditEntry.action == "create")).first()
    _tamper(engine, f"UPDATE audit_log SET actor = 'nobody' WHERE id = {target}")
    _plain_rechain(engine, start=target or 1)  # only from the edit on
    forged = audit.verify(engine)
    assert not forged.ok and forged.first_bad == target, forged
    assert "without the audit key" in forged.reason
    _plain_rechain(engine)  # the whole log
    forged = audit.verify(engine)
    assert not forged.ok and forged.first_bad == 1, forged
    assert "without the audit key" in forged.reason


def test_an_emptied_log_is_reported_and_so_is_one_written_again(engine: Engine) -> None:
    f = Fixture()
    f.victim("2024-01-01", external_id="v-emptied")
    f.save(engine)
    with Session(engine) as s:
        first = s.get(AuditEntry, 1)
        assert first is not None and first.action == audit.START  # every chain begins with it
    _tamper(engine, "DELETE FROM audit_log")
    emptied = audit.verify(engine)
    assert not emptied.ok and "emptied" in emptied.reason and "BROKEN" in str(emptied)
    # The application goes on writing (any visitor can cause a failed sign-in): still reported.
    with Session(engine) as s, s.begin():
        audit.record(s, "someone", "sign_in.failed")
    rewritten = audit.verify(engine)
    assert not rewritten.ok and rewritten.first_bad == 1 and "emptied" in rewritten.reason
    # Only a new database gets a start entry; a later migration does not restart an emptied log.
    from ctis.storage.db import migrate

    migrate(engine)
    assert not audit.verify(engine).ok


def test_a_chain_written_before_keying_keeps_verifying_behind_the_keyed_marker(engine: Engine) -> None:
    from ctis.storage.db import migrate

    f = Fixture()
    f.victim("2024-01-01", external_id="v-legacy")
    f.save(engine)
    _plain_rechain(engine)  # what a CTIS older than the keyed chain wrote
    unkeyed = audit.verify(engine)
    assert not unkeyed.ok and "no entry is keyed" in unkeyed.reason
    with Session(engine) as s:
        legacy = s.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1))
    migrate(engine)  # the upgrade closes the old part with a keyed marker
    with Session(engine) as s:
        marker = s.get(AuditEntry, (legacy or 0) + 1)
        assert marker is not None and marker.action == audit.KEYED
    g = Fixture()
    g.victim("2024-01-02", external_id="v-after-keying")
    g.save(engine)
    result = audit.verify(engine)
    assert result.ok, result
    # Plain entries after the keyed part began are forgeries; so is an edit of the old part.
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_log SET actor = 'x' WHERE id = {legacy}"))
    _plain_rechain(engine)
    assert not audit.verify(engine).ok


def test_a_ring_without_an_audit_key_gets_the_same_one_on_every_load() -> None:
    ring = KeyRing.generate()
    old = json.loads(ring.to_json())
    del old["audit_key"]  # a key file written before rings held the audit key
    first, again = KeyRing.from_json(json.dumps(old)), KeyRing.from_json(json.dumps(old))
    assert first.audit_key == again.audit_key and len(first.audit_key) == 32
    assert first.audit_key not in (ring.audit_key, ring.index_key)
    assert KeyRing.from_json(first.to_json()).audit_key == first.audit_key  # and keeps it once written
    assert KeyRing.from_json(first.rotated().to_json()).audit_key == first.audit_key


def test_verify_without_a_head_says_that_a_cut_end_goes_unseen(engine: Engine) -> None:
    with Session(engine) as s:
        head = audit.head(s)
    plain = str(audit.verify(engine))
    assert "intact" in plain and "--head" in plain
    assert "--head" not in str(audit.verify(engine, head))


# -- secrets at rest -------------------------------------------------------------------------------


def _cli(*args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from ctis.cli.main import app

    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_a_missing_key_file_stops_every_command_instead_of_making_a_new_ring(
    sqlite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from ctis import services

    monkeypatch.delenv("CTIS_FIELD_KEYS")
    key_file = sqlite_env / "var" / "keys.json"
    assert _cli("init")[0] == 0 and key_file.exists()  # a new database gets its key ring
    f = Fixture()
    f.victim("2024-01-01", name_latin="Keyed Person", external_id="v-keys")
    f.save(services.engine())
    key_file.unlink()
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served without a key ring"))
    for args in (["report", "--period", "2024"], ["audit", "verify"], ["export", "victims"],
                 ["init"], ["demo", "--if-empty"], ["serve"]):  # fmt: skip
        code, _out, err = _cli(*args)
        assert code == 1 and str(key_file) in err and "missing" in err, (args, err)
    assert not key_file.exists()  # no silent new ring
    from ctis.security.crypto import KeyRingMissing

    with pytest.raises(KeyRingMissing, match=r"Restore keys\.json"):
        load_key_ring()


def test_the_database_wal_keys_accounts_and_backups_are_private(
    sqlite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from ctis import services

    monkeypatch.delenv("CTIS_FIELD_KEYS")
    old_umask = os.umask(0o022)  # the usual default, which would leave files world-readable
    try:
        assert _cli("init")[0] == 0
        services.create_demo_accounts()
        data = sqlite_env / "var"
        db = data / "ctis.db"
        with services.engine().connect() as conn:  # while connected, SQLite keeps -wal and -shm
            conn.exec_driver_sql("SELECT count(*) FROM audit_log").scalar()
            side = [Path(f"{db}-wal"), Path(f"{db}-shm")]
            assert all(p.exists() for p in side)
            assert [_mode(p) for p in side] == ["0o600", "0o600"]
        assert _mode(data) == "0o700"
        assert _mode(db) == _mode(data / "keys.json") == _mode(data / "demo-accounts.txt") == "0o600"
        assert _cli("backup", str(sqlite_env / "out" / "ctis.backup"))[0] == 0
        assert _mode(sqlite_env / "out" / "ctis.backup") == "0o600"
    finally:
        os.umask(old_umask)
