"""The tamper-evident audit log.

Every read and write of a person record, every export and every sign-in is
appended as one row of ``audit_log``, in the same transaction as the change it
records, so a change cannot be committed without its entry (nor an entry
without its change).

Entries form a keyed hash chain: each stores the HMAC-SHA-256, under the audit
key of the key ring (:mod:`ctis.security.crypto`, kept outside the database),
of its own content together with its sequence number and the previous entry's
hash.  Editing an entry, deleting one, or swapping two breaks the chain at that
point, and :func:`verify` names the first broken entry.  Because the hash is
keyed, someone who can write to the database but does not hold the key ring
cannot re-chain the log after editing it: a plain SHA-256 chain, as they could
compute it, does not verify.

A new database's chain begins with a ``audit.start`` entry, written when CTIS
creates the database; an emptied log, or one emptied and then written again,
lacks it and is reported.  Entries written before the chain was keyed (plain
SHA-256) still verify as a prefix, closed by the ``audit.keyed`` entry that the
first migration under the keyed chain appends.  Truncating the *end* of the log
leaves a valid but shorter chain; to catch that, the latest head (sequence
number and hash) is exported outside the database (``ctis audit head``) and
:func:`verify` checks that the exported head is still in the chain.

Details never hold identifying values: for a write they name the fields that
changed, not their contents.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from ctis.security.crypto import KeyRing, key_file_path, load_key_ring
from ctis.storage.models import AuditEntry

GENESIS = "0" * 64
#: The first entry of every chain CTIS creates; without it the log was emptied.
START = "audit.start"
#: The entry that closes a prefix written before the chain was keyed.
KEYED = "audit.keyed"

_ring_cache: tuple[tuple[object, ...], KeyRing] | None = None


def _chain_ring() -> KeyRing:
    """The key ring, read again only when its source changes (entries are chained one by one)."""
    global _ring_cache
    inline = os.environ.get("CTIS_FIELD_KEYS")
    if inline:
        source: tuple[object, ...] = ("env", inline)
    else:
        path = key_file_path()
        try:
            st = path.stat()
        except FileNotFoundError:
            return load_key_ring()  # raises KeyRingMissing, naming the file
        source = ("file", str(path), st.st_mtime_ns, st.st_size)
    cached = _ring_cache
    if cached is not None and cached[0] == source:
        return cached[1]
    ring = load_key_ring()
    _ring_cache = (source, ring)
    return ring


def key_id(ring: KeyRing | None = None) -> str:
    """A public name of the audit key (not the key), recorded in the chain's start entry."""
    return (ring or _chain_ring()).audit_mac(b"ctis audit key id")[:12]


def _canonical(
    seq: int, at: datetime, actor: str, action: str, kind: str | None,
    record_id: int | None, detail: str | None, prev_hash: str,
) -> bytes:  # fmt: skip
    return json.dumps(
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
    ).encode()


def _digest(
    seq: int, at: datetime, actor: str, action: str, kind: str | None,
    record_id: int | None, detail: str | None, prev_hash: str,
) -> str:  # fmt: skip
    """The entry's keyed hash: HMAC-SHA-256 under the ring's audit key."""
    return _chain_ring().audit_mac(_canonical(seq, at, actor, action, kind, record_id, detail, prev_hash))


def _plain_digest(e: AuditEntry) -> str:
    """The unkeyed SHA-256 that entries had before the chain was keyed (and a forger can compute)."""
    canonical = _canonical(e.id, e.at, e.actor, e.action, e.kind, e.record_id, e.detail, e.prev_hash)
    return hashlib.sha256(canonical).hexdigest()


def _locked_head(session: Session) -> tuple[int, str] | None:
    """The chain's head (id and hash), read while holding the chain's lock; None for an empty log.

    The lock serialises appenders so two transactions cannot fork the chain: two
    that both read head *n* would both write entry *n + 1* (a unique-key failure,
    or a fork on a database that allowed it).

    On PostgreSQL a transaction-scoped advisory lock queues them, and the head is
    read by a statement of its own: under READ COMMITTED each statement sees the
    data as of its start, so a read in the locking statement could be stale.

    SQLite has one writer at a time, but the Python driver opens the transaction
    only at the first write, so a plain head read would be unguarded.  Reading the
    head *through* a write does both in one statement: the ``UPDATE`` takes the
    database's write lock before it reads (waiting up to the busy timeout, see
    ``storage.db.make_engine``), rewrites the head with its own values and returns
    it.  One statement rather than a no-op lock and a read: this runs on every
    audited request.  An empty log returns no row, and the lock is held all the same.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        row = session.execute(
            text(
                "UPDATE audit_log SET id = id WHERE id = (SELECT max(id) FROM audit_log) "
                "RETURNING id, hash"
            )
        ).first()
        return (row[0], row[1]) if row else None
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
    last = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    return (last.id, last.hash) if last else None


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
    head = _locked_head(session)
    seq, prev = head if head else (0, GENESIS)
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
    #: Whether an exported head was checked; without one a log cut short at its end looks complete.
    head_checked: bool = False

    def __str__(self) -> str:
        if self.ok:
            text = f"audit chain intact: {self.entries} entries, head {self.head}"
            if not self.head_checked:
                text += (
                    " (entries removed from the end cannot be detected without an exported head:"
                    " keep 'ctis audit head' outside the database and verify with --head)"
                )
            return text
        return f"audit chain BROKEN at entry {self.first_bad}: {self.reason}"


def head(session: Session) -> tuple[int, str] | None:
    """The latest entry's sequence number and keyed hash, to export outside the database."""
    row = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    return (row.id, row.hash) if row else None


def _check(
    e: AuditEntry, expected_seq: int, prev_hash: str, count: int, keyed_before: bool
) -> tuple[Verification | None, bool]:
    """The problem with one entry (or None), and whether the entry is keyed.

    Plain SHA-256 entries are accepted only before the first keyed one: they are what CTIS wrote
    before the chain was keyed, and what someone without the key would write when re-chaining.
    """
    def bad(seq: int, reason: str) -> tuple[Verification, bool]:
        return Verification(False, count, seq, reason), False

    if e.id != expected_seq:
        return bad(expected_seq, f"entry {expected_seq} is missing (next is {e.id})")
    if e.prev_hash != prev_hash:
        return bad(e.id, "its link to the previous entry does not match")
    if _digest(e.id, e.at, e.actor, e.action, e.kind, e.record_id, e.detail, e.prev_hash) == e.hash:
        if e.id == 1 and e.action != START:
            reason = f"the log does not begin with its {START!r} entry: it was emptied and written again"
            return bad(1, reason)
        if e.id > 1 and not keyed_before and e.action != KEYED:
            reason = f"keyed entries follow plain ones without the {KEYED!r} entry: the log was rewritten"
            return bad(e.id, reason)
        return None, True
    if _plain_digest(e) == e.hash:
        if keyed_before:
            reason = "its hash is plain SHA-256, not keyed: the log was re-chained without the audit key"
            return bad(e.id, reason)
        return None, False
    return bad(e.id, "its content does not match its hash (edited, or re-chained without the audit key)")


def verify(engine: Engine, expected_head: tuple[int, str] | None = None) -> Verification:
    """Walk the chain in sequence order; report the first entry that does not fit.

    An empty log, and one whose entries are all plain SHA-256, are reported too: CTIS begins every
    chain it creates with a keyed start entry, so neither is a log that CTIS wrote and nobody touched.
    """
    prev_hash, expected_seq, count, last, keyed = GENESIS, 1, 0, None, False
    problem: Verification | None = None
    with Session(engine) as session:
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=2000))
        try:
            for (e,) in rows:
                problem, entry_keyed = _check(e, expected_seq, prev_hash, count, keyed)
                if problem:
                    break
                keyed = keyed or entry_keyed
                prev_hash, expected_seq, count, last = e.hash, e.id + 1, count + 1, (e.id, e.hash)
        finally:
            rows.close()
    if problem is None and last is None:
        reason = (
            f"the log is empty, but CTIS writes an {START!r} entry when it creates a database: "
            "it has been emptied"
        )
        problem = Verification(False, 0, 1, reason)
    elif problem is None and not keyed:
        reason = (
            "no entry is keyed: every hash is plain SHA-256, which anyone with write access to the "
            "database can recompute. Either the log was re-chained without the audit key, or it was "
            f"last written by a CTIS older than the keyed chain (then 'ctis init' appends the {KEYED!r} "
            "entry that closes the old part; compare with an exported head first)"
        )
        problem = Verification(False, count, 1, reason)
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
    return Verification(True, count, head=last, head_checked=expected_head is not None)


def open_chain(session: Session, new_database: bool) -> AuditEntry | None:
    """Begin a new database's chain, or close an unkeyed prefix; called by every migration.

    Only the creation of a database writes the start entry: a log found empty later was emptied,
    and is left for :func:`verify` to report rather than started afresh.
    """
    last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).first()
    detail = {"chain": "hmac-sha256", "key": key_id()}
    if last is None:
        return record(session, "system", START, detail=detail) if new_database else None
    if _plain_digest(last) == last.hash:
        return record(session, "system", KEYED, detail=detail)
    return None


def record_drill(
    session: Session, actor: str, metric: str, period: str, dimension: str | None, value: str | None,
    unit: str, shown: int, total: int,
) -> AuditEntry:  # fmt: skip
    """A drill-down lists which records a figure counts (who is in it), so it is audited like a list.

    The detail says which figure and how many records were shown, never their ids.
    """
    detail = {"metric": metric, "period": period, "dimension": dimension, "value": value,
              "records": shown, "hidden": total - shown}  # fmt: skip
    return record(session, actor, "drill", unit, None, detail)
