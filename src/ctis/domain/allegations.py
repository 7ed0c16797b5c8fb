"""Validated schemas of the allegation register: an allegation, a log entry, an evidence link.

An allegation is a claim made about trafficking or about the authorities'
response to it (a press report, a foreign assessment, a hotline tip, a post on
social media).  The register keeps its words verbatim, the investigation log
and the finding, and links the finding to its evidence: records (by kind and
external id) and figures (a metric of the registry for a period, optionally
one cell of a breakdown).  A figure link stores *which* figure, never its
value: the value is computed from the records whenever it is shown, so an
evidence sheet can never quote a number the records do not give.

Like ``ctis.domain.records`` this module knows nothing of the database or the
web; checks that need either (does the record exist, is the metric known) are
made by the service, ``ctis.allegations``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator

from ctis.domain.periods import parse_period
from ctis.domain.records import Date, ExternalId, RecordIn, Text, clean_text, parse_date, rule_error
from ctis.domain.values import value_set

#: Kinds of record an allegation's evidence may point at (agencies prove nothing).
EVIDENCE_KINDS = ("cases", "operations", "victims", "suspects", "prosecutions", "assistance", "referrals")
#: Findings that close an investigation; "open" is the only other one.
CLOSED_FINDINGS = ("substantiated", "partly_substantiated", "unsubstantiated")
MAX_TEXT = 10_000


def _coded(set_name: str) -> BeforeValidator:
    """A value-set code from a code or an English / Khmer label; blank is missing."""

    def parse(value: Any) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        return value_set(set_name).parse(str(value))

    return BeforeValidator(parse)


def _today(info: ValidationInfo) -> date:
    return (info.context or {}).get("today") or date.today()


def _not_future(day: date | None, field: str, info: ValidationInfo) -> None:
    if day is not None and day > _today(info):
        raise rule_error(field, f"{day.isoformat()} is in the future")


def _optional_text(max_length: int) -> Any:
    """Optional free text of at most ``max_length`` characters; blank is missing."""
    return Annotated[Annotated[str, Field(max_length=max_length)] | None, BeforeValidator(clean_text)]


LongText = _optional_text(MAX_TEXT)
ShortText = _optional_text(200)
Note = _optional_text(2000)


class AllegationIn(RecordIn):
    """One allegation as entered: what was said, by whom, where, and what the committee found."""

    kind: ClassVar[str] = "allegations"
    references: ClassVar[dict[str, str]] = {"agency": "agencies"}

    source: Annotated[str, _coded("allegation_source")]
    source_detail: ShortText = None
    alleged_on: Annotated[date, BeforeValidator(parse_date)]
    received_on: Date = None
    text: Annotated[str, BeforeValidator(clean_text), Field(min_length=1, max_length=MAX_TEXT)]
    place: ShortText = None
    province: Annotated[str | None, _coded("province")] = None
    people_alleged: LongText = None
    facts_alleged: LongText = None
    finding: Annotated[str, _coded("allegation_finding")] = "open"
    finding_summary: LongText = None
    finding_on: Date = None
    agency: Text = None

    @model_validator(mode="before")
    @classmethod
    def _open_by_default(cls, data: Any) -> Any:
        # A blank finding in a form means "not decided yet", not "invalid".
        if isinstance(data, dict) and data.get("finding") in (None, ""):
            data = {**data, "finding": "open"}
        return data

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> AllegationIn:
        _not_future(self.alleged_on, "alleged_on", info)
        _not_future(self.received_on, "received_on", info)
        _not_future(self.finding_on, "finding_on", info)
        if self.received_on and self.received_on < self.alleged_on:
            raise rule_error("received_on", "before the date of the allegation")
        if self.finding != "open" and self.finding_on is None:
            raise rule_error("finding_on", f"required when the finding is {self.finding.replace('_', ' ')}")
        if self.finding == "open" and self.finding_on is not None:
            raise rule_error("finding_on", "set but the finding is still open")
        if self.finding_on and self.finding_on < self.alleged_on:
            raise rule_error("finding_on", "before the date of the allegation")
        return self


class LogEntryIn(BaseModel):
    """One step of the investigation; the author is whoever is signed in, never typed."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    entry_on: Annotated[date | None, BeforeValidator(parse_date)] = None
    text: Annotated[str, BeforeValidator(clean_text), Field(min_length=1, max_length=MAX_TEXT)]

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> LogEntryIn:
        if self.entry_on is None:
            self.entry_on = _today(info)
        _not_future(self.entry_on, "entry_on", info)
        return self


class RecordEvidenceIn(BaseModel):
    """A record that supports or refutes the allegation, named by kind and external id."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    type: Literal["record"] = "record"
    kind: Literal[EVIDENCE_KINDS]  # type: ignore[valid-type]
    external_id: ExternalId
    note: Note = None


class FigureEvidenceIn(BaseModel):
    """A figure of the metric registry: which metric, which period, optionally which breakdown cell.

    The value is deliberately absent: it is computed from the records each time
    the evidence is shown.
    """

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    type: Literal["figure"] = "figure"
    metric: Annotated[str, Field(min_length=1, max_length=60)]
    period: Annotated[str, Field(min_length=1, max_length=40)]
    dimension: _optional_text(40) = None
    value: _optional_text(100) = None
    note: Note = None

    @model_validator(mode="after")
    def _rules(self) -> FigureEvidenceIn:
        try:
            self.period = parse_period(self.period).label
        except ValueError as exc:
            raise rule_error("period", str(exc)) from None
        if self.dimension is not None and self.value is None:
            raise rule_error("value", "required when a dimension is given")
        if self.value is not None and self.dimension is None:
            raise rule_error("dimension", "required when a value is given")
        return self


EvidenceIn = Annotated[RecordEvidenceIn | FigureEvidenceIn, Field(discriminator="type")]
