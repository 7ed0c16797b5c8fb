"""Realistic duplicates for the demo: the same person recorded twice, by two agencies.

A shelter or the social-affairs ministry records a victim the police rescued;
the national department records a suspect a provincial office arrested.  The
second record differs the way such records do: the name in Khmer script where
the police wrote it in Latin letters, another romanisation, the given and
family names swapped, an age instead of the date of birth, the day and month
of the date of birth swapped, no phone.

What is counted must not change with the second record once linkage has found
it: the duplicate keeps the person's sex, nationality, province, exploitation,
status, case and age on the event day (so every breakdown but the agency puts
the person in the same cell), and its event date stays in the same half-year.
A few harder duplicates, which linkage should not link on its own (an age and
a name do not single a person out), are made outside the first half of 2024 (whose published figures
the demo reproduces); so are a few records with neither name nor date, which
linkage must leave alone.

Duplicates are drawn with a random generator of their own, after every other
record, so the rest of the demo is the same with or without them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from ctis.domain.ages import age_on
from ctis.domain.periods import parse_period
from ctis.domain.records import AssistanceIn, SuspectIn, VictimIn

if TYPE_CHECKING:
    from ctis.demo.generator import DemoBuilder

#: Other romanisations of the demo's Khmer name parts (as different clerks write them).
ROMANISATIONS = {
    "Sok": "Sokh", "Chan": "Chann", "Kim": "Kem", "Heng": "Hieng", "Meas": "Mess", "Chea": "Chear",
    "Keo": "Kao", "Ly": "Lee", "Nhem": "Nhim", "Phan": "Phann", "Prak": "Brak", "Seng": "Sieng",
    "Sim": "Sem", "Touch": "Tuch", "Vann": "Van", "Yim": "Yem", "Ouk": "Ok", "Long": "Loung",
    "Pich": "Pech", "Chhay": "Chay", "Mao": "Mau", "Nuon": "Noun", "Hang": "Hong", "Som": "Sam",
    "Tep": "Teb", "Sreymom": "Srey Mom", "Sophea": "Sophia", "Channary": "Chanary", "Bopha": "Bopa",
    "Sokha": "Sokhar", "Kanha": "Kagna", "Leakhena": "Leakena", "Mealea": "Mealear", "Nary": "Nari",
    "Raksmey": "Reaksmey", "Sreyneang": "Srey Neang", "Theary": "Thearie", "Vanna": "Vana",
    "Pisey": "Piseiy", "Sreypov": "Srey Pov", "Dany": "Danny", "Malis": "Maly", "Chanthou": "Chanthu",
    "Sokunthea": "Sokunthear", "Romdoul": "Rumduol", "Vibol": "Viboll", "Rithy": "Rithi",
    "Sokhom": "Sokhum", "Piseth": "Piset", "Virak": "Veareak", "Bunthoeun": "Bunthoeurn",
    "Sambath": "Sambat", "Narith": "Nearith", "Kosal": "Kosol", "Samnang": "Somnang",
    "Veasna": "Veasnar", "Sovann": "Sovan", "Makara": "Makkara", "Dara": "Dareah", "Visal": "Visale",
    "Chamroeun": "Chamrern", "Sothea": "Sothear", "Vuthy": "Vuthi", "Phirun": "Phirum", "Ratha": "Ratta",
}  # fmt: skip

#: Who records a victim a second time: (agency, assistance it gives).
SECOND_RECORDERS = [("AG-MOSVY", "shelter"), ("AG-NGO-LOTUS", "shelter"), ("AG-NGO-LOTUS", "psychosocial")]

#: How many duplicates of each sort, per half-year (2024-H1 included: the difference shows there).
EASY_VICTIMS_PER_HALF = 9
EASY_SUSPECTS_PER_HALF = 2
#: Hard duplicates (review) and records without name or date (left unlinked), outside 2024-H1 only.
HARD_HALVES = ("2023-H2", "2025-H1")
UNLINKABLE_HALVES = ("2022-H2", "2025-H2")


def _romanise(rng: random.Random, latin: str, *, swap_order: bool = False) -> str:
    """Another spelling of a Khmer name: some parts respelt (at least one), the order swapped if asked."""
    parts = latin.split()
    spelt = [ROMANISATIONS.get(p, p) if rng.random() < 0.6 else p for p in parts]
    if spelt == parts:
        spelt = [ROMANISATIONS.get(parts[0], parts[0]), *parts[1:]]
    if swap_order:
        spelt = spelt[1:] + spelt[:1]  # given name first, as on some foreign documents
    return " ".join(spelt)


def _swapped(birth: date) -> date | None:
    """The date of birth with day and month swapped, when that is a different valid date."""
    if birth.day > 12 or birth.day == birth.month:
        return None
    try:
        return birth.replace(month=birth.day, day=birth.month)
    except ValueError:
        return None


def _phone(rng: random.Random) -> str:
    prefix = rng.choice(["012", "011", "017", "077", "078", "085", "092", "093", "096", "097", "098", "010"])
    number = f"{rng.randrange(10**6):06d}"
    style = rng.random()
    if style < 0.4:
        return f"{prefix} {number[:3]} {number[3:]}"
    if style < 0.7:
        return f"+855 {prefix[1:]} {number[:3]} {number[3:]}"
    return prefix + number


def add_phones(builder: DemoBuilder, seed: int) -> None:
    """Give about half of the demo's people a phone number (as recorded: spaces, +855 or not)."""
    rng = random.Random(seed)
    for kind in ("victims", "suspects"):
        records = builder.records.get(kind, [])
        for i, record in enumerate(records):
            if record.phone is None and rng.random() < 0.5:  # type: ignore[attr-defined]
                records[i] = record.model_copy(update={"phone": _phone(rng)})


def _half_of(day: date) -> str:
    return f"{day.year}-H{1 if day.month <= 6 else 2}"


def _variant(rng: random.Random, original: Any, day: date, hard: bool) -> dict[str, Any] | None:
    """The identifying fields of a second record of ``original``, or None when it has no fitting variant.

    An ordinary second record keeps one strong identifier (the date of birth,
    possibly with day and month swapped, or the phone); a hard one keeps none
    (an age, no phone, the name in Khmer script or with its parts reordered), which
    is what a reviewer must decide.  Either keeps the age on the event day.
    """
    age = original.age_at_rescue if isinstance(original, VictimIn) else original.age_at_arrest
    latin, khmer, birth = original.name_latin, original.name_khmer, original.date_of_birth
    if age is None or not (latin or khmer):
        return None
    fields: dict[str, Any] = {}
    if khmer and rng.random() < 0.4:
        fields.update(name_latin=None, name_khmer=khmer)  # written in Khmer script only
    elif latin:
        fields.update(name_latin=_romanise(rng, latin, swap_order=hard), name_khmer=None)
    else:
        return None
    if hard:
        fields.update(date_of_birth=None, age=age, phone=None)
        return fields
    if birth is not None:
        swapped = _swapped(birth) if rng.random() < 0.3 else None
        if swapped is not None and age_on(swapped, day) == age:
            fields.update(date_of_birth=swapped, age=None)
        elif age_on(birth, day) == age:
            fields.update(date_of_birth=birth, age=None)
        else:
            return None
        fields["phone"] = original.phone if rng.random() < 0.5 else None
    elif original.phone is not None:
        fields.update(date_of_birth=None, age=age, phone=original.phone)  # an age, and the same phone
    else:
        return None
    return fields


def add_duplicates(builder: DemoBuilder, seed: int) -> None:
    """Second records of some victims and suspects, by another agency (see the module docstring)."""
    rng = random.Random(seed)
    victims: list[Any] = builder.records.get("victims", [])
    suspects: list[Any] = [s for s in builder.records.get("suspects", []) if s.arrest_date is not None]  # type: ignore[attr-defined]
    for half in sorted({_half_of(v.rescue_date) for v in victims}):
        period = parse_period(half)
        in_half = [v for v in victims if period.start <= v.rescue_date <= period.end]
        rng.shuffle(in_half)
        _up_to(EASY_VICTIMS_PER_HALF, in_half, lambda v: _second_victim(builder, rng, v, hard=False))
        if half in HARD_HALVES:
            _up_to(3, reversed(in_half), lambda v: _second_victim(builder, rng, v, hard=True))
        if half in UNLINKABLE_HALVES:
            for _ in range(2):
                _unidentified_victim(builder, rng, period.start + timedelta(days=rng.randrange(period.days)))
        sus_in_half = [s for s in suspects if period.start <= s.arrest_date <= period.end]
        rng.shuffle(sus_in_half)
        _up_to(EASY_SUSPECTS_PER_HALF, sus_in_half, lambda s: _second_suspect(builder, rng, s))


def _up_to(n: int, originals: Iterable[Any], make: Callable[[Any], bool]) -> None:
    """Call ``make`` on ``originals`` in order until it has made ``n`` second records (it says
    False for an original it cannot copy: already a duplicate, or nothing to vary)."""
    made = 0
    for original in originals:
        if made == n:
            break
        made += make(original)


def _second_victim(builder: DemoBuilder, rng: random.Random, original: Any, hard: bool) -> bool:
    if original.external_id in builder.duplicate_of.values() or original.external_id in builder.duplicate_of:
        return False
    day = original.rescue_date
    later = day + timedelta(days=rng.randint(0, 3))
    if _half_of(later) == _half_of(day) and later <= builder.today:
        day = later
    fields = _variant(rng, original, day, hard)
    if fields is None:
        return False
    agency, service = rng.choice(SECOND_RECORDERS)
    if original.nationality not in (None, "KHM") and rng.random() < 0.5:
        agency, service = "AG-IO-MIGR", "repatriation"
    copied = {
        k: getattr(original, k)
        for k in ("sex", "nationality", "country_of_exploitation", "exploitation_type", "labour_sector",
                  "means_of_control", "recruiter_relation", "status", "province")
    }  # fmt: skip
    victim = builder.add(
        VictimIn, external_id=builder._next_id("VIC"), **copied, **fields, rescue_date=day, agency=agency
    )
    builder.duplicate_of[victim.external_id] = original.external_id
    builder.add(
        AssistanceIn,
        external_id=builder._next_id("AST"),
        victim=victim.external_id,
        assistance_type=service,
        start_date=day,
        agency=agency,
    )
    return True


def _unidentified_victim(builder: DemoBuilder, rng: random.Random, day: date) -> None:
    """A possible victim reported to a hotline: no name, no date of birth, no age."""
    builder.add(
        VictimIn,
        external_id=builder._next_id("VIC"),
        sex=rng.choice(["female", "male"]),
        nationality="KHM",
        rescue_date=day,
        status="possible",
        province=rng.choice(["KH-12", "KH-18"]),
        agency="AG-MOSVY",
    )


def _second_suspect(builder: DemoBuilder, rng: random.Random, original: Any) -> bool:
    day = original.arrest_date
    fields = _variant(rng, original, day, hard=False)
    if fields is None:
        return False
    agency = "AG-AHTJP" if original.agency != "AG-AHTJP" else rng.choice(["AG-PP-POL", "AG-PS-POL"])
    copied = {k: getattr(original, k) for k in ("sex", "nationality", "province", "charges", "case")}
    suspect = builder.add(
        SuspectIn, external_id=builder._next_id("SUS"), **copied, **fields, arrest_date=day, agency=agency
    )
    builder.duplicate_of[suspect.external_id] = original.external_id
    return True
