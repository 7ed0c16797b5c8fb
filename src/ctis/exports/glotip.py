"""UNODC GLOTIP-style tables: offences, persons suspected, prosecuted and convicted, victims detected.

The Global Report on Trafficking in Persons questionnaire asks for persons
brought into contact with the criminal justice system by sex, age group and
citizenship, and for victims detected by age group, sex, form of exploitation
and citizenship (SDG indicator 16.2.2).  Each table is one registry metric by
two of those breakdowns; "persons suspected" are suspects arrested, and
"offences recorded" are trafficking cases opened, by offence type.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from ctis.domain.periods import Period
from ctis.exports.release import TableExport, TableSpec, export_tables
from ctis.publication.gate import DpParams, Figure, Method, SuppressionParams
from ctis.security.permissions import Actor

_PERSONS = [
    ("suspected", "suspects_arrested", "Persons suspected (arrested)"),
    ("prosecuted", "suspects_prosecuted", "Persons prosecuted"),
    ("convicted", "suspects_convicted", "Persons convicted"),
]

SPECS: list[TableSpec] = [
    TableSpec("offences", "cases_opened", ("offence_type",), "Offences recorded (cases opened), by offence"),
    *(
        spec
        for stem, key, title in _PERSONS
        for spec in (
            TableSpec(f"{stem}-sex-age", key, ("sex", "age_group"), f"{title}, by sex and age group"),
            TableSpec(
                f"{stem}-sex-citizenship", key, ("sex", "nationality"), f"{title}, by sex and citizenship"
            ),
        )
    ),
    TableSpec(
        "victims-sex-age", "victims_rescued", ("sex", "age_group"), "Victims detected, by sex and age group"
    ),
    TableSpec(
        "victims-form-sex",
        "victims_rescued",
        ("exploitation_form", "sex"),
        "Victims detected, by form of exploitation and sex",
    ),
    TableSpec(
        "victims-form-age",
        "victims_rescued",
        ("exploitation_form", "age_group"),
        "Victims detected, by form of exploitation and age group",
    ),
    TableSpec(
        "victims-sex-citizenship",
        "victims_rescued",
        ("sex", "nationality"),
        "Victims detected, by sex and citizenship",
    ),
]


def export_glotip(
    session: Session,
    actor: Actor,
    period: Period,
    *,
    exact: bool = False,
    method: Method | str = Method.SUPPRESSION,
    params: SuppressionParams | DpParams | None = None,
    earlier: Sequence[Figure] = (),
) -> TableExport:
    """The GLOTIP tables for any period (UNODC collects calendar years), protected unless ``exact``."""
    return export_tables(
        session, actor, "glotip", period, SPECS, exact=exact, method=method, params=params, earlier=earlier
    )
