"""Record services: list, read, create and update records on behalf of an actor.

The API and the pages both call these functions, so authorisation, agency
scope, masking of identifying fields, optimistic locking and the audit trail
are applied once, here, whatever the front end.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from sqlalchemy import BigInteger, ColumnElement, Integer, Select, and_, func, or_, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from ctis.domain.records import IDENTIFYING_FIELDS, SCHEMAS, field_errors, parse_date
from ctis.security import audit, probing
from ctis.security.crypto import normalise_words
from ctis.security.permissions import (
    READ,
    WRITE,
    Actor,
    Forbidden,
    Permission,
    authorize,
    can,
    may_identify,
)
from ctis.storage.models import MODELS, Agency, Assistance, Referral, Suspect, Victim
from ctis.storage.repository import PERSON_KINDS, Repository

MAX_PER_PAGE = 200

#: The date each kind is listed and filtered by.
DATE_COLUMN = {
    "operations": "operation_date", "cases": "opened_on", "suspects": "arrest_date",
    "victims": "rescue_date", "prosecutions": "charged_on", "assistance": "start_date",
    "referrals": "referred_on",
}  # fmt: skip

#: Columns a list may be filtered on by exact value.
FILTERS = {
    "agencies": ("agency_kind",),
    "operations": ("province", "operation_kind"),
    "cases": ("offence_type", "status"),
    "suspects": ("sex", "nationality", "province"),
    "victims": ("sex", "nationality", "province", "exploitation_type", "status"),
    "prosecutions": ("outcome",),
    "assistance": ("assistance_type",),
    "referrals": ("service",),
}
#: Columns a list may be sorted on (besides id and external_id).
SORTS = {kind: ((DATE_COLUMN[kind],) if kind in DATE_COLUMN else ()) + FILTERS[kind] for kind in FILTERS}


class NotFound(LookupError):
    """No such record, or none the actor may see (the two are not told apart)."""


class Invalid(ValueError):
    """Field-level validation errors: ``errors`` maps field name to message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class HiddenRuleRefused(Invalid):
    """A change refused by a rule on a value the actor may not see (422), or one probe too many (429).

    ``events`` are the refusal's audit entries: the request's unit of work rolls
    back, so the web layer appends them after it (``probing.record_after_rollback``).
    """

    def __init__(
        self, errors: dict[str, str], actor: str, events: list[audit.Event], status: int = 422,
        retry_after: int | None = None,
    ):  # fmt: skip
        super().__init__(errors)
        self.actor = actor
        self.events = events
        self.status = status
        self.retry_after = retry_after


class ScopeRefused(Forbidden):
    """An own-scope user tried to move a record between agencies (403); audited like
    :class:`HiddenRuleRefused`, after the request's rollback, from ``events``."""

    def __init__(self, message: str, actor: str, events: list[audit.Event]):
        super().__init__(message)
        self.actor = actor
        self.events = events


class Conflict(Exception):
    """The record changed since the caller read it; ``current`` is the record now."""

    def __init__(self, current: dict[str, Any], sent_version: int | None):
        self.current = current
        self.sent_version = sent_version
        super().__init__(
            f"the record was changed by someone else (now version {current['version']}, "
            f"you edited version {sent_version}); nothing was saved"
        )


@dataclass
class ListQuery:
    q: str | None = None
    filters: dict[str, str] = field(default_factory=dict)
    date_from: date | None = None
    date_to: date | None = None
    agency: str | None = None
    sort: str = "-id"
    page: int = 1
    per_page: int = 50


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of a list: record views by default, or whatever a list holds (review pairs)."""

    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _check_kind(kind: str) -> None:
    if kind not in SCHEMAS:
        raise NotFound(f"unknown kind {kind!r}")


def scope_clause(actor: Actor, kind: str) -> ColumnElement[bool] | None:
    """The condition restricting ``kind`` to the actor's agency, or None for all agencies."""
    if actor.all_agencies or kind == "agencies":
        return None
    mine = actor.agency_id if actor.agency_id is not None else -1
    model: Any = MODELS[kind]
    if kind == "operations":
        return model.lead_agency_id == mine
    if kind == "prosecutions":
        return model.suspect_id.in_(select(Suspect.id).where(Suspect.agency_id == mine))
    if kind == "referrals":
        return or_(
            model.to_agency_id == mine, model.victim_id.in_(select(Victim.id).where(Victim.agency_id == mine))
        )
    if kind == "victims":
        # A shelter or service sees the victims it assists or that were referred to it.
        return or_(
            model.agency_id == mine,
            model.id.in_(select(Assistance.victim_id).where(Assistance.agency_id == mine)),
            model.id.in_(select(Referral.victim_id).where(Referral.to_agency_id == mine)),
        )
    return model.agency_id == mine


def visible_ids(session: Session, actor: Actor, kind: str, ids: list[int]) -> set[int]:
    """Which of ``ids`` the actor may see: a drill-down counts every record but lists only these."""
    if kind == "posts":  # screened posts (``posts_flagged``): public web content, no agency
        return set(ids) if can(actor, Permission.SCREENING_READ) else set()
    if not can(actor, READ[kind]):
        return set()
    clause = scope_clause(actor, kind)
    if clause is None:
        return set(ids)
    model: Any = MODELS[kind]
    visible: set[int] = set()
    for i in range(0, len(ids), 900):
        chunk = ids[i : i + 900]
        visible |= set(session.scalars(select(model.id).where(model.id.in_(chunk), clause)))
    return visible


def _view(repo: Repository, actor: Actor, kind: str, rows: list[Any]) -> list[dict[str, Any]]:
    identify = kind in PERSON_KINDS and may_identify(actor, kind)
    values = repo.values(kind, rows, identify=identify)
    out = []
    for row, fields in zip(rows, values, strict=True):
        item = {"id": row.id, **fields, "version": row.version,
                "created_at": row.created_at, "updated_at": row.updated_at,
                "created_by": row.created_by, "updated_by": row.updated_by}  # fmt: skip
        if kind in PERSON_KINDS:
            if kind == "victims":
                item["age_at_rescue"] = row.age_at_rescue
            else:
                item["age_at_arrest"] = row.age_at_arrest
            item["masked"] = [] if identify else list(IDENTIFYING_FIELDS)
        out.append(item)
    return out


def _base_query(actor: Actor, kind: str) -> Select[Any]:
    model: Any = MODELS[kind]
    query = select(model)
    clause = scope_clause(actor, kind)
    if clause is not None:
        query = query.where(clause)
    if "operations" in SCHEMAS[kind].references:
        query = query.options(selectinload(model.operations))
    return query


def list_records(session: Session, actor: Actor, kind: str, q: ListQuery) -> Page[dict[str, Any]]:
    _check_kind(kind)
    authorize(actor, READ[kind])
    if not 1 <= q.per_page <= MAX_PER_PAGE:
        raise Invalid({"per_page": f"must be between 1 and {MAX_PER_PAGE}"})
    if q.page < 1:
        raise Invalid({"page": "must be 1 or more"})
    model: Any = MODELS[kind]
    query = _base_query(actor, kind)
    for name, value in q.filters.items():
        if name not in FILTERS[kind]:
            raise Invalid({name: f"cannot filter {kind} by {name}; filters: {', '.join(FILTERS[kind])}"})
        query = query.where(getattr(model, name) == value)
    if q.date_from or q.date_to:
        if kind not in DATE_COLUMN:
            raise Invalid({"date_from": f"{kind} have no date"})
        column = getattr(model, DATE_COLUMN[kind])
        if q.date_from:
            query = query.where(column >= q.date_from)
        if q.date_to:
            query = query.where(column <= q.date_to)
    if q.agency:
        agency_id = Repository(session).ids_by_external_id("agencies", [q.agency]).get(q.agency, -1)
        column = model.lead_agency_id if kind == "operations" else getattr(model, "agency_id", None)
        if column is None:
            raise Invalid({"agency": f"{kind} cannot be filtered by agency"})
        query = query.where(column == agency_id)
    if q.q:
        query = query.where(_search(session, actor, kind, model, q.q.strip()))
    descending = q.sort.startswith("-")
    sort_name = q.sort.lstrip("-")
    if sort_name not in ("id", "external_id", *SORTS[kind]):
        raise Invalid(
            {"sort": f"cannot sort {kind} by {sort_name}; sorts: id, external_id, {', '.join(SORTS[kind])}"}
        )
    sort_col = getattr(model, sort_name)
    query = query.order_by(
        sort_col.desc() if descending else sort_col, model.id.desc() if descending else model.id
    )
    total = session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    pages = max(1, -(-total // q.per_page))
    if q.page > pages:
        raise Invalid({"page": f"page {q.page} is past the last page ({pages})"})
    rows = list(session.scalars(query.offset((q.page - 1) * q.per_page).limit(q.per_page)))
    items = _view(Repository(session, actor=actor.username), actor, kind, rows)
    if kind in PERSON_KINDS and rows:
        audit.record(session, actor.username, "list", kind, None, {"ids": [r.id for r in rows]})
    return Page(items=items, total=total, page=q.page, per_page=q.per_page)


def _search(session: Session, actor: Actor, kind: str, model: Any, text: str) -> ColumnElement[bool]:
    """External id prefix, or every word of a person's name (through the blind index).

    Names are searched only for those who may see them: for anyone else a name
    search would tell which record a name belongs to.
    """
    clauses: list[ColumnElement[bool]] = [model.external_id.startswith(text, autoescape=True)]
    if kind in PERSON_KINDS and may_identify(actor, kind):
        ring = Repository(session).keys
        words = normalise_words(text)
        if words:
            clauses.append(and_(*[model.name_index.contains(ring.index_token(w)) for w in words]))
    return or_(*clauses)


def _row(session: Session, actor: Actor, kind: str, external_id: str) -> Any:
    model: Any = MODELS[kind]
    row = session.scalars(_base_query(actor, kind).where(model.external_id == external_id)).first()
    if row is None:
        raise NotFound(f"no {kind} record {external_id!r}")
    return row


def get_record(session: Session, actor: Actor, kind: str, external_id: str) -> dict[str, Any]:
    _check_kind(kind)
    authorize(actor, READ[kind])
    row = _row(session, actor, kind, external_id)
    if kind in PERSON_KINDS:
        audit.record(session, actor.username, "read", kind, row.id,
                     {"identified": may_identify(actor, kind)})  # fmt: skip
    return _view(Repository(session, actor=actor.username), actor, kind, [row])[0]


def _validate(kind: str, data: dict[str, Any]) -> Any:
    schema = SCHEMAS[kind]
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for name, message in field_errors(exc):
            errors.setdefault(name or "__all__", message)
        raise Invalid(errors) from None


def save_record(
    session: Session,
    actor: Actor,
    kind: str,
    data: dict[str, Any],
    external_id: str | None = None,
    expected_version: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Create (``external_id`` None) or update a record; return its view and whether it was created.

    An update is a merge: fields not sent keep their values (so a user who may
    not see identifying fields can still correct the others).  An update that
    names a version other than the stored one raises :class:`Conflict`.
    """
    _check_kind(kind)
    authorize(actor, WRITE[kind])
    data = {k: v for k, v in data.items() if k not in {"version", "id"}}
    identifying = [f for f in IDENTIFYING_FIELDS if f in data] if kind in PERSON_KINDS else []
    if identifying and not may_identify(actor, kind):
        raise Forbidden(f"{actor.role} may not set identifying fields ({', '.join(identifying)})")
    _check_no_nul(data)
    repo = Repository(session, actor=actor.username)
    created = external_id is None
    before: dict[str, Any] = {}
    if created:
        data.setdefault("external_id", f"{kind[:3].upper()}-{uuid.uuid4().hex[:12]}")
        _default_agency(session, actor, kind, data)
        existing = repo.ids_by_external_id(kind, [str(data["external_id"])])
        if existing:
            raise Invalid({"external_id": "already used by another record"})
    else:
        row = _row(session, actor, kind, str(external_id))
        if expected_version is not None and expected_version != row.version:
            raise Conflict(_view(repo, actor, kind, [row])[0], expected_version)
        before = repo.values(kind, [row], identify=True)[0]
        if "external_id" in data and data["external_id"] != external_id:
            raise Invalid({"external_id": "cannot be changed"})
        _check_agency_move(actor, kind, row.id, before, data)
        data = {**before, **data}
        if kind in probing.HIDDEN_RULES and not may_identify(actor, kind):
            _guard_hidden_rules(session, actor, kind, row.id, before, data)
    try:
        record = _validate(kind, data)
    except Invalid as exc:
        if kind in PERSON_KINDS and not may_identify(actor, kind):
            # a rule may quote a stored identifying value ("contradicts the date of birth ...")
            raise Invalid(_redact(exc.errors, before)) from None
        raise
    _check_storable(kind, record)
    _check_scope_of_new_values(session, actor, kind, record, before)
    try:
        repo.upsert_many([record])
    except LookupError as exc:
        raise Invalid(_reference_error(kind, str(exc))) from None
    except StaleDataError:
        session.rollback()
        raise Conflict(get_record(session, actor, kind, record.external_id), expected_version) from None
    row = _row(session, actor, kind, record.external_id)
    return _view(repo, actor, kind, [row])[0], created


def _guard_hidden_rules(
    session: Session, actor: Actor, kind: str, record_id: int, before: dict[str, Any], data: dict[str, Any]
) -> None:
    """Refuse, in words that do not depend on it, a change that breaks a rule on a hidden value.

    The change is first validated without the hidden value: what fails then is
    the reader's own mistake and is told as usual.  What fails only with it is
    answered with :data:`probing.MESSAGE` under the fields the change touched, so
    different hidden values give the same answer; and each change of a field such
    a rule reads counts as a probe, limited per user and record (``ctis.security.probing``).
    """
    hidden, fields = probing.HIDDEN_RULES[kind]
    if before.get(hidden) is None:
        return
    blind = _validate(kind, {**data, hidden: None})  # raises the errors that owe nothing to the hidden value
    touched = [f for f in fields if getattr(blind, f) != before.get(f)]
    if not touched:
        return
    detail = {"fields": touched, "rule": f"{hidden} against {', '.join(fields)}"}
    wait = probing.retry_after(session, actor.username, kind, record_id, fields)
    if wait:
        raise HiddenRuleRefused(
            {f: probing.LIMITED for f in touched}, actor.username,
            [audit.Event(probing.LIMITED_ACTION, kind, record_id, detail)], status=429, retry_after=wait,
        )  # fmt: skip
    try:
        _validate(kind, data)
    except Invalid:
        raise HiddenRuleRefused(
            {f: probing.MESSAGE for f in touched},
            actor.username,
            [audit.Event(probing.REFUSED_ACTION, kind, record_id, detail)],
        ) from None


def _reference_error(kind: str, message: str) -> dict[str, str]:
    for column, ref_kind in SCHEMAS[kind].references.items():
        if f"no {ref_kind} record" in message:
            return {column: message}
    return {"__all__": message}


def _default_agency(session: Session, actor: Actor, kind: str, data: dict[str, Any]) -> None:
    """What a user records belongs to their agency unless they say otherwise."""
    column = "lead_agency" if kind == "operations" else "agency"
    if actor.agency_id is None or column not in SCHEMAS[kind].model_fields or data.get(column):
        return
    data[column] = session.scalar(select(Agency.external_id).where(Agency.id == actor.agency_id))


def _check_agency_move(
    actor: Actor, kind: str, record_id: int, before: dict[str, Any], sent: dict[str, Any]
) -> None:
    """Only users of scope ``all`` reassign a record to another agency.

    The agency field decides who sees a record, so an own-scope user who changed
    it could take another agency's record (a shelter filing a police victim under
    its own name, and the police losing it) or hand theirs away.  Administrators
    and data officers (scope ``all``) may reassign; the change is audited as any update.
    """
    column = "lead_agency" if kind == "operations" else "agency"
    if actor.all_agencies or column not in SCHEMAS[kind].model_fields or column not in sent:
        return
    value = sent[column]
    new = value.strip() or None if isinstance(value, str) else value
    old = before.get(column)
    if new == old:
        return
    raise ScopeRefused(
        f"{actor.username} may not move this record from agency {old or '(none)'} to another: "
        "only users with scope 'all' (administrators, data officers) reassign records",
        actor.username,
        [audit.Event("scope_refused", kind, record_id, {"fields": [column]})],
    )


def _check_scope_of_new_values(
    session: Session, actor: Actor, kind: str, record: Any, before: dict[str, Any]
) -> None:
    """An own-agency user may not file a record under another agency, nor link it to records
    they may not see (which would also make those records visible to them)."""
    if actor.all_agencies:
        return
    column = "lead_agency" if kind == "operations" else "agency"
    value = getattr(record, column, None)
    if column in SCHEMAS[kind].model_fields:
        ids = Repository(session).ids_by_external_id("agencies", [value]) if value else {}
        if ids.get(value) != actor.agency_id:
            raise Forbidden(f"{actor.username} may only record {kind} of their own agency")
    for name, ref_kind in SCHEMAS[kind].references.items():
        clause = scope_clause(actor, ref_kind)
        if clause is None:
            continue
        value = getattr(record, name)
        old = before.get(name)
        wanted = set(value if isinstance(value, list) else [value] if value else [])
        wanted -= set(old if isinstance(old, list) else [old])  # links already there may stay
        if not wanted:
            continue
        model: Any = MODELS[ref_kind]
        seen = set(session.scalars(select(model.external_id).where(model.external_id.in_(wanted), clause)))
        missing = sorted(wanted - seen)
        if missing:  # the same answer as for a record that does not exist
            raise Invalid({name: f"no {ref_kind} record with external id {missing[0]!r}"})


def _check_no_nul(data: dict[str, Any]) -> None:
    """NUL characters are never meaningful and PostgreSQL cannot store them."""
    for name, value in data.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise Invalid({str(name): "must not contain NUL characters"})


def _check_storable(kind: str, record: Any) -> None:
    """Text longer than its column and integers beyond its range are invalid input, not a server error."""
    table: Any = MODELS[kind].__table__  # type: ignore[attr-defined]
    errors: dict[str, str] = {}
    for name in type(record).model_fields:
        column = table.c.get(name)
        value = getattr(record, name)
        if column is None or value is None:
            continue
        if isinstance(value, list):
            value = ";".join(value)
        length = getattr(column.type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            errors[name] = f"at most {length} characters"
        elif isinstance(column.type, Integer) and isinstance(value, int):
            bits = 64 if isinstance(column.type, BigInteger) else 32
            if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                errors[name] = "too large"
    if errors:
        raise Invalid(errors)


def _redact(errors: dict[str, str], stored: dict[str, Any]) -> dict[str, str]:
    """Error messages without the stored identifying values they quote."""
    values = [stored.get(f) for f in IDENTIFYING_FIELDS]
    secrets = [v.isoformat() if isinstance(v, date) else str(v) for v in values if v]
    out = {}
    for name, message in errors.items():
        for secret in secrets:
            message = message.replace(secret, "(hidden)")
        out[name] = message
    return out


def parse_optional_date(value: str | None, name: str) -> date | None:
    try:
        return parse_date(value)
    except ValueError as exc:
        raise Invalid({name: str(exc)}) from None
