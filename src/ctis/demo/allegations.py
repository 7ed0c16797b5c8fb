"""Synthetic allegations for the demo database, with findings and evidence from the demo records.

The stories are invented, modelled on the kinds of claim the committee must
answer (an inflated figure in the press, a foreign assessment, a hotline tip,
a social-media rumour).  Evidence points at demo records found by query, not
by hard-coded ids, and at registry figures whose values are computed when
shown, so the allegations stay true to whatever the generator builds.  They
change no record, so the published 2024-H1 figures are untouched.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ctis import allegations
from ctis.security.permissions import Actor
from ctis.storage.db import session_scope
from ctis.storage.models import Allegation, Case, Operation, Victim, case_operations

#: The demo's own actor: every entry it writes is audited under this name.
DEMO_ACTOR = Actor(id=0, username="demo", role="administrator", agency_id=None, scope="all")


def _sihanoukville_case(session: Session) -> tuple[str | None, str | None, list[str]]:
    """A 2024 case with an operation in Preah Sihanouk, its operation, and two of its victims."""
    row = session.execute(
        select(Case.id, Case.external_id, Operation.external_id)
        .join(case_operations, case_operations.c.case_id == Case.id)
        .join(Operation, Operation.id == case_operations.c.operation_id)
        .where(
            Operation.province == "KH-18",
            Operation.operation_date.between(date(2024, 1, 1), date(2024, 6, 30)),
        )
        .order_by(Case.id)
        .limit(1)
    ).first()
    if row is None:
        return None, None, []
    victims = session.scalars(
        select(Victim.external_id).where(Victim.case_id == row[0]).order_by(Victim.id).limit(2)
    )
    return row[1], row[2], list(victims)


def _stories(case: str | None, operation: str | None, victims: list[str]) -> list[dict[str, Any]]:
    hotline_evidence: list[dict[str, Any]] = [
        {"type": "record", "kind": "cases", "external_id": case, "note": "case opened after the raid"},
        {
            "type": "record",
            "kind": "operations",
            "external_id": operation,
            "note": "the raid on the compound",
        },
        *[
            {"type": "record", "kind": "victims", "external_id": v, "note": "rescued in the raid"}
            for v in victims
        ],
    ]
    return [
        {
            "fields": {
                "external_id": "AL-2024-0001",
                "source": "media",
                "source_detail": "Daily Lantern (fictional)",
                "alleged_on": "2024-07-10",
                "received_on": "2024-07-10",
                "agency": "AG-NCCT",
                "text": "More than a thousand trafficking victims were rescued in the first half of 2024, "
                "most of them children.",
                "place": "Nationwide",
                "facts_alleged": "Number of victims rescued in 2024-H1; share of minors.",
                "finding": "unsubstantiated",
                "finding_on": "2024-07-15",
                "finding_summary": "The records count far fewer victims rescued in the first half of 2024, "
                "and fewer than half of them were minors. See the figures below.",
            },
            "log": [
                ("2024-07-11", "Report received from the press office; figures requested from the registry."),
                ("2024-07-15", "Figures checked against the records; the newspaper was sent the evidence."),
            ],
            "evidence": [
                {"type": "figure", "metric": "victims_rescued", "period": "2024-H1"},
                {"type": "figure", "metric": "victims_rescued_minor", "period": "2024-H1"},
            ],
        },
        {
            "fields": {
                "external_id": "AL-2024-0002",
                "source": "foreign_assessment",
                "source_detail": "Annual assessment of a partner government (fictional)",
                "alleged_on": "2024-06-24",
                "received_on": "2024-06-25",
                "agency": "AG-NCCT",
                "text": "The government did not prosecute or convict any trafficker in 2023.",
                "place": "Nationwide",
                "facts_alleged": "Prosecutions and convictions of traffickers in 2023.",
                "finding": "partly_substantiated",
                "finding_on": "2024-08-01",
                "finding_summary": "Suspects were prosecuted and convicted in 2023; the number of "
                "convictions is low compared with arrests, which the assessment rightly notes.",
            },
            "log": [
                ("2024-06-26", "Assessment received through the Ministry of Foreign Affairs."),
                ("2024-08-01", "Court outcomes for 2023 compiled from the records."),
            ],
            "evidence": [
                {"type": "figure", "metric": "suspects_prosecuted", "period": "2023"},
                {"type": "figure", "metric": "suspects_convicted", "period": "2023"},
                {"type": "figure", "metric": "suspects_arrested", "period": "2023"},
            ],
        },
        {
            "fields": {
                "external_id": "AL-2024-0003",
                "source": "hotline",
                "source_detail": "Committee hotline",
                "alleged_on": "2024-02-02",
                "received_on": "2024-02-02",
                "agency": "AG-PS-POL",
                "text": "Workers recruited for online jobs are held in a building and not allowed to leave.",
                "place": "Sihanoukville",
                "province": "KH-18",
                "people_alleged": "Managers of the compound (not named by the caller)",
                "facts_alleged": "Confinement of recruited workers; passports withheld.",
                "finding": "substantiated" if case else "open",
                "finding_on": "2024-06-30" if case else None,
                "finding_summary": "A raid found workers held against their will; a case was opened "
                "and the victims were assisted."
                if case
                else None,
            },
            "log": [
                ("2024-02-03", "Tip passed to the provincial anti-trafficking police."),
                ("2024-06-30", "Operation carried out; case and victims recorded."),
            ],
            "evidence": [e for e in hotline_evidence if e["external_id"]],
        },
        {
            "fields": {
                "external_id": "AL-2024-0004",
                "source": "social_media",
                "source_detail": "Video-sharing site",
                "alleged_on": "2024-09-03",
                "received_on": "2024-09-04",
                "agency": "AG-NCCT",
                "text": "Foreign workers in a compound were forced to give blood and were beaten every day.",
                "place": "Sihanoukville",
                "province": "KH-18",
                "facts_alleged": "Forced blood donation and daily beatings in a compound.",
                "finding": "unsubstantiated",
                "finding_on": "2024-09-20",
                "finding_summary": "Inspection and interviews found no sign of forced blood donation; "
                "no victim record mentions it.",
            },
            "log": [
                ("2024-09-04", "Post reported by the press office."),
                ("2024-09-12", "Joint inspection of the site with the provincial authorities."),
                ("2024-09-20", "Finding agreed by the committee."),
            ],
            "evidence": [
                {
                    "type": "figure",
                    "metric": "victims_rescued",
                    "period": "2024-H2",
                    "dimension": "province",
                    "value": "KH-18",
                    "note": "victims rescued in Preah Sihanouk in the period",
                },
            ],
        },
        {
            "fields": {
                "external_id": "AL-2025-0005",
                "source": "media",
                "source_detail": "Foreign broadcaster (fictional)",
                "alleged_on": "2025-03-12",
                "received_on": "2025-03-12",
                "agency": "AG-NCCT",
                "text": "A foreign visitor was kidnapped and sold to a scam compound near the border.",
                "place": "Border area",
                "facts_alleged": "Kidnapping and sale of a foreign national.",
            },
            "log": [("2025-03-13", "Request for details sent to the broadcaster.")],
            "evidence": [
                {
                    "type": "figure",
                    "metric": "victims_rescued",
                    "period": "2025-Q1",
                    "note": "victims of every nationality rescued in the quarter",
                }
            ],
        },
    ]


def add_demo_allegations(engine: Engine) -> int:
    """Register the demo allegations (once: an existing one is left as it is); return how many were added."""
    added = 0
    with session_scope(engine) as session:
        case, operation, victims = _sihanoukville_case(session)
        for story in _stories(case, operation, victims):
            external_id = story["fields"]["external_id"]
            if session.scalar(select(Allegation.id).where(Allegation.external_id == external_id)):
                continue
            allegations.save_allegation(session, DEMO_ACTOR, story["fields"])
            for day, text in story["log"]:
                allegations.add_log_entry(session, DEMO_ACTOR, external_id, {"entry_on": day, "text": text})
            for link in story["evidence"]:
                allegations.add_evidence(session, DEMO_ACTOR, external_id, link)
            added += 1
    return added
