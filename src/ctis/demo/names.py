"""Invented names for synthetic people.

Common Khmer family and given names, each with a Khmer-script spelling, are
combined at random, as are common Vietnamese, Chinese, Thai and Indonesian
name parts: the combinations belong to no one in particular.
"""

from __future__ import annotations

import random

KHMER_FAMILY = [
    ("Sok", "សុខ"), ("Chan", "ចាន់"), ("Kim", "គឹម"), ("Heng", "ហេង"), ("Meas", "មាស"),
    ("Chea", "ជា"), ("Keo", "កែវ"), ("Ly", "លី"), ("Nhem", "ញឹម"), ("Phan", "ផាន"),
    ("Prak", "ប្រាក់"), ("Seng", "សេង"), ("Sim", "ស៊ឹម"), ("Touch", "ទូច"), ("Vann", "វ៉ាន់"),
    ("Yim", "យឹម"), ("Ouk", "អ៊ុក"), ("Long", "ឡុង"), ("Pich", "ពេជ្រ"), ("Chhay", "ឆាយ"),
    ("Mao", "ម៉ៅ"), ("Nuon", "នួន"), ("Hang", "ហង់"), ("Som", "សំ"), ("Tep", "ទេព"),
]  # fmt: skip
KHMER_GIVEN_FEMALE = [
    ("Sreymom", "ស្រីមុំ"), ("Sophea", "សុភា"), ("Channary", "ចាន់ណារី"), ("Bopha", "បុប្ផា"),
    ("Sokha", "សុខា"), ("Kanha", "កញ្ញា"), ("Leakhena", "លក្ខិណា"), ("Mealea", "មាលា"),
    ("Nary", "ណារី"), ("Raksmey", "រស្មី"), ("Sreyneang", "ស្រីនាង"), ("Theary", "ធារី"),
    ("Vanna", "វណ្ណា"), ("Pisey", "ពិសី"), ("Sreypov", "ស្រីពៅ"), ("Dany", "ដានី"),
    ("Malis", "ម្លិះ"), ("Chanthou", "ចាន់ធូ"), ("Sokunthea", "សុគន្ធា"), ("Romdoul", "រំដួល"),
]  # fmt: skip
KHMER_GIVEN_MALE = [
    ("Vibol", "វិបុល"), ("Rithy", "រិទ្ធី"), ("Sokhom", "សុខុម"), ("Piseth", "ពិសិដ្ឋ"),
    ("Virak", "វីរៈ"), ("Bunthoeun", "ប៊ុនធឿន"), ("Sambath", "សម្បត្តិ"), ("Narith", "ណារិទ្ធ"),
    ("Kosal", "កុសល"), ("Samnang", "សំណាង"), ("Veasna", "វាសនា"), ("Sovann", "សុវណ្ណ"),
    ("Makara", "មករា"), ("Dara", "ដារ៉ា"), ("Visal", "វិសាល"), ("Chamroeun", "ចំរើន"),
    ("Sothea", "សុធា"), ("Vuthy", "វុទ្ធី"), ("Phirun", "ភិរុណ"), ("Ratha", "រដ្ឋា"),
]  # fmt: skip

FOREIGN = {
    "VNM": (["Nguyen", "Tran", "Le", "Pham", "Hoang", "Vu"],
            ["Thi Lan", "Thi Hoa", "Van Minh", "Thi Mai", "Van Hung", "Thi Thu"]),
    "CHN": (["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao"],
            ["Wei", "Fang", "Jun", "Lei", "Min", "Hao", "Jing", "Tao"]),
    "THA": (["Srisuk", "Chaiyaporn", "Boonmee", "Kaewkla", "Thongdee"],
            ["Somchai", "Malee", "Anong", "Niran", "Pim"]),
    "IDN": (["Santoso", "Wijaya", "Saputra", "Hidayat", "Lestari"],
            ["Agus", "Dewi", "Budi", "Sari", "Rizky"]),
    "MMR": (["Aung", "Kyaw", "Htun", "Win"], ["Myint", "Zaw", "Thida", "Hlaing"]),
    "MYS": (["Tan", "Lim", "Abdullah", "Ismail"], ["Ahmad", "Siti", "Wei Ling", "Farid"]),
}  # fmt: skip


def person_name(rng: random.Random, nationality: str | None, sex: str) -> tuple[str | None, str | None]:
    """(Latin, Khmer script) name; foreigners have no Khmer-script spelling."""
    if nationality in FOREIGN:
        family, given = FOREIGN[nationality]
        return f"{rng.choice(family)} {rng.choice(given)}", None
    fam_lat, fam_km = rng.choice(KHMER_FAMILY)
    given = KHMER_GIVEN_FEMALE if sex == "female" else KHMER_GIVEN_MALE
    giv_lat, giv_km = rng.choice(given)
    return f"{fam_lat} {giv_lat}", f"{fam_km} {giv_km}"
