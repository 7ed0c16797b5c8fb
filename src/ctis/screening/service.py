"""Screening on behalf of an actor: ingest posts, store them with their networks, read them back.

The CLI and the API both call these functions, so authorisation and the audit
trail are applied once:

* ingesting needs ``screening:write``, reading ``screening:read``;
* posts are public web content, not person records, but their contact points
  are leads for investigators, so every ingest and every read of a post or a
  network is appended to the audit chain in the same transaction (with post
  and network ids, never a contact point);
* re-ingesting a post with an id already stored updates that row and its
  contact points; nothing is duplicated;
* the network index is rebuilt in memory from the stored signatures, the new
  posts are added to it (joining or merging existing networks, never
  re-clustering them), and every network a batch touched is summarised again.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from ctis.records import Invalid, NotFound
from ctis.screening import networks as nw
from ctis.screening.posts import Post
from ctis.screening.score import Screened, screen_many
from ctis.security import audit
from ctis.security.permissions import IDENTIFY, Actor, Permission, authorize, may_identify
from ctis.storage.models import ScreenedPost, ScreeningContact, ScreeningNetwork, utcnow
from ctis.storage.repository import bump_data_version

STATUSES = ("new", "benign", "watch", "referred")
#: The statuses an analyst sets directly; ``referred`` comes with a lead (``ctis.screening.leads``).
DECISIONS = ("new", "benign", "watch")
#: Members whose text a network's template is drawn from (the newest ones).
TEMPLATE_SAMPLE = 50


@dataclass
class IngestResult:
    screened: list[Screened]
    created: int
    updated: int
    networks: list[str]


def load_index(session: Session) -> nw.NetworkIndex:
    """The network index of every stored post, from stored signatures, contacts and network ids."""
    index = nw.NetworkIndex()
    contacts: dict[str, list[str]] = {}
    for post_id, contact in session.execute(select(ScreeningContact.post_id, ScreeningContact.contact)):
        contacts.setdefault(post_id, []).append(contact)
    rows = session.execute(
        select(ScreenedPost.id, ScreenedPost.signature, ScreenedPost.network_id).order_by(
            ScreenedPost.first_ingested, ScreenedPost.id
        )
    )
    for post_id, sig, network in rows:
        index.restore(post_id, nw.from_bytes(sig), contacts.get(post_id, ()), network)
    return index


def cluster(screened: list[Screened], index: nw.NetworkIndex | None = None) -> nw.NetworkIndex:
    """Add screened posts to an index (a fresh one by default) and set each post's network."""
    index = index if index is not None else nw.NetworkIndex()
    for s in screened:
        if s.signature is None:  # screen_many's fast path has computed it already
            s.signature = nw.signature(s.masked)
        index.add(s.post.id, s.signature, s.entities.contacts())
    for s in screened:
        s.network = index.network_of(s.post.id)
    return index


def _lock(session: Session) -> None:
    """One ingest at a time: two batches building indexes side by side could miss each other's links."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(4242005)"))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def ingest(
    session: Session,
    actor: Actor,
    posts: list[Post],
    index: nw.NetworkIndex | None = None,
    screened: list[Screened] | None = None,
) -> IngestResult:
    """Screen, store and link a batch of posts in the caller's transaction (audited).

    ``index`` is the network index of what is stored, when the caller keeps one
    across batches (``ctis screen``); otherwise it is rebuilt from the database.
    ``screened`` are the posts already screened (by worker processes), in order.
    """
    authorize(actor, Permission.SCREENING_WRITE)
    latest: dict[str, Post] = {}
    for post in posts:  # the same id twice in one batch: the later version wins
        latest.pop(post.id, None)
        latest[post.id] = post
    if screened is None:
        screened = screen_many(list(latest.values()))
    else:
        by_id = {s.post.id: s for s in screened}
        screened = [by_id[pid] for pid in latest]
    _lock(session)
    if index is None:
        index = load_index(session)
    cluster(screened, index)
    now = utcnow()
    existing = {
        row.id: row
        for chunk in _chunks(list(latest), 500)
        for row in session.scalars(select(ScreenedPost).where(ScreenedPost.id.in_(chunk)))
    }
    created = 0
    for s in screened:
        row = existing.get(s.post.id)
        if row is None:
            row = ScreenedPost(id=s.post.id, first_ingested=now, status="new")
            session.add(row)
            created += 1
        _fill(row, s, s.signature, now, actor.username)
    session.flush()
    ids = list(latest)
    for chunk in _chunks(ids, 500):
        session.execute(delete(ScreeningContact).where(ScreeningContact.post_id.in_(chunk)))
    session.add_all(
        ScreeningContact(post_id=s.post.id, contact=c[:300])
        for s in screened
        for c in set(s.entities.contacts())
    )
    touched = {s.network: s.post.id for s in screened if s.network}
    for old, new in index.merged.items():
        session.execute(
            update(ScreeningNetwork).where(ScreeningNetwork.id == old).values(merged_into=_final(index, new))
        )
    for network, member in sorted(touched.items()):
        _refresh_network(session, network, index.members(member))
    audit.record(session, actor.username, "screening.ingest", "screening_posts", None, {
        "posts": len(screened), "created": created, "updated": len(screened) - created,
        "flagged": sum(s.flagged for s in screened), "networks": sorted(touched)[:100],
    })  # fmt: skip
    bump_data_version(session)  # posts_flagged is a registry figure: cached reports must not outlive it
    return IngestResult(screened, created, len(screened) - created, sorted(touched))


def screen_only(
    posts: list[Post], index: nw.NetworkIndex | None = None, screened: list[Screened] | None = None
) -> list[Screened]:
    """Screen and link posts without storing them (``ctis screen --no-store``): nothing is read or written."""
    screened = screen_many(posts) if screened is None else screened
    cluster(screened, index)
    return screened


def _final(index: nw.NetworkIndex, network: str) -> str:
    seen = set()
    while network in index.merged and network not in seen:
        seen.add(network)
        network = index.merged[network]
    return network


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _fill(row: ScreenedPost, s: Screened, sig: Any, now: datetime, by: str) -> None:
    p = s.post
    row.text, row.title, row.source, row.url, row.posted_at = p.text, p.title, p.source, p.url, p.posted_at
    row.language, row.score, row.flagged = s.language, round(s.score, 4), s.flagged
    row.indicators = _json([h.as_dict() for h in s.indicators])
    row.entities = _json(s.entities.as_dict())
    row.features = _json([list(f) for f in s.model_features])
    row.network_id = s.network
    row.signature = nw.to_bytes(sig)
    row.last_ingested, row.ingested_by = now, by


def _refresh_network(session: Session, network: str, members: list[str]) -> None:
    """Bring a network's members' ids and its summary (size, contacts, languages, dates) up to date.

    The template is not kept: it is drawn from the newest members when the
    network is read, so an ingest does not mask every touched network's posts again.
    """
    for chunk in _chunks(members, 500):
        session.execute(
            update(ScreenedPost)
            .where(ScreenedPost.id.in_(chunk), ScreenedPost.network_id.is_distinct_from(network))
            .values(network_id=network)
        )
    rows = session.execute(
        select(
            ScreenedPost.id, ScreenedPost.language, ScreenedPost.posted_at, ScreenedPost.first_ingested
        ).where(ScreenedPost.network_id == network)
    ).all()
    contacts: Counter[str] = Counter(
        session.scalars(
            select(ScreeningContact.contact)
            .join(ScreenedPost, ScreenedPost.id == ScreeningContact.post_id)
            .where(ScreenedPost.network_id == network)
        )
    )
    dates = [r.posted_at or r.first_ingested for r in rows]
    row = session.get(ScreeningNetwork, network)
    if row is None:
        row = ScreeningNetwork(id=network, status="new")
        session.add(row)
    row.size = len(rows)
    row.languages = _json([lang for lang, _n in Counter(r.language for r in rows).most_common()])
    row.contacts = _json(dict(contacts.most_common(200)))
    row.first_seen, row.last_seen = min(dates), max(dates)
    row.merged_into = None


# -- reading -------------------------------------------------------------------------------------------


def post_view(row: ScreenedPost) -> dict[str, Any]:
    return {
        "id": row.id, "text": row.text, "title": row.title, "source": row.source, "url": row.url,
        "posted_at": row.posted_at, "language": row.language, "score": row.score, "flagged": row.flagged,
        "indicators": json.loads(row.indicators), "entities": json.loads(row.entities),
        "model_features": json.loads(row.features), "network": row.network_id, "status": row.status,
        "first_ingested": row.first_ingested, "last_ingested": row.last_ingested,
    }  # fmt: skip


def get_post(session: Session, actor: Actor, post_id: str) -> dict[str, Any]:
    """One stored post with its indicators (and the words behind each), entities and network (audited)."""
    authorize(actor, Permission.SCREENING_READ)
    row = session.get(ScreenedPost, post_id)
    if row is None:
        raise NotFound(f"no screened post {post_id!r}")
    audit.record(session, actor.username, "screening.read", "screening_posts", None, {"post": post_id})
    return post_view(row)


def get_network(session: Session, actor: Actor, network_id: str) -> dict[str, Any]:
    """A network: template, members over time, contact points and languages (audited).

    A network merged into another answers with the surviving one, and says so.
    """
    authorize(actor, Permission.SCREENING_READ)
    row = session.get(ScreeningNetwork, network_id)
    asked = network_id
    hops = 0
    while row is not None and row.merged_into and hops < 20:
        row, hops = session.get(ScreeningNetwork, row.merged_into), hops + 1
    if row is None:
        raise NotFound(f"no network {network_id!r}")
    members = session.execute(
        select(ScreenedPost.id, ScreenedPost.posted_at, ScreenedPost.language, ScreenedPost.score,
               ScreenedPost.flagged, ScreenedPost.source, ScreenedPost.status)
        .where(ScreenedPost.network_id == row.id)
        .order_by(ScreenedPost.posted_at, ScreenedPost.id)
    ).all()  # fmt: skip
    member_contacts: dict[str, list[str]] = {}
    for post_id, contact in session.execute(
        select(ScreeningContact.post_id, ScreeningContact.contact)
        .join(ScreenedPost, ScreenedPost.id == ScreeningContact.post_id)
        .where(ScreenedPost.network_id == row.id)
    ):
        member_contacts.setdefault(post_id, []).append(contact)
    newest = sorted(members, key=lambda m: m.posted_at or datetime.min, reverse=True)[:TEMPLATE_SAMPLE]
    texts = session.execute(
        select(ScreenedPost.text, ScreenedPost.title, ScreenedPost.language).where(
            ScreenedPost.id.in_([m.id for m in newest])
        )
    ).all()
    masked = [nw.mask(f"{t.title}\n{t.text}" if t.title else t.text, language=t.language) for t in texts]
    audit.record(session, actor.username, "screening.network_read", "screening_networks", None,
                 {"network": row.id})  # fmt: skip
    contacts: dict[str, int] = json.loads(row.contacts)
    if not sees_phones(actor):
        contacts, member_contacts = _pseudonymise_phones(contacts, member_contacts)
    return {
        "id": row.id, "asked_for": asked, "status": row.status, "size": row.size,
        "template": nw.template(masked), "member_contacts": member_contacts,
        "languages": json.loads(row.languages), "contacts": contacts,
        "first_seen": row.first_seen, "last_seen": row.last_seen,
        "flagged": sum(1 for m in members if m.flagged),
        "members": [{"id": m.id, "posted_at": m.posted_at, "language": m.language, "score": m.score,
                     "flagged": m.flagged, "source": m.source, "status": m.status} for m in members],
    }  # fmt: skip


def sees_phones(actor: Actor) -> bool:
    """Whether screening pages show this reader phone numbers: only if they may identify every kind
    of person, since a number in a network (or a lead) may also be a victim's or a suspect's."""
    return all(may_identify(actor, kind) for kind in IDENTIFY)


def _number(contact: str) -> str | None:
    """The phone number a contact point carries (``phone:+855…``, ``whatsapp:+66…``), if any."""
    _scheme, _, value = contact.partition(":")
    digits = value.removeprefix("+")
    return digits if len(digits) >= 6 and digits.isdigit() else None


def phone_aliases(contacts: list[str]) -> dict[str, str]:
    """``phone:#1``, ``whatsapp:#1``, ``phone:#2``… for the contacts among ``contacts`` that carry a
    phone number: one alias number per number, in order of first appearance."""
    numbers: dict[str, int] = {}
    out = {}
    for contact in dict.fromkeys(contacts):
        number = _number(contact)
        if number is not None:
            n = numbers.setdefault(number, len(numbers) + 1)
            out[contact] = f"{contact.partition(':')[0]}:#{n}"
    return out


def _pseudonymise_phones(
    contacts: dict[str, int], member_contacts: dict[str, list[str]]
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Every phone number of a network as ``phone:#1``, ``phone:#2``… (most used first), also
    where a messaging handle is the number (``whatsapp:#1``).

    For readers who may not identify every kind of person: a number on a
    network page could be a victim's or a suspect's.  All numbers are replaced,
    not only those found in case records, since replacing only those would tell
    a reader who posted a guessed number that it is someone's on record.  Which
    posts share a number still shows; the numbers themselves are in the posts,
    which show the same to every reader.
    """
    ordered = sorted(contacts, key=lambda c: (-contacts[c], c))
    ordered += sorted({c for cs in member_contacts.values() for c in cs} - set(ordered))
    alias = phone_aliases(ordered)
    return (
        {alias.get(c, c): n for c, n in contacts.items()},
        {post: [alias.get(c, c) for c in cs] for post, cs in member_contacts.items()},
    )


def list_posts(
    session: Session,
    actor: Actor,
    status: str | None = None,
    flagged_only: bool = True,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    """The analyst's queue: posts by score, highest first, with the total (the listing is audited)."""
    authorize(actor, Permission.SCREENING_READ)
    if status is not None and status not in STATUSES:
        raise Invalid({"status": f"must be one of {', '.join(STATUSES)}"})
    if not 1 <= per_page <= 200 or page < 1:
        raise Invalid({"page": "page from 1, 1 to 200 posts a page"})
    query = select(ScreenedPost)
    if status is not None:
        query = query.where(ScreenedPost.status == status)
    if flagged_only:
        query = query.where(ScreenedPost.flagged.is_(True))
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = list(
        session.scalars(
            query.order_by(ScreenedPost.score.desc(), ScreenedPost.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    audit.record(session, actor.username, "screening.list", "screening_posts", None,
                 {"posts": [r.id for r in rows][:200]})  # fmt: skip
    return [post_view(r) for r in rows], total


def set_status(session: Session, actor: Actor, post_id: str, status: str) -> dict[str, Any]:
    """An analyst's decision on a post: new, benign or watch (audited).

    ``referred`` is not set here: it comes only with a lead linked to a case
    (:func:`ctis.screening.leads.refer`), so no post reads as referred with nothing behind it.
    """
    authorize(actor, Permission.SCREENING_WRITE)
    if status not in DECISIONS:
        allowed = ", ".join(DECISIONS)
        raise Invalid({"status": f"must be one of {allowed}; a post becomes referred by referring it"})
    row = session.get(ScreenedPost, post_id)
    if row is None:
        raise NotFound(f"no screened post {post_id!r}")
    old, row.status = row.status, status
    audit.record(session, actor.username, "screening.status", "screening_posts", None,
                 {"post": post_id, "from": old, "to": status})  # fmt: skip
    bump_data_version(session)  # the status is a breakdown of posts_flagged
    return post_view(row)
