"""An analyst's decisions on screened posts and networks, and leads: referrals linked to a case.

A post or a network is marked ``benign`` or ``watch``, or *referred* to
investigators.  Referring creates a :class:`~ctis.storage.models.ScreeningLead`
linked to a case: an existing case named by its external id, or a new case
opened in the same transaction through :func:`ctis.records.save_record`, so the
case is validated, scoped to the referrer's agency and audited exactly as one
entered on the case form.  Nothing is written when any part fails (an unknown
case, a case outside the referrer's agency, an invalid new case): the caller's
transaction is rolled back by the exception.

The lead keeps the contact points of the post or network *as they were* when it
was referred, because a network keeps growing and merging after the referral
and investigators must be able to see what they were given.

Who may do what (``ctis.security.permissions``): ``screening:write`` marks posts
and networks; ``screening:refer`` refers (analysts, investigators); reading a
case needs ``cases:read`` within the referrer's agency scope, opening one
``cases:write``.  Every decision and every referral is appended to the audit
chain (ids only, never a contact point).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctis import records
from ctis.records import Invalid, NotFound
from ctis.screening.service import DECISIONS, phone_aliases, sees_phones
from ctis.security import audit
from ctis.security.permissions import Actor, Permission, authorize, can
from ctis.storage.models import Case, ScreenedPost, ScreeningContact, ScreeningLead, ScreeningNetwork
from ctis.storage.repository import bump_data_version

SUBJECTS = ("post", "network")
MAX_NOTE = 2000
#: Contact points kept with a lead (a network of thousands of posts keeps its most used ones).
MAX_LEAD_CONTACTS = 200


def resolve_network(session: Session, network_id: str) -> ScreeningNetwork:
    """The network, or the one it was merged into (networks merge as posts arrive)."""
    row = session.get(ScreeningNetwork, network_id)
    hops = 0
    while row is not None and row.merged_into and hops < 20:
        row, hops = session.get(ScreeningNetwork, row.merged_into), hops + 1
    if row is None:
        raise NotFound(f"no network {network_id!r}")
    return row


def merged_ids(session: Session, network_id: str) -> list[str]:
    """A network's id and the ids of every network merged into it, directly or not."""
    found, frontier = {network_id}, [network_id]
    while frontier and len(found) < 10_000:
        frontier = [
            n for n in session.scalars(
                select(ScreeningNetwork.id).where(ScreeningNetwork.merged_into.in_(frontier))
            ) if n not in found
        ]  # fmt: skip
        found.update(frontier)
    return sorted(found)


def set_network_status(session: Session, actor: Actor, network_id: str, status: str) -> dict[str, Any]:
    """An analyst's decision on a whole network: new, benign or watch (audited)."""
    authorize(actor, Permission.SCREENING_WRITE)
    if status not in DECISIONS:
        allowed = ", ".join(DECISIONS)
        raise Invalid({"status": f"must be one of {allowed}; a network becomes referred by referring it"})
    row = resolve_network(session, network_id)
    old, row.status = row.status, status
    audit.record(session, actor.username, "screening.network_status", "screening_networks", None,
                 {"network": row.id, "from": old, "to": status})  # fmt: skip
    return {"id": row.id, "status": row.status}


def _check_text(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if "\x00" in value:
        raise Invalid({name: "must not contain NUL characters"})
    if len(value) > limit:
        raise Invalid({name: f"at most {limit} characters"})
    return value or None


def _subject_contacts(session: Session, subject: str, subject_id: str) -> tuple[str, list[str], Any]:
    """(the subject's id as stored, its contact points now, its row) or NotFound."""
    if subject == "post":
        post = session.get(ScreenedPost, subject_id)
        if post is None:
            raise NotFound(f"no screened post {subject_id!r}")
        contacts = session.scalars(
            select(ScreeningContact.contact).where(ScreeningContact.post_id == post.id).distinct()
        )
        return post.id, sorted(contacts), post
    network = resolve_network(session, subject_id)
    counts: dict[str, int] = json.loads(network.contacts or "{}")
    ranked = sorted(counts, key=lambda c: (-counts[c], c))[:MAX_LEAD_CONTACTS]
    return network.id, ranked, network


def refer(
    session: Session,
    actor: Actor,
    subject: str,
    subject_id: str,
    *,
    case: str | None = None,
    new_case: dict[str, Any] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Refer a post or a network to investigators: a lead linked to ``case`` or to a new case.

    ``case`` is an existing case's external id (it must be one the actor may
    read: a case of another agency is answered as unknown, as record pages do);
    ``new_case`` holds the fields of a case to open (``offence_type`` at least),
    saved by :func:`ctis.records.save_record` on behalf of the actor.
    """
    authorize(actor, Permission.SCREENING_REFER)
    if subject not in SUBJECTS:
        raise Invalid({"subject": f"must be one of {', '.join(SUBJECTS)}"})
    case = _check_text("case", case, 100)
    note = _check_text("note", note, MAX_NOTE)
    if (case is None) == (new_case is None):
        raise Invalid({"case": "name an existing case by its external id, or give the fields of a new case"})
    stored_id, contacts, row = _subject_contacts(session, subject, subject_id)
    created = new_case is not None
    if new_case is not None:
        if not isinstance(new_case, dict) or not new_case.get("offence_type"):
            raise Invalid({"new_case.offence_type": "a new case needs at least its offence type"})
        view, _ = records.save_record(session, actor, "cases", dict(new_case))
        case = str(view["external_id"])
    else:
        try:
            records.get_record(session, actor, "cases", str(case))
        except NotFound:
            raise NotFound(f"no case {case!r} that you may see (unknown, or outside your agency)") from None
    case_id = session.scalar(select(Case.id).where(Case.external_id == case))
    if case_id is None:  # pragma: no cover - the case was just read or saved in this transaction
        raise NotFound(f"no case {case!r}")
    lead = ScreeningLead(
        subject=subject,
        post_id=stored_id if subject == "post" else None,
        network_id=stored_id if subject == "network" else getattr(row, "network_id", None),
        case_id=case_id,
        note=note,
        contacts=json.dumps(contacts, ensure_ascii=False),
        created_by=actor.username,
    )
    session.add(lead)
    old_status, row.status = row.status, "referred"
    session.flush()
    audit.record(session, actor.username, "screening.refer", "cases", case_id,
                 {subject: stored_id, "lead": lead.id, "new_case": created, "from": old_status})  # fmt: skip
    if subject == "post":
        bump_data_version(session)  # the post's status is a breakdown of posts_flagged
    return lead_view(lead, case, created, phones=sees_phones(actor))


def lead_view(
    lead: ScreeningLead, case_external_id: str | None, created: bool = False, phones: bool = True
) -> dict[str, Any]:
    """A lead as the API and pages show it; ``case`` is None when the reader may not see the case.

    ``phones`` False shows the numbers as ``phone:#1``… (readers who may not identify every kind
    of person, as on network pages: ``service.sees_phones``).
    """
    contacts: list[str] = json.loads(lead.contacts or "[]")
    if not phones:
        alias = phone_aliases(contacts)
        contacts = [alias.get(c, c) for c in contacts]
    return {
        "id": lead.id, "subject": lead.subject, "post": lead.post_id, "network": lead.network_id,
        "case": case_external_id, "case_created": created, "note": lead.note,
        "contacts": contacts, "created_by": lead.created_by, "created_at": lead.created_at,
    }  # fmt: skip


def _views(session: Session, actor: Actor, leads: list[ScreeningLead]) -> list[dict[str, Any]]:
    case_ids = sorted({lead.case_id for lead in leads})
    visible = records.visible_ids(session, actor, "cases", case_ids)
    names = {
        i: ext for i, ext in session.execute(select(Case.id, Case.external_id).where(Case.id.in_(case_ids)))
    }
    phones = sees_phones(actor)
    return [
        lead_view(lead, names.get(lead.case_id) if lead.case_id in visible else None, phones=phones)
        for lead in leads
    ]


def leads_of(session: Session, actor: Actor, subject: str, subject_id: str) -> list[dict[str, Any]]:
    """The leads made from a post, or from a network (and from its posts), newest first (audited).

    A lead to a case the reader may not see is listed without the case's id.
    """
    authorize(actor, Permission.SCREENING_READ)
    if subject == "post":
        where = ScreeningLead.post_id == subject_id
    else:  # leads made before networks merged into this one are this network's too
        where = ScreeningLead.network_id.in_(merged_ids(session, subject_id))
    leads = list(
        session.scalars(select(ScreeningLead).where(where).order_by(ScreeningLead.id.desc()).limit(200))
    )
    if leads:
        audit.record(session, actor.username, "screening.leads_read", "screening_leads", None,
                     {subject: subject_id, "leads": [lead.id for lead in leads]})  # fmt: skip
    return _views(session, actor, leads)


def leads_of_case(session: Session, actor: Actor, case_external_id: str) -> list[dict[str, Any]]:
    """The leads linked to a case the actor may read, newest first (audited); empty without
    ``screening:read``, since a lead shows a post's contact points."""
    if not can(actor, Permission.SCREENING_READ):
        return []
    records.get_record(session, actor, "cases", case_external_id)  # cases:read and agency scope
    case_id = session.scalar(select(Case.id).where(Case.external_id == case_external_id))
    leads = list(
        session.scalars(
            select(ScreeningLead).where(ScreeningLead.case_id == case_id).order_by(ScreeningLead.id.desc())
        )
    )
    if leads:
        audit.record(session, actor.username, "screening.leads_read", "cases", case_id,
                     {"leads": [lead.id for lead in leads]})  # fmt: skip
    return [lead_view(lead, case_external_id, phones=sees_phones(actor)) for lead in leads]
