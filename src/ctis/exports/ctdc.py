"""Victim records in the layout of the CTDC global synthetic dataset (codebook 2024, 27 variables).

One row per victim the registry's ``victims_rescued`` counts in the period, so
the export and the published figure can never disagree about who is in it.
Values come from our value sets through their ``ctdc`` column; a value with no
CTDC equivalent is left blank and reported in :attr:`CtdcExport.unmapped`.

Record-level rows cannot pass through cell suppression, so by default they are
made k-anonymous on the quasi-identifiers a neighbour, an employer or a
journalist could know (sex, age band, citizenship, country of exploitation,
year, form of exploitation): attributes of rare rows are blanked, citizenship
first, until every combination is shared by at least k rows, and rows that
stay rare are dropped.  ``exact=True`` skips this, for internal use only.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import pycountry
from sqlalchemy import select
from sqlalchemy.orm import Session

from ctis.domain.ages import age_band
from ctis.domain.periods import Period
from ctis.exports.mapping import Unmapped, UnmappedLog, ctdc_codes
from ctis.metrics.registry import METRICS
from ctis.metrics.report import first_records
from ctis.publication.releases import lock_releases, store_release
from ctis.security import audit
from ctis.security.permissions import Actor, Permission, authorize
from ctis.storage.models import Victim

#: CTDC published its k-anonymised dataset with k = 11; the release gate's default threshold is 10.
DEFAULT_K = 10
EXACT_WARNING = (
    "EXACT RECORD-LEVEL EXPORT - NOT ANONYMISED. For internal and official use only; "
    "never publish or share this file."
)


@dataclass(frozen=True)
class Variable:
    name: str
    group: str
    allowed: tuple[str, ...]
    source: str


@cache
def codebook() -> tuple[Variable, ...]:
    """The 27 variables in the codebook's order, from ``domain/data/ctdc_2024_codebook.csv``."""
    source = resources.files("ctis.domain").joinpath("data", "ctdc_2024_codebook.csv")
    with source.open(encoding="utf-8") as fh:
        return tuple(
            Variable(r["variable"], r["group"], tuple(r["allowed"].split(";")), r["source"])
            for r in csv.DictReader(fh)
        )


def columns() -> tuple[str, ...]:
    return tuple(v.name for v in codebook())


def _group(name: str) -> tuple[str, ...]:
    return tuple(v.name for v in codebook() if v.group == name)


def _allowed(name: str) -> tuple[str, ...]:
    return next(v.allowed for v in codebook() if v.name == name)


#: Generalisation order: the attribute whose rarity identifies most, and matters least
#: to researchers, is blanked first.  ``exploitation`` stands for the three ``is…`` flags
#: (and the sector flags, which would give the form away).
GENERALISE = ("citizenship", "ageBroad", "CountryOfExploitation", "gender", "exploitation")
QUASI_IDENTIFIERS = ("gender", "ageBroad", "citizenship", "CountryOfExploitation", "yearOfRegistration")


@dataclass
class CtdcExport:
    period: Period
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    exact: bool
    k: int | None
    source_rows: int
    dropped: int = 0
    #: column -> how many values were blanked to reach k-anonymity
    generalised: dict[str, int] = field(default_factory=dict)
    unmapped: list[Unmapped] = field(default_factory=list)
    #: the version this export was recorded under in the release history (None when exact)
    release: int | None = None

    def protection(self) -> str:
        if self.exact:
            return EXACT_WARNING
        blanked = ", ".join(f"{c}: {n}" for c, n in self.generalised.items() if n) or "none"
        return (
            f"k-anonymity with k={self.k} on {', '.join(QUASI_IDENTIFIERS)} and the form of exploitation; "
            f"values blanked: {blanked}; rows dropped: {self.dropped} of {self.source_rows}"
        )


class _Mapper:
    """Maps one victim row to CTDC values, logging every value with no equivalent."""

    def __init__(self, log: UnmappedLog):
        self.log = log
        self.gender = ctdc_codes("sex")
        self.age = ctdc_codes("age_band")
        self.flags = {
            "means_of_control": (ctdc_codes("means_of_control"), _group("means")),
            "exploitation_type": (ctdc_codes("exploitation_type"), _group("exploitation")),
            "labour_sector": (ctdc_codes("labour_sector"), _group("labour_sector")),
            "recruiter_relation": (ctdc_codes("recruiter_relation"), _group("recruiter")),
        }

    def _coded(self, source: str, code: str | None, table: dict[str, str], target: str) -> str:
        if code is None:
            return ""
        value = table.get(code)
        if value is None:
            self.log.add(source, code, f"no CTDC {target} value; {target} left blank")
            return ""
        if value not in _allowed(target):
            self.log.add(source, code, f"mapped to {value!r}, not in the CTDC {target} value set; left blank")
            return ""
        return value

    def _country(self, source: str, code: str | None, target: str) -> str:
        if code is None:
            return ""
        if pycountry.countries.get(alpha_3=code) is None:
            self.log.add(source, code, f"not an ISO 3166-1 alpha-3 code; {target} left blank")
            return ""
        return code

    def _flag(self, row: dict[str, Any], source: str, code: str) -> None:
        table, allowed = self.flags[source]
        target = table.get(code)
        if target is None:
            self.log.add(source, code, "no CTDC 2024 column; no flag set")
        elif target not in allowed:
            self.log.add(source, code, f"mapped to {target!r}, not a CTDC 2024 {source} column; no flag set")
        else:
            row[target] = 1

    def row(self, v: Any) -> dict[str, Any]:
        out: dict[str, Any] = dict.fromkeys(columns(), "")
        out["yearOfRegistration"] = v.rescue_date.year
        out["gender"] = self._coded("sex", v.sex, self.gender, "gender")
        band = age_band(v.age_at_rescue) if v.age_at_rescue is not None else None
        out["ageBroad"] = self._coded("age_band", band, self.age, "ageBroad")
        out["citizenship"] = self._country("nationality", v.nationality, "citizenship")
        out["CountryOfExploitation"] = self._country(
            "country_of_exploitation", v.country_of_exploitation, "CountryOfExploitation"
        )
        for code in filter(None, (v.means_of_control or "").split(";")):
            self._flag(out, "means_of_control", code)
        for source in ("exploitation_type", "labour_sector", "recruiter_relation"):
            code = getattr(v, source)
            if code is not None:
                self._flag(out, source, code)
        return out


def _key(row: dict[str, Any], exploitation: Sequence[str]) -> tuple[Any, ...]:
    return (*(row[c] for c in QUASI_IDENTIFIERS), *(row[c] for c in exploitation))


def k_anonymise(rows: list[dict[str, Any]], k: int) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """Make every quasi-identifier combination shared by ``k`` rows or more.

    Rows in a combination rarer than ``k`` lose one attribute at a time (in
    :data:`GENERALISE` order); a blank joins the other blanks of that column, so
    rare rows pool together.  Rows still rare at the end are dropped.  Returns
    the kept rows, the number of values blanked per column and the rows dropped.
    """
    exploitation = _group("exploitation")
    blanked: dict[str, int] = {}
    for attribute in GENERALISE:
        sizes = Counter(_key(r, exploitation) for r in rows)
        rare = [r for r in rows if sizes[_key(r, exploitation)] < k]
        if not rare:
            break
        # a labour sector or sex-industry flag names the form too, so it goes with it
        targets = (*exploitation, *_group("labour_sector")) if attribute == "exploitation" else (attribute,)
        for row in rare:
            for column in targets:
                if row[column] != "":
                    blanked[column] = blanked.get(column, 0) + 1
                    row[column] = ""
    sizes = Counter(_key(r, exploitation) for r in rows)
    kept = [r for r in rows if sizes[_key(r, exploitation)] >= k]
    return kept, blanked, len(rows) - len(kept)


def export_ctdc(
    session: Session, actor: Actor, period: Period, *, exact: bool = False, k: int = DEFAULT_K
) -> CtdcExport:
    """Victim rows of ``period`` in the CTDC layout; k-anonymous unless ``exact``.

    Record-level data leave CTIS only with ``reports:export``, protected or not.
    The export is audited in the caller's transaction (commit it to keep the entry).
    """
    authorize(actor, Permission.REPORTS_EXPORT)
    if k < 2:
        raise ValueError(f"k must be 2 or more (got {k}); k = 1 protects nobody")
    facts = METRICS["victims_rescued"].facts(period)
    # One row per person (the registry's counting rule): the person's first record rescued in the
    # period — not ``facts.record_id``, the person's representative record, which may lie outside it.
    ids = first_records(facts)
    V = Victim.__table__.c
    query = select(
        V.id, V.sex, V.age_at_rescue, V.nationality, V.country_of_exploitation, V.exploitation_type,
        V.labour_sector, V.means_of_control, V.recruiter_relation, V.rescue_date,
    ).where(V.id.in_(ids))  # fmt: skip
    log = UnmappedLog()
    mapper = _Mapper(log)
    rows = [mapper.row(v) for v in session.execute(query)]
    result = CtdcExport(period, columns(), rows, exact, None if exact else k, len(rows))
    if not exact:
        result.rows, result.generalised, result.dropped = k_anonymise(rows, k)
    # Rows in content order, never in record or date order: the order must not leak who came when.
    result.rows.sort(key=lambda r: tuple(str(r[c]) for c in result.columns))
    result.unmapped = log.items()
    release_id = None
    if not exact:
        release_id, result.release = _record(session, actor, result)
    audit.record(
        session,
        actor.username,
        "export",
        "ctdc",
        release_id,
        {
            "period": period.label,
            "exact": exact,
            "k": result.k,
            "rows": len(result.rows),
            "dropped": result.dropped,
            "unmapped": sum(u.count for u in result.unmapped),
            "release": result.release,
        },
    )
    return result


def _record(session: Session, actor: Actor, result: CtdcExport) -> tuple[int, int]:
    """Record the k-anonymous rows in the release history: method, k and row count, no figures.

    Rows are not count tables, so the gate cannot audit them against releases
    and has nothing to read back from them; they are recorded so that the
    history of what left CTIS, and under which protection, is complete.
    """
    lock_releases(session)
    release, _cells = store_release(
        session,
        actor,
        method="k-anonymity",
        parameters={"k": result.k, "rows": len(result.rows), "dropped": result.dropped},
        request={"layout": "ctdc", "period": result.period.label},
        tables=[],
        note=f"CTDC export, {result.period.label}",
        kind="export:ctdc",
    )
    return release.id, release.version
