"""Build the synthetic demo database.

The demo covers 2022–2025, half-year by half-year, with plausible shares and a
rising trend of online-scam cases.  For the first half of 2024 the generator is
given, as its *targets*, the figures the committee published for that period;
it then creates individual operations, cases, suspects and victims whose dates,
sexes, ages and nationalities make those figures come out of the metric
registry.  The figures are never stored: ``ctis report --period 2024-H1``
counts the generated records like any others, and the tests check it.

Every record goes through the same domain validation and repository as an
import, so the demo is also a realistic exercise of the write path.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine

from ctis.demo.duplicates import add_duplicates, add_phones
from ctis.demo.names import person_name
from ctis.domain.ages import age_on
from ctis.domain.periods import Period, parse_period
from ctis.domain.records import (
    AgencyIn,
    AssistanceIn,
    CaseIn,
    OperationIn,
    ProsecutionIn,
    RecordIn,
    ReferralIn,
    SuspectIn,
    VictimIn,
)
from ctis.storage.db import session_scope
from ctis.storage.repository import Repository

TIP_LAW = "Law on Suppression of Human Trafficking and Sexual Exploitation (2008)"
LABOUR_LAW = "Labour Law (1997)"
SEED = 20241212  # the 12th National Day Against Human Trafficking
LAST_DAY = date(2025, 12, 31)


@dataclass(frozen=True)
class HalfYearTargets:
    """How many records of each sort to generate in one half-year."""

    cases: int  # counted (trafficking / sexual exploitation) cases with an operation
    suspects: int  # suspects arrested
    foreign_suspects: int
    victims: int  # victims rescued
    female_victims: int
    minor_victims: int


#: The committee's published first-half-2024 figures: the demo must reproduce them.
PUBLISHED_TARGETS = {"2024-H1": HalfYearTargets(104, 134, 4, 290, 241, 134)}

HALVES = [f"{y}-H{h}" for y in (2022, 2023, 2024, 2025) for h in (1, 2)]

AGENCIES = [
    (
        "AG-NCCT",
        "National Committee for Counter Trafficking Secretariat",
        "លេខាធិការដ្ឋានគណៈកម្មាធិការជាតិប្រយុទ្ធប្រឆាំងការជួញដូរមនុស្ស",
        "committee",
    ),
    (
        "AG-AHTJP",
        "Anti-Human Trafficking and Juvenile Protection Department",
        "នាយកដ្ឋានប្រឆាំងការជួញដូរមនុស្ស និងការពារអនីតិជន",
        "police",
    ),
    (
        "AG-PP-POL",
        "Phnom Penh Municipal Police, Anti-Trafficking Office",
        "ការិយាល័យប្រឆាំងការជួញដូរមនុស្ស ស្នងការដ្ឋាននគរបាលរាជធានីភ្នំពេញ",
        "police",
    ),
    (
        "AG-PS-POL",
        "Preah Sihanouk Provincial Police, Anti-Trafficking Office",
        "ការិយាល័យប្រឆាំងការជួញដូរមនុស្ស ស្នងការដ្ឋាននគរបាលខេត្តព្រះសីហនុ",
        "police",
    ),
    (
        "AG-BMC-POL",
        "Banteay Meanchey Provincial Police, Anti-Trafficking Office",
        "ការិយាល័យប្រឆាំងការជួញដូរមនុស្ស ស្នងការដ្ឋាននគរបាលខេត្តបន្ទាយមានជ័យ",
        "police",
    ),
    (
        "AG-MOSVY",
        "Ministry of Social Affairs, Veterans and Youth Rehabilitation",
        "ក្រសួងសង្គមកិច្ច អតីតយុទ្ធជន និងយុវនីតិសម្បទា",
        "ministry",
    ),
    ("AG-COURT-PP", "Phnom Penh Municipal Court of First Instance", "សាលាដំបូងរាជធានីភ្នំពេញ", "court"),
    ("AG-NGO-LOTUS", "Lotus Path Shelter (fictional)", "ទីជម្រកផ្លូវផ្កាឈូក (ឈ្មោះប្រឌិត)", "ngo"),
    (
        "AG-NGO-BRIDGE",
        "Safe Bridge Legal Aid (fictional)",
        "ជំនួយផ្លូវច្បាប់ស្ពានសុវត្ថិភាព (ឈ្មោះប្រឌិត)",
        "ngo",
    ),
    (
        "AG-IO-MIGR",
        "Regional Migration Assistance Office (fictional)",
        "ការិយាល័យជំនួយចំណាកស្រុកតំបន់ (ឈ្មោះប្រឌិត)",
        "io",
    ),
]
POLICE = ["AG-AHTJP", "AG-PP-POL", "AG-PS-POL", "AG-BMC-POL"]
PROVINCE_POLICE = {"KH-12": "AG-PP-POL", "KH-18": "AG-PS-POL", "KH-1": "AG-BMC-POL"}

PROVINCE_WEIGHTS = {
    "KH-12": 22, "KH-18": 18, "KH-1": 12, "KH-20": 8, "KH-17": 7, "KH-2": 6, "KH-9": 5,
    "KH-8": 5, "KH-3": 3, "KH-14": 3, "KH-21": 3, "KH-7": 2, "KH-22": 2, "KH-5": 2,
    "KH-4": 1, "KH-6": 1, "KH-10": 1, "KH-11": 1, "KH-13": 1, "KH-15": 1, "KH-16": 1,
    "KH-19": 1, "KH-23": 1, "KH-24": 1, "KH-25": 1,
}  # fmt: skip
FOREIGN_SUSPECT_NATIONALITIES = ["CHN", "CHN", "CHN", "VNM", "THA", "MYS", "IDN"]
FOREIGN_VICTIM_NATIONALITIES = ["VNM", "CHN", "IDN", "THA", "MMR", "MYS"]


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _day_in(rng: random.Random, period: Period) -> date:
    return period.start + timedelta(days=rng.randrange(period.days))


def _birth_for_age(rng: random.Random, age: int, on: date) -> date:
    """A date of birth that makes the person exactly ``age`` on ``on``."""
    latest = on.replace(year=on.year - age) if (on.month, on.day) != (2, 29) else date(on.year - age, 2, 28)
    birth = latest - timedelta(days=rng.randrange(365))
    while age_on(birth, on) != age:  # leap-year edges
        birth += timedelta(days=1)
    return birth


def _pick(rng: random.Random, n: int, k: int) -> set[int]:
    """Exactly ``k`` of the indices ``0..n-1``."""
    return set(rng.sample(range(n), k))


class DemoBuilder:
    """Accumulates validated records kind by kind; ``write`` stores them in one transaction."""

    def __init__(self, seed: int = SEED, today: date | None = None):
        self.seed = seed
        self.rng = random.Random(seed)
        self.today = today or date.today()
        self.records: dict[str, list[RecordIn]] = {}
        self._serial: dict[str, int] = {}
        #: external id of a second record -> the first record of the same person (the demo's truth)
        self.duplicate_of: dict[str, str] = {}

    def _next_id(self, prefix: str) -> str:
        self._serial[prefix] = self._serial.get(prefix, 0) + 1
        return f"{prefix}-{self._serial[prefix]:05d}"

    def add(self, schema: type[RecordIn], **fields: Any) -> RecordIn:
        record = schema.model_validate(fields, context={"today": self.today})
        self.records.setdefault(schema.kind, []).append(record)
        return record

    # -- the whole demo ---------------------------------------------------
    def build(self) -> DemoBuilder:
        for ext, name_en, name_km, kind in AGENCIES:
            self.add(AgencyIn, external_id=ext, name_en=name_en, name_km=name_km, agency_kind=kind)
        for index, label in enumerate(HALVES):
            self.half_year(parse_period(label), PUBLISHED_TARGETS.get(label) or self._targets(index))
        # phones and second records of the same people, each from a generator of its own
        add_phones(self, self.seed + 1)
        add_duplicates(self, self.seed + 2)
        return self

    def _targets(self, index: int) -> HalfYearTargets:
        """Plausible figures for a half-year without published targets: a slow rise."""
        rng = self.rng
        victims = round(rng.gauss(200 + 22 * index, 18))
        cases = round(victims / rng.uniform(2.6, 3.0))
        suspects = round(cases * rng.uniform(1.15, 1.4))
        return HalfYearTargets(
            cases=cases,
            suspects=suspects,
            foreign_suspects=max(1, round(suspects * rng.uniform(0.02, 0.06))),
            victims=victims,
            female_victims=round(victims * rng.uniform(0.78, 0.86)),
            minor_victims=round(victims * rng.uniform(0.38, 0.48)),
        )

    def half_year(self, period: Period, t: HalfYearTargets) -> None:
        rng = self.rng
        scam_share = {2022: 0.08, 2023: 0.14, 2024: 0.2, 2025: 0.24}[period.start.year]

        # Cases and their operations, all inside the half-year so that no case
        # is cracked down in two periods.
        cases: list[tuple[CaseIn, list[OperationIn]]] = []
        offence_weights = {
            "sexual_exploitation": 0.42 - scam_share / 2,
            "trafficking_in_persons": 0.3,
            "forced_labour": 0.12,
            "forced_criminality": scam_share,
            "forced_marriage": 0.06,
        }
        uncounted = max(1, round(t.cases * 0.06))  # child labour / other offences
        for i in range(t.cases + uncounted):
            offence = (
                _weighted(rng, offence_weights) if i < t.cases else rng.choice(["child_labour", "other"])
            )
            n_ops = 2 if rng.random() < 0.12 else 1
            province = _weighted(rng, PROVINCE_WEIGHTS)
            ops = []
            for _ in range(n_ops):
                kind = (
                    "scam_compound_intervention"
                    if offence == "forced_criminality"
                    else _weighted(rng, {"raid": 5, "rescue": 4, "investigation": 2, "checkpoint": 1})
                )
                ops.append(
                    self.add(
                        OperationIn,
                        external_id=self._next_id("OP"),
                        operation_date=_day_in(rng, period),
                        province=province,
                        lead_agency=PROVINCE_POLICE.get(province, "AG-AHTJP"),
                        operation_kind=kind,
                    )
                )
            ops.sort(key=lambda o: o.operation_date)  # type: ignore[attr-defined]
            case = self.add(
                CaseIn,
                external_id=self._next_id("CASE"),
                offence_type=offence,
                legal_article=LABOUR_LAW if offence in {"child_labour", "other"} else TIP_LAW,
                opened_on=ops[0].operation_date,  # type: ignore[attr-defined]
                status=rng.choice(["investigation", "prosecution", "prosecution", "closed"]),
                agency=ops[0].lead_agency,  # type: ignore[attr-defined]
                operations=[o.external_id for o in ops],
            )
            cases.append((case, ops))  # type: ignore[arg-type]
        counted = cases[: t.cases]

        # Repatriation receptions: operations without a case (returnees at the border).
        for _ in range(rng.randint(2, 5)):
            self.add(
                OperationIn,
                external_id=self._next_id("OP"),
                operation_date=_day_in(rng, period),
                province=rng.choice(["KH-1", "KH-20", "KH-12"]),
                lead_agency="AG-MOSVY",
                operation_kind="repatriation_reception",
            )

        self._suspects(period, t, counted)
        self._victims(period, t, counted)

    def _suspects(
        self, period: Period, t: HalfYearTargets, cases: list[tuple[CaseIn, list[OperationIn]]]
    ) -> None:
        rng = self.rng
        foreign = _pick(rng, t.suspects, t.foreign_suspects)
        for i in range(t.suspects):
            case, ops = cases[i % len(cases)] if i < len(cases) else rng.choice(cases)
            nationality = rng.choice(FOREIGN_SUSPECT_NATIONALITIES) if i in foreign else "KHM"
            sex = "female" if rng.random() < 0.3 else "male"
            arrest = rng.choice(ops).operation_date
            age = rng.randint(19, 58)
            latin, khmer = person_name(rng, nationality, sex)
            has_dob = rng.random() < 0.75
            suspect = self.add(
                SuspectIn,
                external_id=self._next_id("SUS"),
                name_latin=latin,
                name_khmer=khmer,
                sex=sex,
                date_of_birth=_birth_for_age(rng, age, arrest) if has_dob else None,
                age=None if has_dob else age,
                nationality=nationality,
                province=ops[0].province,
                arrest_date=arrest,
                charges="Art. 10 (unlawful removal for cross-border transfer)"
                if case.offence_type != "sexual_exploitation"
                else "Art. 30 (procurement of prostitution)",
                case=case.external_id,
                agency=ops[0].lead_agency,
            )
            self._prosecution(suspect, case, arrest)
        # A few suspects identified but still at large: recorded, never counted as arrested.
        for _ in range(rng.randint(1, 4)):
            case, ops = rng.choice(cases)
            latin, khmer = person_name(rng, "KHM", "male")
            self.add(
                SuspectIn,
                external_id=self._next_id("SUS"),
                name_latin=latin,
                name_khmer=khmer,
                sex="male",
                nationality="KHM",
                case=case.external_id,
                agency=ops[0].lead_agency,
            )

    def _prosecution(self, suspect: RecordIn, case: CaseIn, arrest: date) -> None:
        rng = self.rng
        if rng.random() > 0.78:
            return
        charged = arrest + timedelta(days=rng.randint(2, 40))
        if charged > LAST_DAY:
            return
        verdict = charged + timedelta(days=rng.randint(90, 420))
        fields: dict[str, Any] = {
            "external_id": self._next_id("PRO"),
            "suspect": suspect.external_id,
            "case": case.external_id,
            "charged_on": charged,
            "charges": case.legal_article,
        }
        if verdict <= LAST_DAY and rng.random() < 0.8:
            convicted = rng.random() < 0.88
            fields.update(outcome="convicted" if convicted else "acquitted", verdict_on=verdict)
            if convicted:
                fields.update(
                    sentence_months=rng.choice([24, 36, 60, 84, 120, 180]),
                    suspended=rng.random() < 0.05,
                    fine_khr=rng.choice([None, 2_000_000, 5_000_000, 10_000_000]),
                )
        self.add(ProsecutionIn, **fields)

    def _victims(
        self, period: Period, t: HalfYearTargets, cases: list[tuple[CaseIn, list[OperationIn]]]
    ) -> None:
        rng = self.rng
        female = _pick(rng, t.victims, t.female_victims)
        minor = _pick(rng, t.victims, t.minor_victims)
        exploitation_of = {
            "sexual_exploitation": "sexual_exploitation",
            "trafficking_in_persons": None,
            "forced_labour": "forced_labour",
            "forced_criminality": "forced_criminality",
            "forced_marriage": "forced_marriage",
        }
        for i in range(t.victims):
            case, ops = rng.choice(cases)
            sex = "female" if i in female else "male"
            exploitation = exploitation_of[case.offence_type] or _weighted(
                rng,
                {
                    "sexual_exploitation": 5,
                    "forced_labour": 3,
                    "forced_begging": 1,
                    "forced_marriage": 1,
                },
            )
            if i in minor:
                age = rng.randint(13, 17) if rng.random() < 0.8 else rng.randint(4, 12)
            else:
                age = rng.randint(18, 24) if rng.random() < 0.6 else rng.randint(25, 45)
            foreign_share = 0.5 if exploitation == "forced_criminality" else 0.06
            nationality = rng.choice(FOREIGN_VICTIM_NATIONALITIES) if rng.random() < foreign_share else "KHM"
            linked = list(ops) if len(ops) > 1 and rng.random() < 0.5 else [ops[0]]
            rescue = linked[0].operation_date
            has_dob = rng.random() < 0.7
            latin, khmer = person_name(rng, nationality, sex)
            country = "KHM"
            if exploitation == "forced_marriage":
                country = "CHN"
            elif exploitation == "forced_labour" and rng.random() < 0.4:
                country = rng.choice(["THA", "MYS"])
            victim = self.add(
                VictimIn,
                external_id=self._next_id("VIC"),
                name_latin=latin,
                name_khmer=khmer,
                sex=sex,
                date_of_birth=_birth_for_age(rng, age, rescue) if has_dob else None,
                age=None if has_dob else age,
                nationality=nationality,
                country_of_exploitation=country,
                exploitation_type=exploitation,
                labour_sector={
                    "forced_labour": rng.choice(["agriculture", "construction", "fishing", "domestic_work"]),
                    "forced_criminality": "online_fraud",
                    "sexual_exploitation": "sex_industry",
                    "forced_begging": "begging",
                }.get(exploitation),
                means_of_control=rng.sample(
                    [
                        "false_promises",
                        "threats",
                        "debt_bondage",
                        "withhold_documents",
                        "abuse",
                        "excessive_work_hours",
                        "deny_basic_needs",
                        "drugs_alcohol",
                    ],
                    k=rng.randint(1, 3),
                ),
                recruiter_relation=_weighted(
                    rng, {"other": 5, "friend": 3, "family": 2, "intimate_partner": 1, "unknown": 2}
                ),
                rescue_date=rescue,
                status="confirmed" if rng.random() < 0.85 else "possible",
                province=linked[0].province,
                case=case.external_id,
                operations=[o.external_id for o in linked],
                agency=linked[0].lead_agency,
            )
            self._care(victim, rescue, nationality)

    def _care(self, victim: RecordIn, rescue: date, nationality: str) -> None:
        rng = self.rng

        def assist(kind: str, start: date, agency: str) -> None:
            if start <= LAST_DAY:
                self.add(
                    AssistanceIn,
                    external_id=self._next_id("AST"),
                    victim=victim.external_id,
                    assistance_type=kind,
                    start_date=start,
                    agency=agency,
                )

        if rng.random() < 0.85:
            assist(
                "shelter",
                rescue + timedelta(days=rng.randint(0, 3)),
                rng.choice(["AG-MOSVY", "AG-NGO-LOTUS"]),
            )
            assist("medical", rescue + timedelta(days=rng.randint(0, 7)), "AG-NGO-LOTUS")
        if rng.random() < 0.5:
            assist("psychosocial", rescue + timedelta(days=rng.randint(3, 20)), "AG-NGO-LOTUS")
        if nationality != "KHM":
            assist("repatriation", rescue + timedelta(days=rng.randint(20, 90)), "AG-IO-MIGR")
        elif rng.random() < 0.3:
            assist("reintegration", rescue + timedelta(days=rng.randint(60, 180)), "AG-MOSVY")
        if rng.random() < 0.45:
            referred = rescue + timedelta(days=rng.randint(1, 30))
            consent = rng.random() < 0.92
            if referred <= LAST_DAY:
                self.add(
                    ReferralIn,
                    external_id=self._next_id("REF"),
                    victim=victim.external_id,
                    to_agency=rng.choice(["AG-NGO-BRIDGE", "AG-NGO-LOTUS", "AG-MOSVY"]),
                    referred_on=referred,
                    service=rng.choice(["legal", "psychosocial", "reintegration"]),
                    consent=consent,
                    consent_date=referred if consent else None,
                )

    # -- storage ----------------------------------------------------------
    def batches(self, size: int = 500) -> Iterator[tuple[str, list[RecordIn]]]:
        for kind in (
            "agencies",
            "operations",
            "cases",
            "suspects",
            "victims",
            "prosecutions",
            "assistance",
            "referrals",
        ):
            records = self.records.get(kind, [])
            for i in range(0, len(records), size):
                yield kind, records[i : i + size]

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.records.values())


def build_demo(
    engine: Engine,
    builder: DemoBuilder | None = None,
    progress: Callable[[str, int], Any] | None = None,
    link: bool = True,
) -> dict[str, int]:
    """Store the demo records (built with the default seed unless given) in one transaction.

    With ``link`` (the default), person linkage then runs on victims and on
    suspects, so the demo's reports count persons; a failed run leaves the
    records unlinked and is reported by ``ctis link``.
    """
    builder = builder or DemoBuilder().build()
    with session_scope(engine) as session:
        repo = Repository(session, actor="demo")
        for kind, batch in builder.batches():
            repo.upsert_many(batch)
            if progress:
                progress(kind, len(batch))
    from ctis.demo.allegations import add_demo_allegations  # the register's demo rests on these records

    add_demo_allegations(engine)
    if link:
        link_demo(engine)
    return {kind: len(records) for kind, records in builder.records.items()}


def link_demo(engine: Engine) -> list[Any]:
    """Run person linkage on the demo's victims and suspects, as the demo's data officer."""
    from ctis.linkage.service import KINDS, run_linkage
    from ctis.security.permissions import Actor

    officer = Actor(id=0, username="demo", role="data_officer", agency_id=None, scope="all")
    runs = []
    for kind in KINDS:
        with session_scope(engine) as session:
            runs.append(run_linkage(session, officer, kind))
    return runs
