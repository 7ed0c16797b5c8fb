"""One registry of metrics.

Each :class:`Metric` states its key, its English and Khmer labels, a definition
sentence giving the counting rule, and how it is computed: a *fact* — the rows
it counts (a FROM clause and WHERE conditions for a period), the column that
identifies what is counted, and an SQL expression per breakdown dimension.
Reports, drill-downs, exports and (later) the dashboard and claim checks all
go through these definitions; no other module decides what a figure means.

Counting rules, stated once here and in each definition:

* a period is inclusive at both ends; a record counts in a period if the date
  named in the definition falls in it;
* people (victims, suspects) are counted once per metric and period however
  many operations, assistance or referral records link them;
* people are counted as *persons*, not records: records that person linkage
  (``ctis link``, ``ctis.linkage.service``) found to be the same person share a
  ``person_id`` (the smallest record id of the person's records), and a metric
  counts distinct ``coalesce(person_id, id)`` — a record never linked is its
  own person.  A person with two records in one period counts once in the
  total; a breakdown counts the person in each cell one of their records falls
  in (a police record and a shelter record: once under each agency), so the
  cells of a breakdown may sum to more than the total;
* "foreign" means a known nationality other than Cambodian (KHM); an unknown
  nationality is neither Cambodian nor foreign;
* "minor" means under 18 on the rescue date; the 18th birthday is not a minor;
* "female" means recorded sex female, any age (female minors count in both).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import cache
from importlib import resources

from sqlalchemy import ColumnElement, FromClause, and_, case, func, literal, null, or_, select, true
from sqlalchemy.sql.elements import ColumnElement as _Col

from ctis.domain.ages import ADULT_AGE, AGE_BANDS, UNKNOWN_BAND
from ctis.domain.periods import Period
from ctis.domain.values import CAMBODIA
from ctis.storage.models import (
    Assistance,
    Case,
    Operation,
    Prosecution,
    Referral,
    ScreenedPost,
    Suspect,
    Victim,
    case_operations,
)

#: Offence types that make a case a "trafficking or sexual exploitation" case:
#: the offences of the 2008 Law on Suppression of Human Trafficking and Sexual
#: Exploitation.  Child labour and "other" offences are recorded but not counted.
TRAFFICKING_OFFENCES = (
    "trafficking_in_persons",
    "sexual_exploitation",
    "forced_labour",
    "forced_criminality",
    "forced_marriage",
)

#: Breakdown dimensions and the value set their codes come from (for labels).
DIMENSIONS: dict[str, str] = {
    "sex": "sex",
    "age_band": "age_band",
    "nationality": "country",
    "province": "province",
    "exploitation_type": "exploitation_type",
    "offence_type": "offence_type",
    "agency": "agency",
    "exploitation_form": "exploitation_form",
    "age_group": "age_group",
    "victim_status": "victim_status",
    # screened posts (``posts_flagged``): free codes, no value set
    "language": "language",
    "post_status": "post_status",
    "network": "network",
}
#: Dimensions whose codes are free text (no value set): shown as they are, never published as tables.
FREE_DIMENSIONS = frozenset({"language", "post_status", "network"})


@cache
def exploitation_forms() -> dict[str, dict[str, str]]:
    """``{source field: {code: form}}`` from ``domain/data/exploitation_forms.csv``.

    The TIP report splits every figure into sex and labour trafficking; which of
    our exploitation and offence types is which is a judgement an analyst must be
    able to read and change, so it is kept as data, not in a CASE written here.
    """
    with (
        resources.files("ctis.domain").joinpath("data", "exploitation_forms.csv").open(encoding="utf-8") as fh
    ):
        out: dict[str, dict[str, str]] = {}
        for row in csv.DictReader(fh):
            out.setdefault(row["source"], {})[row["code"]] = row["form"]
    return out


def exploitation_form_sql(code: _Col[str | None], source: str) -> ColumnElement[str | None]:
    """Form of exploitation (sexual, labour, other, unspecified) of a code column.

    A code missing from the mapping file gives NULL, so it shows as ``unknown``
    instead of being counted under a form nobody chose; exports report such codes.
    """
    grouped: dict[str, list[str]] = {}
    for value, form in exploitation_forms()[source].items():
        grouped.setdefault(form, []).append(value)
    return case(*[(code.in_(codes), literal(form)) for form, codes in grouped.items()], else_=null())


def age_group_sql(age: _Col[int | None]) -> ColumnElement[str | None]:
    """``child`` under 18, ``adult`` from 18, NULL when the age is unknown (the TIP and GLOTIP split)."""
    return case((age.is_(None), null()), (age < ADULT_AGE, literal("child")), else_=literal("adult"))


@dataclass(frozen=True)
class Facts:
    """The rows a metric counts in one period."""

    unit: str  # what the ids are ids of: victims, suspects, cases, operations
    #: What is counted: the record id, or for people the person identity
    #: ``coalesce(person_id, id)`` (the id of the person's representative record).
    record_id: ColumnElement[int]
    from_: FromClause
    where: list[ColumnElement[bool]]
    dimensions: dict[str, ColumnElement[object]]
    #: True when the FROM clause can hold a counted record more than once
    #: (joins to operations, assistance, referrals): then COUNT(DISTINCT).
    fan_out: bool = False
    #: For people: the counted record's own id (``record_id`` is its person's);
    #: its presence makes every count COUNT(DISTINCT record_id).
    row_id: ColumnElement[int] | None = None


@dataclass(frozen=True)
class Metric:
    key: str
    label_en: str
    label_km: str
    definition: str
    facts: Callable[[Period], Facts] = field(repr=False)

    def label(self, lang: str = "en") -> str:
        return self.label_km if lang == "km" else self.label_en

    @property
    def unit(self) -> str:
        return self.facts(_ANY_PERIOD).unit

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(self.facts(_ANY_PERIOD).dimensions)


def age_band_sql(age: _Col[int | None]) -> ColumnElement[str]:
    """CTDC age band of an age column, as a portable SQL CASE."""
    whens = [(age.is_(None), literal(UNKNOWN_BAND))]
    for _low, high, label in AGE_BANDS[:-1]:
        whens.append((age <= high, literal(label)))  # type: ignore[operator]
    return case(*whens, else_=literal(AGE_BANDS[-1][2]))


def _in(column: _Col[object], period: Period) -> ColumnElement[bool]:
    return column.between(period.start, period.end)


def _is_foreign(nationality: _Col[str | None]) -> ColumnElement[bool]:
    return and_(nationality.is_not(None), nationality != CAMBODIA)


V, S, C, OP = Victim.__table__.c, Suspect.__table__.c, Case.__table__.c, Operation.__table__.c
A, R, P = Assistance.__table__.c, Referral.__table__.c, Prosecution.__table__.c

#: The person a victim or suspect record belongs to (see the counting rules above).
#: People facts count it with COUNT(DISTINCT), since one person may have several
#: records; a count through a child table always joins the person table, since the
#: child's column (``assistance.victim_id``) names a record, not a person.  ``fan_out`` keeps its
#: meaning for publication (a record in several cells of one breakdown); linked
#: records of one person normally agree on the published breakdowns.
VICTIM_PERSON = func.coalesce(V.person_id, V.id)
SUSPECT_PERSON = func.coalesce(S.person_id, S.id)


def _victim_dims(agency: _Col[int | None]) -> dict[str, ColumnElement[object]]:
    return {
        "sex": V.sex,
        "age_band": age_band_sql(V.age_at_rescue),
        "nationality": V.nationality,
        "province": V.province,
        "exploitation_type": V.exploitation_type,
        "agency": agency,
        "exploitation_form": exploitation_form_sql(V.exploitation_type, "exploitation_type"),
        "age_group": age_group_sql(V.age_at_rescue),
        "victim_status": V.status,
    }


def _suspect_dims() -> dict[str, ColumnElement[object]]:
    return {
        "sex": S.sex,
        "age_band": age_band_sql(S.age_at_arrest),
        "nationality": S.nationality,
        "province": S.province,
        "agency": S.agency_id,
        # the suspect's case says what the suspect is suspected of; read in a
        # subquery so that totals keep their one-table shape
        "exploitation_form": select(exploitation_form_sql(C.offence_type, "offence_type"))
        .where(C.id == S.case_id)
        .scalar_subquery(),
        "age_group": age_group_sql(S.age_at_arrest),
    }


def _victims_rescued(*extra: ColumnElement[bool]) -> Callable[[Period], Facts]:
    def facts(period: Period) -> Facts:
        return Facts(
            unit="victims",
            record_id=VICTIM_PERSON,
            from_=Victim.__table__,
            where=[_in(V.rescue_date, period), *extra],
            dimensions=_victim_dims(V.agency_id),
            row_id=V.id,
        )

    return facts


def _victims_assisted(*extra: ColumnElement[bool]) -> Callable[[Period], Facts]:
    def facts(period: Period) -> Facts:
        return Facts(
            unit="victims",
            record_id=VICTIM_PERSON,
            from_=Assistance.__table__.join(Victim.__table__, A.victim_id == V.id),
            where=[_in(A.start_date, period), *extra],
            dimensions=_victim_dims(A.agency_id),
            fan_out=True,
            row_id=V.id,
        )

    return facts


def _victims_referred(period: Period) -> Facts:
    return Facts(
        unit="victims",
        record_id=VICTIM_PERSON,
        from_=Referral.__table__.join(Victim.__table__, R.victim_id == V.id),
        where=[_in(R.referred_on, period), R.consent == true()],
        dimensions=_victim_dims(R.to_agency_id),
        fan_out=True,
        row_id=V.id,
    )


def _suspects_arrested(*extra: ColumnElement[bool]) -> Callable[[Period], Facts]:
    def facts(period: Period) -> Facts:
        return Facts(
            unit="suspects",
            record_id=SUSPECT_PERSON,
            from_=Suspect.__table__,
            where=[_in(S.arrest_date, period), *extra],
            dimensions=_suspect_dims(),
            row_id=S.id,
        )

    return facts


def _suspects_prosecuted(period: Period) -> Facts:
    return Facts(
        unit="suspects",
        record_id=SUSPECT_PERSON,
        from_=Prosecution.__table__.join(Suspect.__table__, P.suspect_id == S.id),
        where=[_in(P.charged_on, period)],
        dimensions=_suspect_dims(),
        fan_out=True,
        row_id=S.id,
    )


def _suspects_convicted(period: Period) -> Facts:
    return Facts(
        unit="suspects",
        record_id=SUSPECT_PERSON,
        from_=Prosecution.__table__.join(Suspect.__table__, P.suspect_id == S.id),
        where=[P.outcome == "convicted", _in(P.verdict_on, period)],
        dimensions=_suspect_dims(),
        fan_out=True,
        row_id=S.id,
    )


def _suspects_sentenced(*extra: ColumnElement[bool]) -> Callable[[Period], Facts]:
    def facts(period: Period) -> Facts:
        convicted = _suspects_convicted(period)
        return Facts(
            unit="suspects",
            record_id=SUSPECT_PERSON,
            from_=convicted.from_,
            where=[*convicted.where, *extra],
            dimensions=_suspect_dims(),
            fan_out=True,
            row_id=S.id,
        )

    return facts


def _cases_opened(period: Period) -> Facts:
    return Facts(
        unit="cases",
        record_id=C.id,
        from_=Case.__table__,
        where=[_in(C.opened_on, period), C.offence_type.in_(TRAFFICKING_OFFENCES)],
        dimensions={
            "offence_type": C.offence_type,
            "exploitation_form": exploitation_form_sql(C.offence_type, "offence_type"),
            "agency": C.agency_id,
        },
    )


def _cases_cracked_down(period: Period) -> Facts:
    co = case_operations.c
    return Facts(
        unit="cases",
        record_id=C.id,
        from_=Case.__table__.join(case_operations, co.case_id == C.id).join(
            Operation.__table__, co.operation_id == OP.id
        ),
        where=[_in(OP.operation_date, period), C.offence_type.in_(TRAFFICKING_OFFENCES)],
        dimensions={
            "province": OP.province,
            "offence_type": C.offence_type,
            "agency": OP.lead_agency_id,
        },
        fan_out=True,
    )


def _operations(period: Period) -> Facts:
    return Facts(
        unit="operations",
        record_id=OP.id,
        from_=Operation.__table__,
        where=[_in(OP.operation_date, period)],
        dimensions={"province": OP.province, "agency": OP.lead_agency_id},
    )


SP = ScreenedPost.__table__.c


def _posts_flagged(period: Period) -> Facts:
    # posted_at is a date-time: the period's last day counts until its midnight
    return Facts(
        unit="posts",
        record_id=SP.id,
        from_=ScreenedPost.__table__,
        where=[
            SP.flagged == true(),
            SP.posted_at >= datetime.combine(period.start, time.min),
            SP.posted_at < datetime.combine(period.end + timedelta(days=1), time.min),
        ],
        dimensions={"language": SP.language, "post_status": SP.status, "network": SP.network_id},
    )


# Any period will do to inspect a metric's unit and dimensions.
_ANY_PERIOD = Period(start=date(2000, 1, 1), end=date(2000, 1, 1), label="-", kind="range")

METRICS: dict[str, Metric] = {
    m.key: m
    for m in [
        Metric(
            "cases_cracked_down",
            "Cases cracked down",
            "ករណីដែលបានបង្ក្រាប",
            "Distinct cases of trafficking in persons or sexual exploitation (offence types: "
            + ", ".join(TRAFFICKING_OFFENCES)
            + ") linked to at least one operation dated in the period. Province and agency are "
            "those of the operation; a case with operations in two provinces counts once in the "
            "total and once under each province.",
            _cases_cracked_down,
        ),
        Metric(
            "operations",
            "Operations",
            "ប្រតិបត្តិការ",
            "Operations (raids, rescues, checkpoints, receptions, compound interventions) dated "
            "in the period, by the operation's province and lead agency.",
            _operations,
        ),
        Metric(
            "suspects_arrested",
            "Suspects arrested",
            "ជនសង្ស័យដែលត្រូវបានចាប់ខ្លួន",
            "Distinct suspects with an arrest date in the period. Age band is the age on the arrest date.",
            _suspects_arrested(),
        ),
        Metric(
            "suspects_arrested_foreign",
            "Foreign suspects arrested",
            "ជនសង្ស័យជាជនបរទេសដែលត្រូវបានចាប់ខ្លួន",
            "Distinct suspects with an arrest date in the period whose recorded nationality is "
            "known and other than Cambodian (KHM).",
            _suspects_arrested(_is_foreign(S.nationality)),
        ),
        Metric(
            "suspects_prosecuted",
            "Suspects prosecuted",
            "ជនសង្ស័យដែលត្រូវបានចោទប្រកាន់",
            "Distinct suspects with a prosecution whose charge date is in the period, counted "
            "once however many prosecutions they have.",
            _suspects_prosecuted,
        ),
        Metric(
            "suspects_convicted",
            "Suspects convicted",
            "ជនសង្ស័យដែលត្រូវបានផ្តន្ទាទោស",
            "Distinct suspects with a prosecution whose outcome is convicted and whose verdict "
            "date is in the period.",
            _suspects_convicted,
        ),
        Metric(
            "victims_rescued",
            "Victims rescued",
            "ជនរងគ្រោះដែលត្រូវបានជួយសង្គ្រោះ",
            "Distinct victims (possible or confirmed) identified or rescued in the period, by "
            "their rescue date; a victim linked to several operations counts once. Age band is "
            "the age on the rescue date.",
            _victims_rescued(),
        ),
        Metric(
            "victims_rescued_female",
            "Female victims rescued",
            "ជនរងគ្រោះជាស្ត្រីដែលត្រូវបានជួយសង្គ្រោះ",
            "Victims rescued in the period whose recorded sex is female, at any age (female "
            "minors are counted here and among minors).",
            _victims_rescued(V.sex == "female"),
        ),
        Metric(
            "victims_rescued_minor",
            "Minor victims rescued",
            "ជនរងគ្រោះអាយុក្រោម ១៨ ឆ្នាំដែលត្រូវបានជួយសង្គ្រោះ",
            "Victims rescued in the period who were under 18 on the rescue date (from the date "
            "of birth, or the age recorded at identification); a victim whose 18th birthday is "
            "the rescue date is not a minor; unknown ages are not counted.",
            _victims_rescued(V.age_at_rescue < ADULT_AGE),
        ),
        Metric(
            "victims_assisted",
            "Victims assisted",
            "ជនរងគ្រោះដែលទទួលបានជំនួយ",
            "Distinct victims with any assistance (shelter, medical, legal, psychosocial, "
            "repatriation, reintegration) starting in the period; agency is the provider.",
            _victims_assisted(),
        ),
        Metric(
            "victims_repatriated",
            "Victims repatriated",
            "ជនរងគ្រោះដែលត្រូវបានធ្វើមាតុភូមិនិវត្តន៍",
            "Distinct victims with repatriation assistance starting in the period.",
            _victims_assisted(A.assistance_type == "repatriation"),
        ),
        Metric(
            "victims_referred",
            "Victims referred",
            "ជនរងគ្រោះដែលត្រូវបានបញ្ជូនបន្ត",
            "Distinct victims referred to another agency in the period with their consent "
            "recorded; agency is the agency referred to.",
            _victims_referred,
        ),
        Metric(
            "cases_opened",
            "Investigations opened",
            "ការស៊ើបអង្កេតដែលបានបើក",
            "Distinct cases of trafficking in persons or sexual exploitation (the offence types of "
            "cases cracked down) whose opening date is in the period, whether or not an operation "
            "followed; agency is the case's agency. The US TIP report's investigations.",
            _cases_opened,
        ),
        Metric(
            "suspects_convicted_prison",
            "Convicted, prison sentence",
            "ជនដែលត្រូវបានផ្តន្ទាទោសដាក់ពន្ធនាគារ",
            "Distinct suspects convicted in the period (verdict date) with a prison term of at "
            "least one month that is not suspended.",
            _suspects_sentenced(P.sentence_months > 0, or_(P.suspended.is_(None), P.suspended.is_(False))),
        ),
        Metric(
            "suspects_convicted_suspended",
            "Convicted, suspended sentence",
            "ជនដែលត្រូវបានផ្តន្ទាទោសព្យួរទោស",
            "Distinct suspects convicted in the period (verdict date) whose sentence is recorded "
            "as suspended, wholly or in part.",
            _suspects_sentenced(P.suspended.is_(True)),
        ),
        Metric(
            "suspects_convicted_fine_only",
            "Convicted, fine only",
            "ជនដែលត្រូវបានផ្តន្ទាទោសពិន័យជាប្រាក់តែប៉ុណ្ណោះ",
            "Distinct suspects convicted in the period (verdict date) with a fine and no prison "
            "term (none recorded, or zero months).",
            _suspects_sentenced(P.fine_khr > 0, or_(P.sentence_months.is_(None), P.sentence_months == 0)),
        ),
        Metric(
            "posts_flagged",
            "Recruitment posts flagged",
            "ការប្រកាសជ្រើសរើសដែលត្រូវបានសម្គាល់",
            "Online recruitment posts screened (ctis.screening) and flagged for signs of trafficking "
            "or scam-compound recruitment (score 0.5 or more, with at least one named indicator), "
            "whose posted date falls in the period; a post re-screened is counted once; posts "
            "without a posted date are not counted. Breakdowns: the post's language, the "
            "analyst's status (new, benign, watch, referred) and its network.",
            _posts_flagged,
        ),
    ]
}


#: The person rule every people metric's definition ends with (stated once, here).
PERSONS_RULE = (
    " Counted as persons: records that person linkage found to be one person count once in the "
    "total, and once in each breakdown cell one of them falls in; a record never linked counts "
    "as its own person."
)


def _with_person_rule(metric: Metric) -> Metric:
    if metric.unit in ("victims", "suspects"):
        return replace(metric, definition=metric.definition + PERSONS_RULE)
    return metric


METRICS = {key: _with_person_rule(metric) for key, metric in METRICS.items()}


def get_metric(key: str) -> Metric:
    try:
        return METRICS[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; known: {', '.join(METRICS)}") from None
