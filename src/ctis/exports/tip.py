"""The US TIP report's data tables for one TIP year (1 April – 31 March).

The TIP report asks a government for its prosecution and protection figures,
each split into sex trafficking and labour trafficking.  Every table here is a
registry metric by ``exploitation_form`` (from ``exploitation_forms.csv``) and
one more breakdown — sex, adult/child, nationality — so each row of the
submission states which registry definition it uses (the notes sheet gives the
definition of every table's metric).

=========================  =================================
TIP figure                 registry metric
=========================  =================================
investigations opened      ``cases_opened``
suspects arrested          ``suspects_arrested``
prosecutions initiated     ``suspects_prosecuted``
convictions                ``suspects_convicted``
sentences: prison          ``suspects_convicted_prison``
sentences: suspended       ``suspects_convicted_suspended``
sentences: fine only       ``suspects_convicted_fine_only``
victims identified         ``victims_rescued`` (also possible / confirmed)
victims referred           ``victims_referred``
victims assisted           ``victims_assisted``
=========================  =================================

A suspect's form of exploitation is that of the suspect's case (its offence
type); a case whose offence names no form ("trafficking in persons") counts as
``unspecified``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from ctis.domain.periods import Period
from ctis.exports.release import TableExport, TableSpec, export_tables
from ctis.metrics.registry import METRICS
from ctis.publication.gate import DpParams, Figure, Method, SuppressionParams
from ctis.security.permissions import Actor

#: (sheet-name stem, registry metric, what the TIP report calls it)
FIGURES: list[tuple[str, str, str]] = [
    ("investigations", "cases_opened", "Investigations opened"),
    ("arrests", "suspects_arrested", "Suspects arrested"),
    ("prosecutions", "suspects_prosecuted", "Prosecutions initiated (suspects charged)"),
    ("convictions", "suspects_convicted", "Convictions (suspects convicted)"),
    ("sentences-prison", "suspects_convicted_prison", "Sentences: prison term, not suspended"),
    ("sentences-suspended", "suspects_convicted_suspended", "Sentences: suspended"),
    ("sentences-fine-only", "suspects_convicted_fine_only", "Sentences: fine only"),
    ("victims-identified", "victims_rescued", "Victims identified"),
    ("victims-referred", "victims_referred", "Victims referred to services"),
    ("victims-assisted", "victims_assisted", "Victims assisted"),
]
#: second breakdown -> sheet-name suffix
SPLITS = {"sex": "sex", "age_group": "age", "nationality": "nationality", "victim_status": "status"}
FORM = "exploitation_form"
SPLIT_WORDS = {
    "sex": "sex",
    "age_group": "adult/child",
    "nationality": "nationality",
    "victim_status": "possible/confirmed",
}


def specs() -> list[TableSpec]:
    """Every TIP table: each figure by form alone when it has no other split, else by form and each split."""
    out: list[TableSpec] = []
    for stem, key, title in FIGURES:
        dims = METRICS[key].dimensions
        splits = [d for d in SPLITS if d in dims]
        if not splits:
            out.append(TableSpec(stem, key, (FORM,), f"{title}, by form of exploitation"))
        for d in splits:
            out.append(
                TableSpec(
                    f"{stem}-{SPLITS[d]}",
                    key,
                    (FORM, d),
                    f"{title}, by form of exploitation and {SPLIT_WORDS[d]}",
                )
            )
    return out


def export_tip(
    session: Session,
    actor: Actor,
    period: Period,
    *,
    exact: bool = False,
    method: Method | str = Method.SUPPRESSION,
    params: SuppressionParams | DpParams | None = None,
    earlier: Sequence[Figure] = (),
) -> TableExport:
    """The TIP tables for a TIP year (``TIP2024``), protected by the gate unless ``exact``."""
    if period.kind != "tip":
        raise ValueError(
            f"the TIP tables cover a TIP year (1 April - 31 March), such as TIP2024; got {period.label!r}"
        )
    return export_tables(
        session, actor, "tip", period, specs(), exact=exact, method=method, params=params, earlier=earlier
    )
