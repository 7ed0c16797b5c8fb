"""Ages and CTDC age bands.

Counting rules depend on age *on a given day* (a victim is a minor if under
18 on the rescue date), so age is always computed against a reference date,
never against today.  A person whose 18th birthday is the rescue day is 18.
"""

from __future__ import annotations

from datetime import date

# Lower bounds of the CTDC ``ageBroad`` bands, in order; the last is open-ended.
AGE_BANDS: list[tuple[int, int | None, str]] = [
    (0, 8, "0-8"),
    (9, 17, "9-17"),
    (18, 20, "18-20"),
    (21, 23, "21-23"),
    (24, 26, "24-26"),
    (27, 29, "27-29"),
    (30, 38, "30-38"),
    (39, 47, "39-47"),
    (48, None, "48+"),
]
UNKNOWN_BAND = "unknown"
ADULT_AGE = 18
MAX_AGE = 120


def age_on(birth: date, day: date) -> int:
    """Completed years between ``birth`` and ``day`` (29 February birthdays fall on 1 March)."""
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def age_band(age: int | None) -> str:
    if age is None or age < 0:
        return UNKNOWN_BAND
    for low, high, label in AGE_BANDS:
        if age >= low and (high is None or age <= high):
            return label
    return UNKNOWN_BAND  # pragma: no cover - the last band is open-ended


def is_minor(age: int | None) -> bool:
    return age is not None and age < ADULT_AGE
