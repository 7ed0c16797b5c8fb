"""Relational model of the committee's records.

Every record table shares :class:`RecordMixin`: a surrogate id, an external id
(unique per table) that imports use to find the row again, who created and
last changed it and when, and a version number that SQLAlchemy checks on every
update (optimistic locking: two officers editing the same record cannot
silently overwrite each other).

Derived columns (``age_at_rescue``, ``age_at_arrest``) are written by the
repository from the validated domain record; they exist so that the metric
registry can count minors and age bands in plain SQL on every engine.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class RecordMixin:
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    updated_by: Mapped[str] = mapped_column(String(100), default="system")
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @declared_attr.directive
    @classmethod
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class Province(Base):
    """Reference table, filled from ``ctis/domain/data/provinces.csv`` by ``ctis init``."""

    __tablename__ = "provinces"
    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(100))
    name_km: Mapped[str] = mapped_column(String(100))


class Agency(RecordMixin, Base):
    __tablename__ = "agencies"
    name_en: Mapped[str] = mapped_column(String(200))
    name_km: Mapped[str | None] = mapped_column(String(200))
    agency_kind: Mapped[str] = mapped_column(String(20))


case_operations = Table(
    "case_operations",
    Base.metadata,
    Column("case_id", ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    Column("operation_id", ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_case_operations_operation", "operation_id", "case_id"),
)

victim_operations = Table(
    "victim_operations",
    Base.metadata,
    Column("victim_id", ForeignKey("victims.id", ondelete="CASCADE"), primary_key=True),
    Column("operation_id", ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_victim_operations_operation", "operation_id", "victim_id"),
)


class Operation(RecordMixin, Base):
    __tablename__ = "operations"
    operation_date: Mapped[date] = mapped_column(Date, index=True)
    province: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    lead_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    operation_kind: Mapped[str] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(Text)

    lead_agency: Mapped[Agency | None] = relationship()


class Case(RecordMixin, Base):
    __tablename__ = "cases"
    offence_type: Mapped[str] = mapped_column(String(40), index=True)
    legal_article: Mapped[str | None] = mapped_column(String(200))
    opened_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))

    agency: Mapped[Agency | None] = relationship()
    operations: Mapped[list[Operation]] = relationship(secondary=case_operations)


class PersonMixin:
    """Identifying fields, sealed by ``ctis.security.crypto`` (never plaintext in the database).

    ``name_index`` holds keyed hashes of the name's words so lists can search by
    name without the database ever seeing one.
    """

    name_latin: Mapped[bytes | None] = mapped_column(LargeBinary)
    name_khmer: Mapped[bytes | None] = mapped_column(LargeBinary)
    date_of_birth: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone: Mapped[bytes | None] = mapped_column(LargeBinary)
    address: Mapped[bytes | None] = mapped_column(LargeBinary)
    name_index: Mapped[str | None] = mapped_column(Text)
    #: Representative record (smallest row id) of the person's cluster, written by
    #: ``ctis.linkage.service``; NULL: never linked, the record is its own person.
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)


#: Columns of person tables that hold sealed values.
SEALED_COLUMNS = ("name_latin", "name_khmer", "date_of_birth", "phone", "address")


class Suspect(PersonMixin, RecordMixin, Base):
    __tablename__ = "suspects"
    sex: Mapped[str] = mapped_column(String(10))
    age: Mapped[int | None] = mapped_column(Integer)
    age_at_arrest: Mapped[int | None] = mapped_column(Integer)
    nationality: Mapped[str | None] = mapped_column(String(3))
    province: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    arrest_date: Mapped[date | None] = mapped_column(Date, index=True)
    charges: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))

    case: Mapped[Case | None] = relationship()
    agency: Mapped[Agency | None] = relationship()


class Victim(PersonMixin, RecordMixin, Base):
    __tablename__ = "victims"
    sex: Mapped[str] = mapped_column(String(10))
    age: Mapped[int | None] = mapped_column(Integer)
    age_at_rescue: Mapped[int | None] = mapped_column(Integer)
    nationality: Mapped[str | None] = mapped_column(String(3))
    country_of_exploitation: Mapped[str | None] = mapped_column(String(3))
    exploitation_type: Mapped[str | None] = mapped_column(String(40))
    labour_sector: Mapped[str | None] = mapped_column(String(40))
    means_of_control: Mapped[str | None] = mapped_column(String(400))  # ';'-joined codes
    recruiter_relation: Mapped[str | None] = mapped_column(String(40))
    rescue_date: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(20))
    province: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))

    case: Mapped[Case | None] = relationship()
    agency: Mapped[Agency | None] = relationship()
    operations: Mapped[list[Operation]] = relationship(secondary=victim_operations)


class Prosecution(RecordMixin, Base):
    __tablename__ = "prosecutions"
    suspect_id: Mapped[int] = mapped_column(ForeignKey("suspects.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    charged_on: Mapped[date] = mapped_column(Date, index=True)
    charges: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(20))
    verdict_on: Mapped[date | None] = mapped_column(Date, index=True)
    sentence_months: Mapped[int | None] = mapped_column(Integer)
    suspended: Mapped[bool | None] = mapped_column(Boolean)
    fine_khr: Mapped[int | None] = mapped_column(Integer)

    suspect: Mapped[Suspect] = relationship()
    case: Mapped[Case | None] = relationship()


class Assistance(RecordMixin, Base):
    __tablename__ = "assistance"
    victim_id: Mapped[int] = mapped_column(ForeignKey("victims.id"), index=True)
    assistance_type: Mapped[str] = mapped_column(String(20))
    start_date: Mapped[date] = mapped_column(Date, index=True)
    end_date: Mapped[date | None] = mapped_column(Date)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    notes: Mapped[str | None] = mapped_column(Text)

    victim: Mapped[Victim] = relationship()
    agency: Mapped[Agency | None] = relationship()


class Referral(RecordMixin, Base):
    __tablename__ = "referrals"
    victim_id: Mapped[int] = mapped_column(ForeignKey("victims.id"), index=True)
    to_agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    referred_on: Mapped[date] = mapped_column(Date, index=True)
    service: Mapped[str | None] = mapped_column(String(20))
    consent: Mapped[bool] = mapped_column(Boolean)
    consent_date: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)

    victim: Mapped[Victim] = relationship()
    to_agency: Mapped[Agency] = relationship()


class User(Base):
    """An account. Roles and their permissions are in ``ctis.security.permissions``."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(30))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    #: "own": only the records of the user's agency; "all": every agency's.
    scope: Mapped[str] = mapped_column(String(10), default="own")
    language: Mapped[str] = mapped_column(String(5), default="en")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    agency: Mapped[Agency | None] = relationship()


class WebSession(Base):
    """A server-side session; the cookie holds the secret, the table only its hash."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    address: Mapped[str | None] = mapped_column(String(64))


class ApiToken(Base):
    """A personal API token; only its hash is stored, the secret is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class AuditEntry(Base):
    """One link of the hash-chained audit log (see ``ctis.security.audit``)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str | None] = mapped_column(String(40))
    record_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class DataVersion(Base):
    """One row whose token changes in every transaction that changes records.

    Report caches key on it, so a cached figure is never served after the
    records behind it changed (a restore brings back the token of its backup,
    whose figures are the restored ones).
    """

    __tablename__ = "data_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(32))


class Allegation(RecordMixin, Base):
    """An allegation of the register (``ctis.allegations``); not a record kind of imports and reports."""

    __tablename__ = "allegations"
    source: Mapped[str] = mapped_column(String(30))
    source_detail: Mapped[str | None] = mapped_column(String(200))
    alleged_on: Mapped[date] = mapped_column(Date, index=True)
    received_on: Mapped[date | None] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text)
    place: Mapped[str | None] = mapped_column(String(200))
    province: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    people_alleged: Mapped[str | None] = mapped_column(Text)
    facts_alleged: Mapped[str | None] = mapped_column(Text)
    finding: Mapped[str] = mapped_column(String(30), index=True)
    finding_summary: Mapped[str | None] = mapped_column(Text)
    finding_on: Mapped[date | None] = mapped_column(Date)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)

    agency: Mapped[Agency | None] = relationship()


class AllegationLogEntry(Base):
    """One step of an allegation's investigation; rows are only ever added."""

    __tablename__ = "allegation_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    allegation_id: Mapped[int] = mapped_column(ForeignKey("allegations.id", ondelete="CASCADE"), index=True)
    entry_on: Mapped[date] = mapped_column(Date)
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AllegationEvidence(Base):
    """A link from an allegation to a record (kind and row id) or to a figure of the metric registry.

    A figure link names the metric, period and breakdown cell, never a value:
    the value is computed from the records whenever the evidence is shown.
    """

    __tablename__ = "allegation_evidence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    allegation_id: Mapped[int] = mapped_column(ForeignKey("allegations.id", ondelete="CASCADE"), index=True)
    evidence_type: Mapped[str] = mapped_column(String(10))  # record, figure
    record_kind: Mapped[str | None] = mapped_column(String(20))
    record_id: Mapped[int | None] = mapped_column(Integer)
    metric_key: Mapped[str | None] = mapped_column(String(60))
    period: Mapped[str | None] = mapped_column(String(40))
    dimension: Mapped[str | None] = mapped_column(String(40))
    dimension_value: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))


class Release(Base):
    """A public release made by the release gate (``ctis.publication``).

    Only what was published is kept: the method, its parameters and the ε spent.
    Exact counts are never stored with a release; they can always be computed
    again from the records through the metric registry.
    """

    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(20))  # suppression, dp, k-anonymity (CTDC rows)
    parameters: Mapped[str] = mapped_column(Text)  # JSON
    epsilon: Mapped[float] = mapped_column(Float, default=0.0)
    note: Mapped[str | None] = mapped_column(Text)
    #: ``transparency`` (shown on /transparency) or ``export:LAYOUT`` (a standard export's tables)
    kind: Mapped[str] = mapped_column(String(40), default="transparency", server_default="transparency")


class ReleaseCell(Base):
    """One published figure of a release: a cell, a margin (``*`` in ``key``) or a total.

    ``value`` is null for a hidden figure; ``status`` says why (primary,
    secondary) or how it was made (published exactly, noise).
    """

    __tablename__ = "release_cells"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    table_name: Mapped[str] = mapped_column(String(120))
    metric: Mapped[str] = mapped_column(String(60))
    period: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    dimensions: Mapped[str] = mapped_column(String(200))  # JSON list
    key: Mapped[str] = mapped_column(Text)  # JSON list, one value per dimension
    value: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))


class ScreenedPost(Base):
    """An online recruitment post as screened (``ctis.screening``); its id is the source's own.

    Public web content, not a person record; its contact points are leads,
    so reading and ingesting posts is audited.  ``signature`` holds the
    MinHash of the masked text, from which the network index is rebuilt.
    """

    __tablename__ = "screening_posts"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(Text)
    posted_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    language: Mapped[str] = mapped_column(String(8))
    score: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(Boolean, index=True)
    indicators: Mapped[str] = mapped_column(Text)  # JSON list of fired indicators with spans
    entities: Mapped[str] = mapped_column(Text)  # JSON object of normalised entities
    features: Mapped[str] = mapped_column(Text)  # JSON list of the model's strongest n-grams
    network_id: Mapped[str | None] = mapped_column(String(20), index=True)
    status: Mapped[str] = mapped_column(String(20), default="new")  # new, benign, watch, referred
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    first_ingested: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_ingested: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ingested_by: Mapped[str] = mapped_column(String(100))


class ScreeningNetwork(Base):
    """A network of posts linked by near-identical text or shared contact points."""

    __tablename__ = "screening_networks"
    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="new")
    size: Mapped[int] = mapped_column(Integer)
    languages: Mapped[str] = mapped_column(Text)  # JSON list
    contacts: Mapped[str] = mapped_column(Text)  # JSON object: contact point -> number of posts
    first_seen: Mapped[datetime | None] = mapped_column(DateTime)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime)
    merged_into: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class ScreeningContact(Base):
    """A contact point of a post (``phone:+855…``, ``telegram:name``, ``email:…``), for exact lookups."""

    __tablename__ = "screening_contacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[str] = mapped_column(ForeignKey("screening_posts.id", ondelete="CASCADE"), index=True)
    contact: Mapped[str] = mapped_column(String(300), index=True)


class LinkRun(Base):
    """One run of person linkage (``ctis.linkage.service``) over one record kind.

    Keeps the trained model (Splink settings with m/u values, JSON), the
    thresholds and what came out; ``unlinkable`` is a JSON list of the record
    ids with neither a usable name nor a usable date, left as their own person.
    """

    __tablename__ = "link_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)  # victims, suspects
    status: Mapped[str] = mapped_column(String(20))  # succeeded, failed
    engine: Mapped[str] = mapped_column(String(20))
    trained: Mapped[bool] = mapped_column(Boolean)  # False: the model of an earlier run was reused
    model: Mapped[str | None] = mapped_column(Text)
    match_threshold: Mapped[float] = mapped_column(Float)
    review_threshold: Mapped[float] = mapped_column(Float)
    records: Mapped[int] = mapped_column(Integer, default=0)
    persons: Mapped[int] = mapped_column(Integer, default=0)
    linked_records: Mapped[int] = mapped_column(Integer, default=0)
    review_pairs: Mapped[int] = mapped_column(Integer, default=0)
    unlinkable: Mapped[str] = mapped_column(Text, default="[]")
    pairs_scored: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_by: Mapped[str] = mapped_column(String(100))


class LinkDecision(Base):
    """A reviewer's verdict on a pair of records (``record_id_l < record_id_r``), honoured by every run.

    ``fingerprint`` is a keyed hash of both records' linkage fields when the
    decision was made; when either record changes, the next run marks the
    decision ``stale`` (no longer applied) and puts the pair back for review.
    """

    __tablename__ = "link_decisions"
    __table_args__ = (UniqueConstraint("kind", "record_id_l", "record_id_r", name="uq_link_decisions_pair"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    record_id_l: Mapped[int] = mapped_column(Integer)
    record_id_r: Mapped[int] = mapped_column(Integer)
    same: Mapped[bool] = mapped_column(Boolean)
    fingerprint: Mapped[str] = mapped_column(String(64))
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    probability: Mapped[float | None] = mapped_column(Float)
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LinkReviewPair(Base):
    """An uncertain pair of the latest run of its kind, waiting for a reviewer."""

    __tablename__ = "link_review"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("link_runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    record_id_l: Mapped[int] = mapped_column(Integer)
    record_id_r: Mapped[int] = mapped_column(Integer)
    probability: Mapped[float] = mapped_column(Float)


#: ORM class per record kind, the same keys as ``ctis.domain.records.SCHEMAS``.
MODELS: dict[str, type[RecordMixin]] = {
    "agencies": Agency,
    "operations": Operation,
    "cases": Case,
    "suspects": Suspect,
    "victims": Victim,
    "prosecutions": Prosecution,
    "assistance": Assistance,
    "referrals": Referral,
}


class ScreeningLead(Base):
    """A screened post or network referred to investigators, linked to a case (``ctis.screening.leads``).

    ``contacts`` keeps the contact points of the post or network as they were
    when it was referred (JSON list), so a lead still says what investigators
    were given after the network grows or merges.  Leads are only ever added.
    """

    __tablename__ = "screening_leads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(10))  # post, network
    post_id: Mapped[str | None] = mapped_column(String(200), index=True)
    network_id: Mapped[str | None] = mapped_column(String(20), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    contacts: Mapped[str] = mapped_column(Text, default="[]")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    case: Mapped[Case] = relationship()
