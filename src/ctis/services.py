"""Application services shared by every front end.

The CLI (and later the web application) call these functions rather than
touching storage or the registry directly, so that what a command does and
what a page does cannot drift apart.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ctis.config import get_settings
from ctis.storage.db import make_engine, migrate
from ctis.storage.models import MODELS


@cache
def engine() -> Engine:
    return make_engine(get_settings().database_url)


def init_database(eng: Engine | None = None) -> None:
    """Create or migrate the database; a new one also gets its key ring (see :func:`check_key_ring`)."""
    eng = eng or engine()
    check_key_ring(eng, create=True)
    migrate(eng)


def check_key_ring(eng: Engine | None = None, create: bool = False) -> None:
    """Refuse to go on when the database exists but its key ring does not.

    A new key ring is made only for a new database (``create``, i.e. ``ctis init``): for an
    existing one it would open none of the sealed names and fail the audit chain, so the
    operator is told which file to restore instead (:class:`~ctis.security.crypto.KeyRingMissing`).
    """
    from ctis.security.crypto import KeyRingMissing, key_ring_available, load_key_ring, missing_message
    from ctis.storage.db import is_initialised

    if key_ring_available():
        return
    if is_initialised(eng or engine()):
        raise KeyRingMissing(missing_message())
    if create:
        load_key_ring(create=True)


def record_counts(eng: Engine | None = None) -> dict[str, int]:
    with Session(eng or engine()) as session:
        return {
            kind: int(session.execute(select(func.count()).select_from(model)).scalar_one())  # type: ignore[arg-type]
            for kind, model in MODELS.items()
        }


def is_empty(eng: Engine | None = None) -> bool:
    return not any(record_counts(eng).values())


def clear_records(eng: Engine | None = None, actor: str = "system") -> None:
    """Delete every record and account (``ctis demo --reset``).

    Reference tables stay, and so does the audit log: the reset itself is
    appended to it, so that a wiped database is never mistaken for an empty one.
    """
    from ctis.security import audit
    from ctis.storage.models import Base
    from ctis.storage.repository import bump_data_version

    keep = {"provinces", "alembic_version", "audit_log"}
    with Session(eng or engine()) as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in keep | {"data_version"}:
                session.execute(table.delete())
        bump_data_version(session)
        audit.record(session, actor, "reset")


def export_rows(kind: str, actor: str, eng: Engine | None = None) -> list[dict[str, str]]:
    """Every record of ``kind`` in template columns; the export itself is audited."""
    from ctis.security import audit
    from ctis.storage.db import session_scope
    from ctis.storage.repository import Repository

    with session_scope(eng or engine()) as session:
        rows = list(Repository(session, actor=actor).export_rows(kind))
        audit.record(session, actor, "export", kind, None, {"rows": len(rows)})
    return rows


def rotate_keys(eng: Engine | None = None) -> tuple[str, int]:
    """Make a new active key and reseal every identifying value with it.

    The new key ring (old keys included) is written *before* any value is
    resealed, so that a failure half-way leaves every value readable.  Values
    are rewritten with Core statements: rotation changes no record, so no
    version is bumped.  Returns the new key id and the number of values resealed.
    """
    import os

    from sqlalchemy import update

    from ctis.security import audit
    from ctis.security.crypto import key_file_path, load_key_ring, write_key_file
    from ctis.storage.db import session_scope
    from ctis.storage.models import SEALED_COLUMNS, Suspect, Victim

    if os.environ.get("CTIS_FIELD_KEYS"):
        raise RuntimeError(
            "the key ring comes from CTIS_FIELD_KEYS; rotate it with CTIS_KEY_FILE instead, "
            "or replace the variable's value with a rotated ring"
        )
    old = load_key_ring()
    new = old.rotated()
    write_key_file(new, key_file_path())
    count = 0
    with session_scope(eng or engine()) as session:
        for model in (Victim, Suspect):
            table = model.__table__
            query = select(table.c.id, *[table.c[c] for c in SEALED_COLUMNS])
            for row in session.execute(query).all():
                values = {}
                for column in SEALED_COLUMNS:
                    blob = getattr(row, column)
                    if blob is not None:
                        plain = new.open(bytes(blob), table.name, column, row.id)
                        values[column] = new.seal(plain, table.name, column, row.id)
                if values:
                    session.execute(update(table).where(table.c.id == row.id).values(**values))
                    count += len(values)
        audit.record(session, "keys", "rotate", None, None, {"key": new.active, "values": count})
    return new.active, count


DEMO_ROLES = [
    # username, role, agency external id (None: no agency), scope
    ("admin", "administrator", "AG-NCCT", "all"),
    ("officer", "data_officer", "AG-NCCT", "all"),
    ("police", "investigator", "AG-PS-POL", "own"),
    ("social", "social_worker", "AG-NGO-LOTUS", "own"),
    ("analyst", "analyst", "AG-NCCT", "all"),
    ("viewer", "viewer", "AG-AHTJP", "own"),
]


def demo_accounts_path() -> Path:
    return get_settings().data_dir / "demo-accounts.txt"


def create_demo_accounts(eng: Engine | None = None) -> list[tuple[str, str, str]]:
    """One account per role with a random password, written to a 0600 file beside the database.

    Passwords are generated on each machine, never stored in the repository.
    """
    import os
    import secrets

    from ctis import accounts
    from ctis.storage.models import Agency, User

    created = []
    with Session(eng or engine()) as session, session.begin():
        for username, role, agency, scope in DEMO_ROLES:
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                continue
            agency_id = session.scalar(select(Agency.id).where(Agency.external_id == agency))
            password = "-".join(secrets.token_urlsafe(4) for _ in range(3))
            accounts.create_user(
                session,
                username,
                password,
                role,
                display_name=f"Demo {role.replace('_', ' ')}",
                agency_id=agency_id,
                scope=scope,
            )
            created.append((username, role, password))
    if created:
        path = demo_accounts_path()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            for username, role, password in created:
                fh.write(f"{username:10} {password:20} {role}\n")
    return created
