"""The allegation register: allegations, their investigation log, findings, evidence and sheets.

The API and the pages call these functions, as they call ``ctis.records`` for
records, so that authorisation, agency scope, optimistic locking, masking and
the audit trail are applied once whatever the front end:

* every function authorises with ``allegations:read`` or ``allegations:write``;
  an own-scope account sees and changes only its agency's allegations;
* evidence that points at a record is shown through ``records.get_record``,
  so a linked victim or suspect is masked (and its reading audited) exactly as
  on the record's own page, and a record outside the reader's scope shows as
  a hidden link;
* evidence that is a figure names a metric, period and breakdown cell, and its
  value is computed through the metric registry whenever it is shown;
* every change, and every evidence sheet produced, is appended to the audit
  chain in the same transaction.

The evidence sheet is for the public, so it is built from a deliberately
narrow set of facts (:func:`evidence_sheet`): it can hold no identifying
field, whoever produces it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ctis import records
from ctis.domain.allegations import (
    EVIDENCE_KINDS,
    AllegationIn,
    EvidenceIn,
    FigureEvidenceIn,
    LogEntryIn,
    RecordEvidenceIn,
)
from ctis.domain.periods import parse_period
from ctis.domain.records import field_errors
from ctis.domain.values import parse_country, value_set, value_sets
from ctis.metrics.registry import DIMENSIONS, METRICS
from ctis.metrics.report import UNKNOWN, report_cache
from ctis.records import Conflict, Invalid, ListQuery, NotFound, Page
from ctis.security import audit
from ctis.security.permissions import READ, Actor, Forbidden, authorize, can
from ctis.security.permissions import Permission as P
from ctis.storage.models import MODELS, Agency, Allegation, AllegationEvidence, AllegationLogEntry

KIND = "allegations"
MAX_PER_PAGE = records.MAX_PER_PAGE
#: Columns a list may be filtered on by exact value.
FILTERS = ("source", "finding", "province")
SORTS = ("id", "external_id", "alleged_on", "received_on", "finding_on", "source", "finding")
#: Fields of the allegation itself, in the order forms and the API show them.
FIELDS = tuple(AllegationIn.model_fields)
#: Kinds whose external ids a public sheet may quote: they name events, never a person.
PUBLIC_REFERENCE_KINDS = ("cases", "operations")

_EVIDENCE = TypeAdapter(EvidenceIn)


#: A list request: the same search, filters, dates, agency, sort and paging as record lists.
AllegationQuery = ListQuery


# -- scope and views ---------------------------------------------------------------------------------


def scope_clause(actor: Actor) -> ColumnElement[bool] | None:
    """Own-scope accounts see the allegations their agency handles; others see all."""
    if actor.all_agencies:
        return None
    return Allegation.agency_id == (actor.agency_id if actor.agency_id is not None else -1)


def _scoped(actor: Actor) -> Any:
    query = select(Allegation)
    clause = scope_clause(actor)
    return query if clause is None else query.where(clause)


def _row(session: Session, actor: Actor, external_id: str) -> Allegation:
    row = session.scalars(_scoped(actor).where(Allegation.external_id == external_id)).first()
    if row is None:  # not there and not visible get the same answer
        raise NotFound(f"no allegation {external_id!r}")
    return row


def _agency_codes(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Agency.id, Agency.external_id).where(Agency.id.in_(ids))).all())


def _views(session: Session, rows: list[Allegation]) -> list[dict[str, Any]]:
    agencies = _agency_codes(session, {r.agency_id for r in rows if r.agency_id is not None})
    out = []
    for row in rows:
        item: dict[str, Any] = {"id": row.id}
        for name in FIELDS:
            item[name] = agencies.get(row.agency_id or 0) if name == "agency" else getattr(row, name)
        item.update(version=row.version, created_at=row.created_at, updated_at=row.updated_at,
                    created_by=row.created_by, updated_by=row.updated_by)  # fmt: skip
        out.append(item)
    return out


# -- list and read -----------------------------------------------------------------------------------


def list_allegations(session: Session, actor: Actor, q: AllegationQuery) -> Page[dict[str, Any]]:
    authorize(actor, P.ALLEGATIONS_READ)
    if not 1 <= q.per_page <= MAX_PER_PAGE:
        raise Invalid({"per_page": f"must be between 1 and {MAX_PER_PAGE}"})
    if q.page < 1:
        raise Invalid({"page": "must be 1 or more"})
    query = _scoped(actor)
    for name, value in q.filters.items():
        if name not in FILTERS:
            raise Invalid({name: f"cannot filter allegations by {name}; filters: {', '.join(FILTERS)}"})
        query = query.where(getattr(Allegation, name) == value)
    if q.date_from:
        query = query.where(Allegation.alleged_on >= q.date_from)
    if q.date_to:
        query = query.where(Allegation.alleged_on <= q.date_to)
    if q.agency:
        agency_id = session.scalar(select(Agency.id).where(Agency.external_id == q.agency))
        query = query.where(Allegation.agency_id == (agency_id if agency_id is not None else -1))
    if q.q and q.q.strip():
        # The allegation's own words are not identifying fields of a record: searchable by anyone
        # who may read the register.
        text = q.q.strip()
        query = query.where(
            or_(
                Allegation.external_id.startswith(text, autoescape=True),
                Allegation.text.contains(text, autoescape=True),
                Allegation.source_detail.contains(text, autoescape=True),
                Allegation.place.contains(text, autoescape=True),
            )
        )
    name = q.sort.lstrip("-")
    if name not in SORTS:
        raise Invalid({"sort": f"cannot sort allegations by {name}; sorts: {', '.join(SORTS)}"})
    column = getattr(Allegation, name)
    descending = q.sort.startswith("-")
    query = query.order_by(
        column.desc() if descending else column, Allegation.id.desc() if descending else Allegation.id
    )
    total = session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    pages = max(1, -(-total // q.per_page))
    if q.page > pages:
        raise Invalid({"page": f"page {q.page} is past the last page ({pages})"})
    rows = list(session.scalars(query.offset((q.page - 1) * q.per_page).limit(q.per_page)))
    return Page(items=_views(session, rows), total=total, page=q.page, per_page=q.per_page)


def get_allegation(session: Session, actor: Actor, external_id: str) -> dict[str, Any]:
    """The allegation with its log and evidence; linked persons are masked and their reading audited."""
    authorize(actor, P.ALLEGATIONS_READ)
    row = _row(session, actor, external_id)
    view = _views(session, [row])[0]
    view["log"] = log_entries(session, row)
    view["evidence"] = [_evidence_view(session, actor, e) for e in _evidence_rows(session, row)]
    return view


def log_entries(session: Session, row: Allegation) -> list[dict[str, Any]]:
    entries = session.scalars(
        select(AllegationLogEntry)
        .where(AllegationLogEntry.allegation_id == row.id)
        .order_by(AllegationLogEntry.entry_on, AllegationLogEntry.id)
    )
    return [
        {"id": e.id, "entry_on": e.entry_on, "author": e.author, "text": e.text, "created_at": e.created_at}
        for e in entries
    ]


def _evidence_rows(session: Session, row: Allegation) -> list[AllegationEvidence]:
    query = select(AllegationEvidence).where(AllegationEvidence.allegation_id == row.id)
    return list(session.scalars(query.order_by(AllegationEvidence.id)))


def _record_external_id(session: Session, kind: str, record_id: int | None) -> str | None:
    model: Any = MODELS[kind]
    return session.scalar(select(model.external_id).where(model.id == record_id))


def _evidence_view(session: Session, actor: Actor, e: AllegationEvidence) -> dict[str, Any]:
    base = {"id": e.id, "type": e.evidence_type, "note": e.note, "created_by": e.created_by,
            "created_at": e.created_at}  # fmt: skip
    if e.evidence_type == "figure":
        return {**base, **figure(session, str(e.metric_key), str(e.period), e.dimension, e.dimension_value)}
    kind = str(e.record_kind)
    external_id = _record_external_id(session, kind, e.record_id)
    shown: dict[str, Any] | None = None
    if external_id is not None and can(actor, READ[kind]):
        try:
            # the record's own read path: scope, masking of identifying fields, audit of person reads
            shown = records.get_record(session, actor, kind, external_id)
        except NotFound:
            shown = None
    if shown is None:  # a link to a record this reader may not see: it exists, nothing more
        return {**base, "kind": kind, "external_id": None, "visible": False, "record": None}
    return {**base, "kind": kind, "external_id": external_id, "visible": True, "record": shown}


# -- figures ----------------------------------------------------------------------------------------


def figure(
    session: Session, metric: str, period: str, dimension: str | None = None, value: str | None = None
) -> dict[str, Any]:
    """A figure of the registry, computed now from the records: its value is never stored."""
    out: dict[str, Any] = {"metric": metric, "label_en": metric, "label_km": metric, "definition": "",
                           "period": period, "dimension": dimension, "value": value,
                           "count": None}  # fmt: skip
    m = METRICS.get(metric)
    if m is None:  # a link made before the registry dropped the metric: say so, show no number
        out["definition"] = "this metric is no longer in the registry"
        return out
    out.update(label_en=m.label_en, label_km=m.label_km, definition=m.definition)
    try:
        p = parse_period(period)
        if dimension is None:
            count = report_cache.report(session, p, [metric]).metrics[metric]
        else:
            by = report_cache.report(session, p, [metric], [dimension]).by
            code = _agency_code_to_id(session, value) if dimension == "agency" else value
            count = by.get(dimension, {}).get(metric, {}).get(str(code), 0)
    except ValueError as exc:  # the breakdown left the registry since the link was made
        out["definition"] = f"{m.definition} ({exc})"
        return out
    out.update(period=p.label, count=int(count))
    return out


def _agency_code_to_id(session: Session, external_id: str | None) -> str:
    if external_id in (None, UNKNOWN):
        return UNKNOWN
    found = session.scalar(select(Agency.id).where(Agency.external_id == external_id))
    return str(found) if found is not None else f"no-agency:{external_id}"


def _dimension_value(session: Session, dimension: str, value: str) -> str:
    """The code a breakdown stores for ``value`` (a code or a label), or :class:`Invalid`."""
    if value == UNKNOWN:
        return value
    set_name = DIMENSIONS[dimension]
    try:
        if set_name == "country":
            return parse_country(value)
        if set_name == "agency":
            if session.scalar(select(Agency.id).where(Agency.external_id == value)) is None:
                raise ValueError(f"no agencies record with external id {value!r}")
            return value
        if set_name in value_sets():
            return value_set(set_name).parse(value)
    except ValueError as exc:
        raise Invalid({"value": str(exc)}) from None
    return value


# -- writes -----------------------------------------------------------------------------------------


def _errors(exc: ValidationError, tags: tuple[str, ...] = ()) -> dict[str, str]:
    out: dict[str, str] = {}
    for err, (_name, message) in zip(exc.errors(), field_errors(exc), strict=True):
        loc = [str(p) for p in err.get("loc") or () if str(p) not in tags]
        name = loc[0] if loc else str((err.get("ctx") or {}).get("field", ""))
        if name == "source" and err["type"] == "missing":
            message = (
                "required: say where the allegation came from ("
                + ", ".join(value_set("allegation_source").codes)
                + ")"
            )
        out.setdefault(name or "__all__", message)
    return out


def _no_nul(data: Any, name: str = "__all__") -> None:
    """NUL characters are never meaningful and PostgreSQL cannot store them."""
    if isinstance(data, dict):
        for key, value in data.items():
            _no_nul(value, str(key))
    elif isinstance(data, list | tuple):
        for value in data:
            _no_nul(value, name)
    elif isinstance(data, str) and "\x00" in data:
        raise Invalid({name: "must not contain NUL characters"})


def _agency_id(session: Session, actor: Actor, external_id: str | None) -> int | None:
    if external_id is None:
        return None
    found = session.scalar(select(Agency.id).where(Agency.external_id == external_id))
    if found is None:
        raise Invalid({"agency": f"no agencies record with external id {external_id!r}"})
    return found


def _validate(data: dict[str, Any], today: date | None) -> AllegationIn:
    try:
        return AllegationIn.model_validate(data, context={"today": today} if today else None)
    except ValidationError as exc:
        raise Invalid(_errors(exc)) from None


def save_allegation(
    session: Session,
    actor: Actor,
    data: dict[str, Any],
    external_id: str | None = None,
    expected_version: int | None = None,
    today: date | None = None,
) -> tuple[dict[str, Any], bool]:
    """Create (``external_id`` None) or update an allegation; return its view and whether it was created.

    An update is a merge, as for records: fields not sent keep their values; a
    ``version`` other than the stored one raises :class:`Conflict` and saves nothing.
    """
    authorize(actor, P.ALLEGATIONS_WRITE)
    if not isinstance(data, dict):
        raise Invalid({"__all__": "send the allegation's fields as an object"})
    data = {k: v for k, v in data.items() if k not in {"version", "id"}}
    _no_nul(data)
    created = external_id is None
    row: Allegation | None = None
    if created:
        data.setdefault("external_id", f"AL-{uuid.uuid4().hex[:12]}")
        if not data.get("agency") and actor.agency_id is not None:
            data["agency"] = session.scalar(select(Agency.external_id).where(Agency.id == actor.agency_id))
    else:
        row = _row(session, actor, str(external_id))
        if expected_version is not None and expected_version != row.version:
            raise Conflict(_views(session, [row])[0], expected_version)
        before = {k: v for k, v in _views(session, [row])[0].items() if k in FIELDS}
        if "external_id" in data and data["external_id"] != external_id:
            raise Invalid({"external_id": "cannot be changed"})
        data = {**before, **data}
    record = _validate(data, today)
    agency_id = _agency_id(session, actor, record.agency)
    if not actor.all_agencies and agency_id != actor.agency_id:
        raise Forbidden(f"{actor.username} may only record allegations of their own agency")
    if created:
        if session.scalar(select(Allegation.id).where(Allegation.external_id == record.external_id)):
            raise Invalid({"external_id": "already used by another allegation"})
        row = Allegation(external_id=record.external_id, created_by=actor.username)
        session.add(row)
    if row is None:  # pragma: no cover - every branch above sets it
        raise RuntimeError("no allegation row")
    changed = []
    for name in FIELDS:
        if name in {"external_id", "agency"}:
            continue
        value = getattr(record, name)
        if created or getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    if created or row.agency_id != agency_id:
        row.agency_id = agency_id
        changed.append("agency")
    if changed:
        row.updated_by = actor.username
    try:
        session.flush()
    except StaleDataError:
        session.rollback()
        raise Conflict(get_allegation(session, actor, record.external_id), expected_version) from None
    if created:
        audit.record(session, actor.username, "create", KIND, row.id)
    elif changed:
        audit.record(session, actor.username, "update", KIND, row.id, {"fields": sorted(changed)})
    return _views(session, [row])[0], created


def set_finding(
    session: Session,
    actor: Actor,
    external_id: str,
    data: dict[str, Any],
    expected_version: int | None,
    today: date | None = None,
) -> dict[str, Any]:
    """Record the finding; only the finding's fields may be sent, with the version that was read."""
    allowed = {"finding", "finding_summary", "finding_on"}
    extra = sorted(set(data) - allowed - {"version"})
    if extra:
        raise Invalid({extra[0]: "unknown field (a finding has finding, finding_summary, finding_on)"})
    if "finding" not in data:
        raise Invalid({"finding": "required field is empty"})
    changes = {k: data.get(k) for k in allowed}
    view, _created = save_allegation(session, actor, changes, external_id, expected_version, today)
    return view


def add_log_entry(
    session: Session, actor: Actor, external_id: str, data: dict[str, Any], today: date | None = None
) -> dict[str, Any]:
    """Append a step of the investigation; there is no edit and no delete (append-only by design)."""
    authorize(actor, P.ALLEGATIONS_WRITE)
    row = _row(session, actor, external_id)
    if not isinstance(data, dict):
        raise Invalid({"__all__": "send the entry's fields as an object"})
    _no_nul(data)
    try:
        entry_in = LogEntryIn.model_validate(data, context={"today": today} if today else None)
    except ValidationError as exc:
        raise Invalid(_errors(exc)) from None
    entry_on = entry_in.entry_on or date.today()
    if entry_on < row.alleged_on:
        raise Invalid({"entry_on": "before the date of the allegation"})
    entry = AllegationLogEntry(
        allegation_id=row.id, entry_on=entry_on, author=actor.username, text=entry_in.text
    )
    session.add(entry)
    session.flush()
    audit.record(session, actor.username, "log", KIND, row.id, {"entry": entry.id})
    return {"id": entry.id, "entry_on": entry.entry_on, "author": entry.author, "text": entry.text,
            "created_at": entry.created_at}  # fmt: skip


def add_evidence(session: Session, actor: Actor, external_id: str, data: Any) -> dict[str, Any]:
    """Link a record or a figure; an own-scope user may link only records they can see."""
    authorize(actor, P.ALLEGATIONS_WRITE)
    row = _row(session, actor, external_id)
    _no_nul(data)
    if isinstance(data, dict) and "type" not in data:
        # the fields say which kind of link it is
        data = {**data, "type": "record" if "kind" in data else "figure" if "metric" in data else None}
    if isinstance(data, dict) and data["type"] not in ("record", "figure"):
        raise Invalid(
            {"type": "say which evidence this is: record (kind, external_id) or figure (metric, period)"}
        )
    try:
        link = _EVIDENCE.validate_python(data)
    except ValidationError as exc:
        raise Invalid(_errors(exc, ("record", "figure"))) from None
    evidence = AllegationEvidence(allegation_id=row.id, note=link.note, created_by=actor.username)
    if isinstance(link, RecordEvidenceIn):
        evidence.evidence_type = "record"
        evidence.record_kind = link.kind
        evidence.record_id = _linkable_record(session, actor, link.kind, link.external_id)
        duplicate = select(AllegationEvidence.id).where(
            AllegationEvidence.allegation_id == row.id,
            AllegationEvidence.record_kind == link.kind,
            AllegationEvidence.record_id == evidence.record_id,
        )
        if session.scalar(duplicate) is not None:
            raise Invalid({"external_id": f"{link.external_id} is already linked to this allegation"})
    else:
        _check_figure(session, link)
        evidence.evidence_type = "figure"
        evidence.metric_key, evidence.period = link.metric, link.period
        evidence.dimension, evidence.dimension_value = link.dimension, link.value
    session.add(evidence)
    session.flush()
    detail = {"evidence": evidence.id, "type": evidence.evidence_type}
    if evidence.record_kind:
        detail["kind"] = evidence.record_kind
    audit.record(session, actor.username, "evidence_add", KIND, row.id, detail)
    return _evidence_view(session, actor, evidence)


def _linkable_record(session: Session, actor: Actor, kind: str, external_id: str) -> int:
    """The row id of a record the actor may see; otherwise the answer for a record that does not exist."""
    model: Any = MODELS[kind]
    if not can(actor, READ[kind]):
        raise Forbidden(f"{actor.username} ({actor.role}) may not {READ[kind].value}")
    query = select(model.id).where(model.external_id == external_id)
    clause = records.scope_clause(actor, kind)
    if clause is not None:
        query = query.where(clause)
    found = session.scalar(query)
    if found is None:
        raise Invalid({"external_id": f"no {kind} record with external id {external_id!r}"})
    return int(found)


def _check_figure(session: Session, link: FigureEvidenceIn) -> None:
    if link.metric not in METRICS:
        raise Invalid({"metric": f"unknown metric {link.metric!r}"})
    if link.dimension is not None:
        dims = METRICS[link.metric].dimensions
        if link.dimension not in dims:
            raise Invalid(
                {"dimension": f"{link.metric} has no breakdown by {link.dimension!r}; "
                              f"breakdowns: {', '.join(dims)}"}
            )  # fmt: skip
        link.value = _dimension_value(session, link.dimension, str(link.value))


def remove_evidence(session: Session, actor: Actor, external_id: str, evidence_id: int) -> None:
    authorize(actor, P.ALLEGATIONS_WRITE)
    row = _row(session, actor, external_id)
    evidence = session.scalar(
        select(AllegationEvidence).where(
            AllegationEvidence.id == evidence_id, AllegationEvidence.allegation_id == row.id
        )
    )
    if evidence is None:
        raise NotFound(f"no evidence {evidence_id} on allegation {external_id!r}")
    if evidence.evidence_type == "record" and not _may_see_link(session, actor, evidence):
        # what the reader cannot see, they cannot unlink either
        raise NotFound(f"no evidence {evidence_id} on allegation {external_id!r}")
    detail = {"evidence": evidence.id, "type": evidence.evidence_type}
    session.delete(evidence)
    session.flush()
    audit.record(session, actor.username, "evidence_remove", KIND, row.id, detail)


def _may_see_link(session: Session, actor: Actor, evidence: AllegationEvidence) -> bool:
    kind = str(evidence.record_kind)
    return evidence.record_id in records.visible_ids(session, actor, kind, [int(evidence.record_id or 0)])


# -- the evidence sheet -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sheet:
    """What a public evidence sheet says, and nothing else.

    Built only from the allegation's own fields (not the people it names),
    figures of the registry, counts of linked records per kind and the
    external ids of the linked cases and operations the reader may see (how
    many others there are is said, not who they are): no field of a person record
    is ever read into it, so no role can make a sheet that identifies anyone.
    """

    reference: str
    produced_on: date
    produced_at: datetime
    allegation: dict[str, Any]
    investigation_steps: int
    figures: list[dict[str, Any]]
    record_counts: dict[str, int]
    #: External ids of linked cases and operations the reader may see (their own read path's scope).
    references: dict[str, list[str]]
    #: Per kind, how many linked cases and operations were left out of ``references`` (not visible).
    withheld: dict[str, int]


#: The allegation fields a sheet states (``people_alleged`` may name people, so it is left out).
SHEET_FIELDS = ("external_id", "source", "source_detail", "alleged_on", "received_on", "text", "place",
                "province", "facts_alleged", "finding", "finding_summary", "finding_on")  # fmt: skip


def evidence_sheet(session: Session, actor: Actor, external_id: str, form: str = "html") -> Sheet:
    """The facts of a public evidence sheet; producing one is audited and gives it its reference."""
    authorize(actor, P.ALLEGATIONS_READ)
    row = _row(session, actor, external_id)
    allegation = {name: getattr(row, name) for name in SHEET_FIELDS}
    links = _evidence_rows(session, row)
    figures = [
        {**figure(session, str(e.metric_key), str(e.period), e.dimension, e.dimension_value), "note": e.note}
        for e in links
        if e.evidence_type == "figure"
    ]
    counts: dict[str, int] = {}
    ids: dict[str, list[int]] = {}
    for e in links:
        if e.evidence_type == "record" and e.record_kind in EVIDENCE_KINDS:
            counts[e.record_kind] = counts.get(e.record_kind, 0) + 1
            ids.setdefault(e.record_kind, []).append(int(e.record_id or 0))
    references: dict[str, list[str]] = {}
    withheld: dict[str, int] = {}
    for kind in PUBLIC_REFERENCE_KINDS:
        if kind in ids:
            # Only what the reader may see is named: a case id of another agency is theirs to publish.
            visible = records.visible_ids(session, actor, kind, ids[kind])
            if len(visible) < len(ids[kind]):
                withheld[kind] = len(ids[kind]) - len(visible)
            model: Any = MODELS[kind]
            found = session.scalars(select(model.external_id).where(model.id.in_(sorted(visible))))
            if visible:
                references[kind] = sorted(found)
    entry = audit.record(
        session, actor.username, "sheet", KIND, row.id, {"form": form, "figures": len(figures)}
    )
    now = datetime.now()
    return Sheet(
        reference=f"{row.external_id}/S{entry.id}",
        produced_on=now.date(),
        produced_at=now,
        allegation=allegation,
        investigation_steps=len(log_entries(session, row)),
        figures=figures,
        record_counts={k: counts[k] for k in EVIDENCE_KINDS if k in counts},
        references=references,
        withheld=withheld,
    )
