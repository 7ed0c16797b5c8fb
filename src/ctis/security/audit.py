"""The tamper-evident audit log.

Every read and write of a person record, every export and every sign-in is
appended as one row of ``audit_log``, in the same transaction as the change it
records, so a change cannot be committed without its entry (nor an entry
without its change).

Entries form a hash chain: each stores the SHA-256 of its own content together
with its sequence number and the previous entry's hash.  Editing an entry,
deleting one, or swapping two breaks the chain at that point, and
:func:`verify` names the first broken entry.  Truncating the *end* of the log
leaves a valid but shorter chain; to catch that, the latest head (sequence
number and hash) is exported outside the database (``ctis audit head``) and
:func:`verify` checks that the exported head is still in the chain.

Details never hold identifying values: for a write they name the fields that
changed, not their contents.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from ctis.storage.models import AuditEntry

GENESIS = "0" * 64


def _digest(
    seq: int, at: datetime, actor: str, action: str, kind: str | None,
    record_id: int | None, detail: str | None, prev_hash: str,
) -> str:  # fmt: skip
    canonical = json.dumps(
        [
            seq,
            at.isoformat(timespec="microseconds"),
            actor,
            action,
            kind,
            record_id,
            detail,
            prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_chain(session: Session) -> None:
    """Serialise appenders so two transactions cannot fork the chain.

    Called before the head is read: two appenders that both read head *n* would
    both write entry *n + 1* (a unique-key failure, or a fork on a database that
    allowed it).  On PostgreSQL a transaction-scoped advisory lock queues them.
    SQLite has one writer at a time, but the Python driver opens the transaction
    only at the first write, so a head read before it is unguarded: a no-op
    ``UPDATE`` takes the database's write lock first (waiting up to the busy
    timeout, see ``storage.db.make_engine``), and the head read after it is the
    latest.  It is a statement rather than ``BEGIN IMMEDIATE`` because it also
    works inside a transaction that has already begun, and it changes no row.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
    elif dialect == "sqlite":
        session.execute(text("UPDATE audit_log SET id = id WHERE 0"))


@dataclass(frozen=True)
class Event:
    """What happened, before it is chained."""

    action: str
    kind: str | None = None
    record_id: int | None = None
    detail: dict[str, Any] | None = None


def record_many(session: Session, actor: str, events: list[Event]) -> list[AuditEntry]:
    """Append entries in the caller's transaction, chained in order."""
    if not events:
        return []
    _lock_chain(session)
    last = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    seq, prev = (last.id, last.hash) if last else (0, GENESIS)
    at = datetime.now(UTC).replace(tzinfo=None)
    entries = []
    for event in events:
        seq += 1
        detail = json.dumps(event.detail, ensure_ascii=False, sort_keys=True) if event.detail else None
        digest = _digest(seq, at, actor, event.action, event.kind, event.record_id, detail, prev)
        entries.append(
            AuditEntry(
                id=seq,
                at=at,
                actor=actor,
                action=event.action,
                kind=event.kind,
                record_id=event.record_id,
                detail=detail,
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    session.add_all(entries)
    session.flush()
    return entries


def record(
    session: Session,
    actor: str,
    action: str,
    kind: str | None = None,
    record_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction."""
    return record_many(session, actor, [Event(action, kind, record_id, detail)])[0]


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str = ""
    head: tuple[int, str] | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.entries} entries, head {self.head}"
        return f"audit chain BROKEN at entry {self.first_bad}: {self.reason}"


def head(session: Session) -> tuple[int, str] | None:
    row = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    return (row.id, row.hash) if row else None


def _check(e: AuditEntry, expected_seq: int, prev_hash: str, count: int) -> Verification | None:
    if e.id != expected_seq:
        return Verification(False, count, expected_seq, f"entry {expected_seq} is missing (next is {e.id})")
    if e.prev_hash != prev_hash:
        return Verification(False, count, e.id, "its link to the previous entry does not match")
    if _digest(e.id, e.at, e.actor, e.action, e.kind, e.record_id, e.detail, e.prev_hash) != e.hash:
        return Verification(False, count, e.id, "its content does not match its hash (edited)")
    return None


def verify(engine: Engine, expected_head: tuple[int, str] | None = None) -> Verification:
    """Walk the chain in sequence order; report the first entry that does not fit."""
    prev_hash, expected_seq, count, last = GENESIS, 1, 0, None
    problem: Verification | None = None
    with Session(engine) as session:
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=2000))
        try:
            for (e,) in rows:
                problem = _check(e, expected_seq, prev_hash, count)
                if problem:
                    break
                prev_hash, expected_seq, count, last = e.hash, e.id + 1, count + 1, (e.id, e.hash)
        finally:
            rows.close()
    if problem:
        return problem
    if expected_head is not None:
        seq, digest = expected_head
        if last is None or last[0] < seq:
            missing = (last[0] + 1) if last else 1
            reason = f"the log ends before the exported head {seq} (truncated)"
            return Verification(False, count, missing, reason)
        with Session(engine) as session:
            stored = session.get(AuditEntry, seq)
        if stored is None or stored.hash != digest:
            return Verification(False, count, seq, "the exported head is not in the chain")
    return Verification(True, count, head=last)
