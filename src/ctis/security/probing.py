"""Probing a hidden field through the rules that involve it: refused uniformly, counted, audited.

A role that may change a victim's facts but not see who they are could learn the
hidden date of birth from the validation rules that compare it with the rescue
date and the age: which rule broke, the age it computed, even *whether* a change
was accepted is a bit about the birth date.  So for such a reader
(``ctis.records.save_record``):

- a rule broken against a hidden value is answered with one fixed message under
  the fields the request changed, whatever the hidden value is;
- every change of a field such a rule reads (refused or accepted) counts as a
  probe of that record, and after :data:`ATTEMPTS` probes by one user of one
  record within :data:`WINDOW` the next is refused with 429 and ``Retry-After``
  before any rule is evaluated;
- each refusal is appended to the audit chain (``probe_refused``,
  ``probe_limited``) naming the fields, never a value.

The count is read from the audit log itself: it is shared by every worker
process, survives a restart, and needs no table of its own.  An accepted
change is counted through its own ``update`` entry.  The refusal's entry must
outlive the rollback of the refused request, so it is written by
:func:`record_after_rollback` in a transaction of its own, after the request's
unit of work has been rolled back (the request held no lock by then).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session

from ctis.security import audit
from ctis.storage.models import AuditEntry

#: Probes of one record by one user allowed within :data:`WINDOW`.
ATTEMPTS = 5
WINDOW = timedelta(hours=24)

#: Per person kind: the hidden field and the visible fields a rule compares it with.
HIDDEN_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "victims": ("date_of_birth", ("rescue_date", "age")),
    "suspects": ("date_of_birth", ("arrest_date", "age")),
}

#: The one answer to a rule broken against a hidden value: it names the rule, never the outcome.
MESSAGE = (
    "is inconsistent with the recorded date of birth, which you may not see; "
    "ask someone who may identify this person to check the record"
)
LIMITED = "too many refused or repeated changes of fields checked against hidden values of this record"

REFUSED_ACTION = "probe_refused"
LIMITED_ACTION = "probe_limited"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the audit log's clock: naive UTC


def retry_after(session: Session, actor: str, kind: str, record_id: int, fields: tuple[str, ...]) -> int:
    """Seconds until ``actor`` may probe the record again (0: now).

    Probes are this user's ``probe_refused`` entries for the record and their
    accepted ``update`` entries that changed one of ``fields``, within the window.
    """
    now = _now()
    changed = [and_(AuditEntry.action == "update", AuditEntry.detail.contains(f'"{f}"')) for f in fields]
    times = list(
        session.scalars(
            select(AuditEntry.at)
            .where(
                AuditEntry.actor == actor,
                AuditEntry.kind == kind,
                AuditEntry.record_id == record_id,
                AuditEntry.at >= now - WINDOW,
                or_(AuditEntry.action == REFUSED_ACTION, *changed),
            )
            .order_by(AuditEntry.at)
        )
    )
    if len(times) < ATTEMPTS:
        return 0
    free_at = times[len(times) - ATTEMPTS] + WINDOW
    return max(1, math.ceil((free_at - now).total_seconds()))


def record_after_rollback(engine: Engine, actor: str, events: list[audit.Event]) -> None:
    """Append refusal entries in a transaction of their own (the refused request's was rolled back)."""
    if not events:
        return
    with Session(engine) as session, session.begin():
        audit.record_many(session, actor, events)
