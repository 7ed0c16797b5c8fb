"""Validated record schemas, one per kind of record.

These pydantic models are the single place where a record's fields, types,
value sets and cross-field rules are stated.  Imports, the API and forms all
validate through them, so "what is a valid victim record" has one answer.
References to other records are carried as *external ids*; resolving them to
rows is the storage layer's job.

Input is forgiving where people differ (dates as ISO or day/month/year, value
set labels in English or Khmer, ``yes``/``no``), and strict where a mistake
would change a count (unknown codes, impossible dates, an age that contradicts
the date of birth).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ctis.domain.ages import MAX_AGE, age_on
from ctis.domain.values import parse_country, value_set

_DMY = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})$")
_TRUE = {"1", "yes", "y", "true", "t", "បាទ", "ចាស", "មាន"}
_FALSE = {"0", "no", "n", "false", "f", "ទេ", "គ្មាន"}


def parse_date(value: Any) -> date | None:
    """Accept a date, an ISO date (``2024-06-30``) or day/month/year (``30/06/2024``)."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    text = str(value).strip()
    if not text:
        return None
    m = _DMY.match(text)
    try:
        if m:
            return date(int(m[3]), int(m[2]), int(m[1]))
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a valid date {text!r} (use YYYY-MM-DD or DD/MM/YYYY)") from None


def parse_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().casefold()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not yes/no: {value!r}")


def parse_list(value: Any) -> list[str]:
    """Multi-valued cells are separated by ``;`` (commas occur inside names)."""
    if value is None:
        return []
    if isinstance(value, list | tuple | set):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(";") if part.strip()]


def clean_text(value: Any) -> str | None:
    """NFC-normalise and trim text so that Khmer strings compare equal however typed."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", str(value)).strip()
    return text or None


def _coded(set_name: str) -> BeforeValidator:
    def parse(value: Any) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        return value_set(set_name).parse(str(value))

    return BeforeValidator(parse)


def _coded_list(set_name: str) -> BeforeValidator:
    def parse(value: Any) -> list[str]:
        vs = value_set(set_name)
        return sorted({vs.parse(v) for v in parse_list(value)})

    return BeforeValidator(parse)


def _country(value: Any) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    return parse_country(str(value))


Date = Annotated[date | None, BeforeValidator(parse_date)]
Bool = Annotated[bool | None, BeforeValidator(parse_bool)]
Text = Annotated[str | None, BeforeValidator(clean_text)]
Country = Annotated[str | None, BeforeValidator(_country)]
Refs = Annotated[list[str], BeforeValidator(parse_list)]
ExternalId = Annotated[str, BeforeValidator(clean_text), Field(min_length=1, max_length=100)]


def rule_error(field: str, message: str) -> PydanticCustomError:
    """A cross-field rule failure that still names the column it is about."""
    return PydanticCustomError("rule", message, {"field": field})


def _check_not_future(day: date | None, field: str, info: ValidationInfo) -> None:
    today = (info.context or {}).get("today") or date.today()
    if day is not None and day > today:
        raise rule_error(field, f"{day.isoformat()} is in the future")


def derive_age(birth: date | None, age: int | None, on: date | None, event: str) -> int | None:
    """Age on the event day, from the date of birth if known, else the recorded age.

    Raises when both are given and disagree, or when the event precedes birth.
    """
    if birth is None:
        return age
    if on is None:
        return age
    if on < birth:
        raise rule_error(
            event.replace(" ", "_"),
            f"{on.isoformat()} is before the date of birth {birth.isoformat()}",
        )
    computed = age_on(birth, on)
    if age is not None and age != computed:
        raise rule_error(
            "age",
            f"age {age} contradicts the date of birth {birth.isoformat()} "
            f"(aged {computed} on the {event.replace('_', ' ')} {on.isoformat()})",
        )
    return computed


class RecordIn(BaseModel):
    """Base of every record schema: an external id and lenient blank handling."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    kind: ClassVar[str]
    #: Columns that hold external ids of other records: column -> referenced kind.
    references: ClassVar[dict[str, str]] = {}

    external_id: ExternalId

    @model_validator(mode="before")
    @classmethod
    def _blank_is_missing(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in data.items()}
        return data


class AgencyIn(RecordIn):
    kind: ClassVar[str] = "agencies"
    name_en: Annotated[str, BeforeValidator(clean_text)]
    name_km: Text = None
    agency_kind: Annotated[str, _coded("agency_kind")] = "other"


class OperationIn(RecordIn):
    kind: ClassVar[str] = "operations"
    references: ClassVar[dict[str, str]] = {"lead_agency": "agencies"}
    operation_date: Annotated[date, BeforeValidator(parse_date)]
    province: Annotated[str, _coded("province")]
    lead_agency: Text = None
    operation_kind: Annotated[str, _coded("operation_kind")]
    description: Text = None

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> OperationIn:
        _check_not_future(self.operation_date, "operation_date", info)
        return self


class CaseIn(RecordIn):
    kind: ClassVar[str] = "cases"
    references: ClassVar[dict[str, str]] = {"agency": "agencies", "operations": "operations"}
    offence_type: Annotated[str, _coded("offence_type")]
    legal_article: Text = None
    opened_on: Date = None
    status: Annotated[str, _coded("case_status")] = "open"
    agency: Text = None
    operations: Refs = []


class _Person(RecordIn):
    name_latin: Text = None
    name_khmer: Text = None
    sex: Annotated[str, _coded("sex")] = "unknown"
    date_of_birth: Date = None
    age: Annotated[int | None, Field(ge=0, le=MAX_AGE)] = None
    nationality: Country = None
    province: Annotated[str | None, _coded("province")] = None
    case: Text = None
    agency: Text = None
    phone: Text = None
    address: Text = None


class SuspectIn(_Person):
    kind: ClassVar[str] = "suspects"
    references: ClassVar[dict[str, str]] = {"case": "cases", "agency": "agencies"}
    arrest_date: Date = None
    charges: Text = None

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> SuspectIn:
        _check_not_future(self.arrest_date, "arrest_date", info)
        _check_not_future(self.date_of_birth, "date_of_birth", info)
        derive_age(self.date_of_birth, self.age, self.arrest_date, "arrest_date")
        return self

    @property
    def age_at_arrest(self) -> int | None:
        return derive_age(self.date_of_birth, self.age, self.arrest_date, "arrest_date")


class VictimIn(_Person):
    kind: ClassVar[str] = "victims"
    references: ClassVar[dict[str, str]] = {
        "case": "cases",
        "agency": "agencies",
        "operations": "operations",
    }
    rescue_date: Annotated[date, BeforeValidator(parse_date)]
    status: Annotated[str, _coded("victim_status")] = "confirmed"
    country_of_exploitation: Country = None
    exploitation_type: Annotated[str | None, _coded("exploitation_type")] = None
    labour_sector: Annotated[str | None, _coded("labour_sector")] = None
    means_of_control: Annotated[list[str], _coded_list("means_of_control")] = []
    recruiter_relation: Annotated[str | None, _coded("recruiter_relation")] = None
    operations: Refs = []

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> VictimIn:
        _check_not_future(self.rescue_date, "rescue_date", info)
        _check_not_future(self.date_of_birth, "date_of_birth", info)
        derive_age(self.date_of_birth, self.age, self.rescue_date, "rescue_date")
        return self

    @property
    def age_at_rescue(self) -> int | None:
        return derive_age(self.date_of_birth, self.age, self.rescue_date, "rescue_date")


class ProsecutionIn(RecordIn):
    kind: ClassVar[str] = "prosecutions"
    references: ClassVar[dict[str, str]] = {"suspect": "suspects", "case": "cases"}
    suspect: Annotated[str, BeforeValidator(clean_text)]
    case: Text = None
    charged_on: Annotated[date, BeforeValidator(parse_date)]
    charges: Text = None
    outcome: Annotated[str, _coded("prosecution_outcome")] = "pending"
    verdict_on: Date = None
    sentence_months: Annotated[int | None, Field(ge=0, le=1200)] = None
    suspended: Bool = None
    fine_khr: Annotated[int | None, Field(ge=0)] = None

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> ProsecutionIn:
        _check_not_future(self.charged_on, "charged_on", info)
        _check_not_future(self.verdict_on, "verdict_on", info)
        decided = self.outcome in {"convicted", "acquitted", "dismissed"}
        if decided and self.verdict_on is None:
            raise rule_error("verdict_on", f"required when the outcome is {self.outcome}")
        if not decided and self.verdict_on is not None:
            raise rule_error("verdict_on", "set but the outcome is still pending")
        if self.verdict_on and self.verdict_on < self.charged_on:
            raise rule_error("verdict_on", "before charged_on")
        if self.outcome != "convicted" and (self.sentence_months or self.fine_khr or self.suspended):
            raise rule_error("outcome", "a sentence or fine is recorded but the outcome is not convicted")
        return self


class AssistanceIn(RecordIn):
    kind: ClassVar[str] = "assistance"
    references: ClassVar[dict[str, str]] = {"victim": "victims", "agency": "agencies"}
    victim: Annotated[str, BeforeValidator(clean_text)]
    assistance_type: Annotated[str, _coded("assistance_type")]
    start_date: Annotated[date, BeforeValidator(parse_date)]
    end_date: Date = None
    agency: Text = None
    notes: Text = None

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> AssistanceIn:
        _check_not_future(self.start_date, "start_date", info)
        if self.end_date and self.end_date < self.start_date:
            raise rule_error("end_date", "before start_date")
        return self


class ReferralIn(RecordIn):
    kind: ClassVar[str] = "referrals"
    references: ClassVar[dict[str, str]] = {"victim": "victims", "to_agency": "agencies"}
    victim: Annotated[str, BeforeValidator(clean_text)]
    to_agency: Annotated[str, BeforeValidator(clean_text)]
    referred_on: Annotated[date, BeforeValidator(parse_date)]
    service: Annotated[str | None, _coded("assistance_type")] = None
    consent: Annotated[bool, BeforeValidator(parse_bool)]
    consent_date: Date = None
    notes: Text = None

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> ReferralIn:
        _check_not_future(self.referred_on, "referred_on", info)
        if self.consent and self.consent_date is None:
            raise rule_error("consent_date", "required when consent is given")
        if self.consent_date and self.consent_date > self.referred_on:
            raise rule_error("consent_date", "after referred_on: consent must precede the referral")
        return self


def field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, message) for each problem of a failed validation, in a data officer's words.

    Cross-field rules carry their field in the error context (``rule_error``),
    so every message can be shown beside the field it is about.
    """
    out = []
    for err in exc.errors():
        loc = err.get("loc") or ()
        field = str(loc[0]) if loc else str((err.get("ctx") or {}).get("field", ""))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing" or (loc and err.get("input") is None):
            message = "required field is empty"
        elif err["type"] in {"int_parsing", "int_from_float"}:
            message = "not a whole number"
        elif err["type"] == "extra_forbidden":
            message = "unknown field"
        out.append((field, message))
    return out


#: Fields that identify a person: sealed at rest, masked unless the role may see them.
IDENTIFYING_FIELDS = ("name_latin", "name_khmer", "date_of_birth", "phone", "address")

#: Every importable kind, in dependency order (a kind only refers to kinds before it).
SCHEMAS: dict[str, type[RecordIn]] = {
    m.kind: m
    for m in (
        AgencyIn,
        OperationIn,
        CaseIn,
        SuspectIn,
        VictimIn,
        ProsecutionIn,
        AssistanceIn,
        ReferralIn,
    )
}


def columns(kind: str) -> list[str]:
    """The columns of a kind's import template and export, in a stable order."""
    return list(SCHEMAS[kind].model_fields)
