"""Contact points of case records matched against the networks of screened posts.

A recruiter's phone on a suspect's record, or a number on a victim's record,
that also appears in recruitment posts ties the case to a network.  Person
phones are sealed at rest (``ctis.security.crypto``), so the database cannot
compare them: they are opened here with the key ring, normalised to E.164 with
the screening engine's own phone parser (``ctis.screening.entities``: the same
digits, separators and regional rules as in posts, Cambodia tried first), and
compared with ``screening_contacts``.

The index of record phones is kept in process memory for one data version
(every change to records changes the token, so it is never stale), and holds
keyed hashes of the numbers (the key ring's blind-index key), never a number.

A match says whose number a number is, so matches of a kind of person are shown
only to roles that may identify that kind, in both directions (a network's
matching records, a record's networks).  For anyone else they are neither listed
nor counted: a reader who may post (an analyst) could otherwise post a guessed
number and read off whose it is.  Of the kinds shown, only records within the
reader's agency scope are listed (others are counted).  Every read of matches is
appended to the audit chain with the record ids.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctis import records
from ctis.metrics.report import VersionedCache, data_token
from ctis.records import NotFound
from ctis.screening.entities import extract, normalise_digits, parse_phone
from ctis.screening.leads import merged_ids, resolve_network
from ctis.security import audit
from ctis.security.crypto import DecryptionError, KeyRing, load_key_ring
from ctis.security.permissions import READ, Actor, Permission, authorize, can, may_identify
from ctis.storage.models import Case, ScreenedPost, ScreeningContact, Suspect, Victim
from ctis.storage.repository import Repository

#: Person kinds whose records carry a phone, and their tables.
PHONE_KINDS: dict[str, Any] = {"victims": Victim, "suspects": Suspect}
#: Identifying fields shown with a match to those who may identify.
SHOWN = ("name_latin", "name_khmer", "phone")

_index_cache = VersionedCache(size=8)


def phone_contacts(text: str | None) -> list[str]:
    """The contact points (``phone:+855…``) in a phone field, as the screening engine writes them.

    A field usually holds one number written any way a person writes it
    (``012 345 678``, ``+855 12 345 678``, Khmer digits); a field with two
    numbers gives both.
    """
    if not text or not text.strip():
        return []
    digits = re.sub(r"\D", "", normalise_digits(text))
    single = parse_phone(digits, text.strip().startswith("+"), "km") if digits else None
    phones = [single] if single else extract(text, language="km").phones
    return [f"phone:{p}" for p in dict.fromkeys(phones)]


def _token(keys: KeyRing, contact: str) -> str:
    return keys.index_token("contact|" + contact)


def record_index(session: Session, keys: KeyRing | None = None) -> dict[str, list[tuple[str, int]]]:
    """``{keyed hash of a contact point: [(kind, record id), …]}`` of every person record's phone.

    Built once per data version and process: every phone is opened, which costs
    a few microseconds a record plus the parse.
    """
    keys = keys or load_key_ring()
    token = data_token(session)
    cache_key = (str(session.get_bind().url), token)
    hit = _index_cache.get(cache_key) if token is not None else None
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    index: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for kind, model in PHONE_KINDS.items():
        table = model.__tablename__
        for row_id, blob in session.execute(select(model.id, model.phone).where(model.phone.is_not(None))):
            try:
                plain = keys.open(bytes(blob), table, "phone", row_id)
            except DecryptionError:  # a value sealed under a key no longer in the ring: cannot match
                continue
            for contact in phone_contacts(plain):
                index[_token(keys, contact)].append((kind, row_id))
    out = dict(index)
    if token is not None:
        _index_cache.put(cache_key, out)
    return out


def _network_contacts(session: Session, network_ids: list[str]) -> list[str]:
    return sorted(
        session.scalars(
            select(ScreeningContact.contact)
            .join(ScreenedPost, ScreenedPost.id == ScreeningContact.post_id)
            .where(ScreenedPost.network_id.in_(network_ids), ScreeningContact.contact.startswith("phone:"))
            .distinct()
        )
    )


def network_matches(session: Session, actor: Actor, network_id: str) -> dict[str, Any]:
    """The person records whose phone appears in a network's posts (audited).

    ``matches`` lists the records the reader may see, each with its kind,
    external id, case, the names, the phone and the contact point that matched,
    of the kinds the reader may identify; ``hidden`` counts matching records of
    those kinds outside the reader's agency; ``withheld`` names the kinds the
    reader may not identify, whose matches are neither listed nor counted.
    """
    authorize(actor, Permission.SCREENING_READ)
    network = resolve_network(session, network_id)
    repo = Repository(session, actor=actor.username)
    index = record_index(session, repo.keys)
    hits: dict[tuple[str, int], list[str]] = defaultdict(list)
    for contact in _network_contacts(session, merged_ids(session, network.id)):
        for kind, row_id in index.get(_token(repo.keys, contact), ()):
            hits[(kind, row_id)].append(contact)
    matches: list[dict[str, Any]] = []
    hidden = 0
    for kind, model in PHONE_KINDS.items():
        if not may_identify(actor, kind):
            # Not even counted: a reader who posts a guessed number and sees a match (or a count
            # go up) has learnt whose number it is.  The answer names the kinds left out instead.
            continue
        ids = sorted(row_id for k, row_id in hits if k == kind)
        if not ids:
            continue
        visible = records.visible_ids(session, actor, kind, ids)
        hidden += len(ids) - len(visible)
        if not visible:
            continue
        identify = may_identify(actor, kind)  # always true here; kept so the masking stays explicit
        rows = list(session.scalars(select(model).where(model.id.in_(sorted(visible))).order_by(model.id)))
        values = repo.values(kind, rows, identify=identify)
        for row, fields in zip(rows, values, strict=True):
            matches.append({
                "kind": kind, "external_id": row.external_id, "case": fields.get("case"),
                "agency": fields.get("agency"), "identified": identify,
                **{f: fields.get(f) if identify else None for f in SHOWN},
                "contacts": hits[(kind, row.id)] if identify else [],
                "masked": [] if identify else [*SHOWN, "contacts"],
            })  # fmt: skip
        detail = {"network": network.id, "ids": [r.id for r in rows], "identified": identify}
        audit.record(session, actor.username, "screening.match_read", kind, None, detail)
    withheld = [kind for kind in PHONE_KINDS if not may_identify(actor, kind)]
    return {"network": network.id, "asked_for": network_id, "matches": matches, "hidden": hidden,
            "withheld": withheld}  # fmt: skip


def record_networks(session: Session, actor: Actor, kind: str, external_id: str) -> list[dict[str, Any]]:
    """The networks whose posts carry a phone of this record (a case: of its victims and suspects).

    Empty for readers without ``screening:read``.  Each entry names the
    network, how many of its posts carry the number, the record whose phone it
    is and the contact point, for the kinds of person the reader may identify
    only (for other kinds: nothing, as for a record without a match).  The record
    itself must be one the reader may see; the read is audited.
    """
    if not can(actor, Permission.SCREENING_READ) or kind not in (*PHONE_KINDS, "cases"):
        return []
    authorize(actor, READ[kind])
    model: Any = Case if kind == "cases" else PHONE_KINDS[kind]
    record_id = session.scalar(select(model.id).where(model.external_id == external_id))
    if record_id is None or not records.visible_ids(session, actor, kind, [record_id]):
        raise NotFound(f"no {kind} record {external_id!r}")  # the page's own read is audited already
    people: list[tuple[str, Any]] = []
    if kind == "cases":
        case_id = record_id
        for person_kind, model in PHONE_KINDS.items():
            if not can(actor, READ[person_kind]) or not may_identify(actor, person_kind):
                continue
            rows = list(session.scalars(select(model).where(model.case_id == case_id).order_by(model.id)))
            visible = records.visible_ids(session, actor, person_kind, [r.id for r in rows])
            people += [(person_kind, r) for r in rows if r.id in visible]
    elif may_identify(actor, kind):
        people = [(kind, session.get(model, record_id))]
    repo = Repository(session, actor=actor.username)
    out: list[dict[str, Any]] = []
    for person_kind, row in people:
        if row.phone is None:
            continue
        try:
            contacts = phone_contacts(repo.unseal(row, "phone"))
        except DecryptionError:
            continue
        if not contacts:
            continue
        found = session.execute(
            select(ScreeningContact.contact, ScreenedPost.network_id, ScreenedPost.id)
            .join(ScreenedPost, ScreenedPost.id == ScreeningContact.post_id)
            .where(ScreeningContact.contact.in_(contacts), ScreenedPost.network_id.is_not(None))
        ).all()
        per_network: dict[str, tuple[set[str], set[str]]] = {}
        for contact, network, post_id in found:
            seen = per_network.setdefault(resolve_network(session, network).id, (set(), set()))
            seen[0].add(contact)
            seen[1].add(post_id)
        identify = may_identify(actor, person_kind)
        for network, (matched, posts) in sorted(per_network.items()):
            out.append({
                "network": network, "posts": len(posts), "kind": person_kind,
                "external_id": row.external_id, "identified": identify,
                "contacts": sorted(matched) if identify else [],
            })  # fmt: skip
        audit.record(session, actor.username, "screening.match_read", person_kind, row.id,
                     {"networks": sorted(per_network), "identified": identify})  # fmt: skip
    return out
