"""Seeded synthetic people recorded several times, for evaluating and demonstrating linkage.

Each invented person is recorded one to several times, the way agencies record
the same victim or suspect: sometimes in Khmer script, sometimes in one of the
usual romanisations, sometimes both; with typing errors, Khmer keyboard habits
(invisible characters, signs typed in another order, subscript DA for TA), a
date of birth with day and month swapped, an age on the rescue date instead of
a date of birth, missing fields. Some people have a twin: same family name,
same date of birth, same province and phone, a different given name — two
people who must stay two. The names are combinations of common name parts and
belong to no one in particular.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pandas as pd

from ctis.linkage.engine import INPUT_COLUMNS

# (Khmer script, Latin spellings in use)
FAMILY: list[tuple[str, tuple[str, ...]]] = [
    ("សុខ", ("Sok", "Sokh")), ("ចាន់", ("Chan", "Chann")), ("គឹម", ("Kim", "Keum")),
    ("ហេង", ("Heng", "Hing")), ("មាស", ("Meas", "Mas")), ("ជា", ("Chea", "Chia")),
    ("កែវ", ("Keo", "Kaev")), ("លី", ("Ly", "Lee")), ("ញឹម", ("Nhem", "Nhim")),
    ("ផាន", ("Phan", "Phann")), ("ប្រាក់", ("Prak", "Prakh")), ("សេង", ("Seng", "Sing")),
    ("ស៊ឹម", ("Sim", "Sem")), ("ទូច", ("Touch", "Toch")), ("វ៉ាន់", ("Vann", "Van")),
    ("យឹម", ("Yim", "Yem")), ("អ៊ុក", ("Ouk", "Uk")), ("ឡុង", ("Long", "Loung")),
    ("ពេជ្រ", ("Pich", "Pech")), ("ឆាយ", ("Chhay", "Chay")), ("ម៉ៅ", ("Mao", "Mau")),
    ("នួន", ("Nuon", "Noun")), ("ហង់", ("Hang", "Hangh")), ("សំ", ("Som", "Sam")),
    ("ទេព", ("Tep", "Teb")), ("ខៀវ", ("Khieu", "Khiev")), ("ស៊ុន", ("Sun", "Soun")),
    ("ហ៊ុន", ("Hun", "Houn")), ("ឈឹម", ("Chhim", "Chim")), ("ថាច់", ("Thach", "Tach")),
    ("ពេញ", ("Penh", "Pen")), ("ស្វាយ", ("Svay", "Svai")), ("អ៊ឹម", ("Im", "Em")),
    ("តាំង", ("Taing", "Tang")), ("ឡាយ", ("Lay", "Laay")), ("ម៉ុក", ("Mok", "Mouk")),
]  # fmt: skip
# Given names are one or two of these parts ("Srey" + "Pov" = "Sreypov").
GIVEN_PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("ស្រី", ("Srey", "Srei")), ("ពៅ", ("Pov", "Pau")), ("នាង", ("Neang", "Nieng")),
    ("ដារា", ("Dara", "Darah")), ("ធូ", ("Thou", "Tho")), ("វណ្ណា", ("Vanna", "Vana")),
    ("សុភា", ("Sophea", "Sophia")), ("បុប្ផា", ("Bopha", "Bupha")), ("មុំ", ("Mom", "Mum")),
    ("ពិសី", ("Pisey", "Pisei")), ("រិទ្ធី", ("Rithy", "Rithi")), ("វិបុល", ("Vibol", "Vibul")),
    ("កុសល", ("Kosal", "Kusal")), ("សំណាង", ("Samnang", "Samnag")), ("វាសនា", ("Veasna", "Veasana")),
    ("មករា", ("Makara", "Makkara")), ("វិសាល", ("Visal", "Vishal")), ("សុធា", ("Sothea", "Sothea")),
    ("ភិរុណ", ("Phirun", "Pheron")), ("លីណា", ("Lina", "Leena")), ("ស៊ីថា", ("Sitha", "Seitha")),
    ("ណារី", ("Nary", "Neary")), ("ម៉ាលី", ("Maly", "Mali")), ("ធីតា", ("Thida", "Theda")),
    ("សុផល", ("Sophal", "Sophall")), ("វុទ្ធី", ("Vuthy", "Vuthi")), ("ចិន្តា", ("Chenda", "Chinda")),
    ("បូរ៉ា", ("Bora", "Borah")), ("សុខា", ("Sokha", "Sokhar")), ("រតនា", ("Rathana", "Ratana")),
    ("ចន្ធី", ("Chanthy", "Chanthi")), ("គន្ធា", ("Kunthea", "Kanthea")), ("ពិសិដ្ឋ", ("Piseth", "Pisith")),
    ("សុវណ្ណ", ("Sovann", "Sovan")), ("ដាលីន", ("Dalin", "Daline")), ("មនោ", ("Mono", "Monou")),
    ("បញ្ញា", ("Panha", "Banha")), ("សុជាតិ", ("Socheat", "Sochiet")), ("ស្រីមុំ", ("Sreymom", "Sreimom")),
    ("រស្មី", ("Raksmey", "Reaksmey")),
]  # fmt: skip
FOREIGN_NAMES = {
    "VNM": (["Nguyen", "Tran", "Le", "Pham", "Hoang", "Vu", "Dang", "Bui"],
            ["Thi Lan", "Thi Hoa", "Van Minh", "Thi Mai", "Van Hung", "Thi Thu", "Van Nam", "Thi Huong"]),
    "THA": (["Srisuk", "Chaiyaporn", "Boonmee", "Kaewkla", "Thongdee", "Wongsa"],
            ["Somchai", "Malee", "Anong", "Niran", "Pim", "Kittisak"]),
    "CHN": (["Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Zhou"],
            ["Wei", "Fang", "Jun", "Lei", "Min", "Hao", "Jing", "Tao"]),
}  # fmt: skip
PROVINCES = [f"KH-{i}" for i in range(1, 26)]
ZWSP = "\u200b"


def _typo(rng: random.Random, word: str) -> str:
    """One keyboard error in a Latin word: substitution, deletion, insertion or transposition."""
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    letters = "abcdehiklmnoprstuvy"
    if kind == 0:
        return word[:i] + rng.choice(letters) + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + rng.choice(letters) + word[i:]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def _khmer_noise(rng: random.Random, text: str) -> str:
    """Keyboard habits that render the same Khmer: a zero-width space, subscript
    DA for TA, a vowel sign typed before a subscript, a decomposed form."""
    kind = rng.randrange(3)
    if kind == 0:
        i = rng.randrange(1, len(text))
        return text[:i] + ZWSP + text[i:]
    if kind == 1 and "\u17d2\u178f" in text:
        return text.replace("\u17d2\u178f", "\u17d2\u178a")
    # move the first dependent vowel that follows a subscript in front of it
    for i in range(len(text) - 2):
        if text[i] == "\u17d2" and "\u17b6" <= text[i + 2] <= "\u17c5":
            return text[:i] + text[i + 2] + text[i : i + 2] + text[i + 3 :]
    return text + ZWSP


def _person(rng: random.Random, pid: int) -> dict[str, object]:
    sex = "female" if rng.random() < 0.7 else "male"
    nat = rng.choices(["KHM", "VNM", "THA", "CHN"], weights=[85, 8, 4, 3])[0]
    if nat == "KHM":
        fam = rng.choice(FAMILY)
        parts = [rng.choice(GIVEN_PARTS) for _ in range(rng.choice((1, 2, 2)))]
        giv_km = "".join(p[0] for p in parts)
        giv_variants = [
            "".join(p[1][0] for p in parts),
            "".join(rng.choice(p[1]) for p in parts),
            " ".join(p[1][0] for p in parts),
        ]
        name = {"fam_km": fam[0], "fam_lat": list(fam[1]), "giv_km": giv_km, "giv_lat": giv_variants}
    else:
        families, givens = FOREIGN_NAMES[nat]
        name = {"fam_km": None, "fam_lat": [rng.choice(families)], "giv_km": None,
                "giv_lat": [rng.choice(givens)]}
    dob = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 48))
    phone = f"0{rng.choice((10, 11, 12, 15, 16, 17, 69, 70, 77, 78, 85, 89, 92, 96, 97, 98))}" + (
        f"{rng.randrange(1_000_000):06d}"
    )
    return {"pid": pid, "sex": sex, "nat": nat, "name": name, "dob": dob,
            "province": rng.choice(PROVINCES), "phone": phone if rng.random() < 0.6 else None}


def _twin(rng: random.Random, p: dict[str, object], pid: int) -> dict[str, object]:
    """A sibling born the same day: same family name, province and phone, another given name."""
    twin = dict(p)
    twin["pid"] = pid
    name = dict(p["name"])  # type: ignore[call-overload]
    while True:
        part = rng.choice(GIVEN_PARTS)
        if part[0] != name["giv_km"]:
            break
    if name["fam_km"] is None:
        name["giv_lat"] = [rng.choice(FOREIGN_NAMES[str(p["nat"])][1]) + " Anh"]
    else:
        name["giv_km"] = part[0]
        name["giv_lat"] = list(part[1])
    twin["name"] = name
    twin["sex"] = rng.choice(("female", "male"))
    return twin


def _record(rng: random.Random, p: dict[str, object], rid: str) -> dict[str, object]:
    name: dict[str, Any] = p["name"]  # type: ignore[assignment]
    script = "latin" if name["fam_km"] is None else rng.choices(["khmer", "latin", "both"], [30, 40, 30])[0]
    lat = km = None
    if script in ("latin", "both"):
        fam, giv = rng.choice(name["fam_lat"]), rng.choice(name["giv_lat"])
        if rng.random() < 0.12:
            giv = _typo(rng, giv)
        elif rng.random() < 0.04:
            fam = _typo(rng, fam)
        lat = f"{fam} {giv}"
        if rng.random() < 0.3:
            lat = lat.upper()
    if script in ("khmer", "both"):
        km = f"{name['fam_km']} {name['giv_km']}"
        if rng.random() < 0.25:
            km = _khmer_noise(rng, km)
    dob: date = p["dob"]  # type: ignore[assignment]
    rec_dob: str | None = dob.isoformat()
    age = age_on = None
    r = rng.random()
    if r < 0.15:  # an age on the rescue date instead of a date of birth
        on = date(2023, 1, 1) + timedelta(days=rng.randrange(900))
        age = on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))
        age_on, rec_dob = on.isoformat(), None
    elif r < 0.22 and dob.day <= 12 and dob.day != dob.month:
        rec_dob = date(dob.year, dob.day, dob.month).isoformat()
    elif r < 0.25:
        rec_dob = None
    phone = p["phone"] if rng.random() < 0.7 else None
    if phone and rng.random() < 0.5:
        phone = "+855 " + str(phone)[1:]
    return {
        "record_id": rid,
        "name_latin": lat,
        "name_khmer": km,
        "date_of_birth": rec_dob,
        "age": age,
        "age_on": age_on,
        "sex": p["sex"] if rng.random() < 0.95 else None,
        "nationality": p["nat"] if rng.random() < 0.9 else None,
        "province": p["province"] if rng.random() < 0.85 else rng.choice(PROVINCES),
        "phone": phone,
        "person_id": f"P{p['pid']}",
    }


def synthetic_people(n_people: int, seed: int = 1) -> pd.DataFrame:
    """Records of ``n_people`` invented people (about 1.7 records each), with the
    truth in ``person_id``; deterministic for a seed. About 2 % of people have a
    twin, and about 0.5 % of records carry no usable name and no date (the
    engine must list them as unlinkable)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    people: list[dict[str, object]] = []
    pid = 0
    while len(people) < n_people:
        p = _person(rng, pid)
        people.append(p)
        pid += 1
        if rng.random() < 0.02 and len(people) < n_people:
            people.append(_twin(rng, p, pid))
            pid += 1
    rows: list[dict[str, object]] = []
    for p in people:
        n_records = rng.choices([1, 2, 3, 4], weights=[50, 30, 13, 7])[0]
        for _ in range(n_records):
            rows.append(_record(rng, p, ""))
    rng.shuffle(rows)
    for i, row in enumerate(rows):
        row["record_id"] = f"R{i:07d}"
        if rng.random() < 0.005:  # a record with nothing to link on
            row.update(name_latin=None, name_khmer="?", date_of_birth=None, age=None, age_on=None)
    return pd.DataFrame(rows, columns=[*INPUT_COLUMNS, "person_id"])
