"""Contact points and facts pulled out of a post, normalised so that posts can be compared.

Recruiters hide their numbers from simple filters ("0 9 7-one two three …",
Khmer or Thai digits, spaces between every digit) and move between Telegram,
WhatsApp, Line, WeChat and Zalo.  Everything here is normalised to one
spelling — phones in E.164, handles as ``platform:name`` — because the network
step links posts by *equal* contact points, and a number written two ways must
still be one number.

Every entity keeps its character span in the original text (digit
normalisation maps one character to one character, so spans stay valid): the
indicators highlight them and the network step masks them before shingling.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import phonenumbers

#: The region's calling codes, tried in this order for numbers written without one.
REGIONS = ("KH", "TH", "VN", "MM", "LA", "CN", "MY", "ID", "PH")
#: The region a local number is most likely from, by the post's language.
LANGUAGE_REGION = {"km": "KH", "th": "TH", "vi": "VN", "my": "MM", "lo": "LA", "zh": "CN", "ms": "MY",
                   "id": "ID", "tl": "PH"}  # fmt: skip
_COUNTRY_CODES = {str(phonenumbers.country_code_for_region(r)): r for r in REGIONS}

# Khmer, Thai, Lao, Myanmar and full-width digits to ASCII: one character for one, so spans hold.
_DIGITS = {0x17E0: 0x30, 0x0E50: 0x30, 0x0ED0: 0x30, 0x1040: 0x30, 0xFF10: 0x30}
DIGIT_TABLE = str.maketrans({chr(base + i): chr(ascii_zero + i) for base, ascii_zero in _DIGITS.items()
                             for i in range(10)} | {"＠": "@", "：": ":", "＋": "+"})  # fmt: skip


def lower_same_length(text: str) -> str:
    """Lower-cased text whose character positions are those of ``text`` (spans stay valid)."""
    lower = text.lower()
    if len(lower) == len(text):
        return lower
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


#: Any character :data:`DIGIT_TABLE` changes: most posts hold none, and a search for one is several
#: times cheaper than ``str.translate`` over a text with non-ASCII letters.
_TRANSLATED = re.compile("[" + "".join(re.escape(chr(c)) for c in DIGIT_TABLE) + "]")


def normalise_digits(text: str) -> str:
    """ASCII digits for every script's digits (same length, so spans into the original hold)."""
    if _TRANSLATED.search(text) is None:
        return text
    return text.translate(DIGIT_TABLE)


# -- phones ------------------------------------------------------------------------------------------

_WORD_DIGITS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9",
    "零": "0", "〇": "0", "一": "1", "二": "2", "三": "3", "四": "4", "五": "5", "六": "6", "七": "7",
    "八": "8", "九": "9",
    "សូន្យ": "0", "មួយ": "1", "ពីរ": "2", "បី": "3", "បួន": "4", "ប្រាំ": "5", "ប្រាំមួយ": "6",
    "ប្រាំពីរ": "7", "ប្រាំបី": "8", "ប្រាំបួន": "9",
}  # fmt: skip
_LATIN_WORDS = "|".join(w for w in _WORD_DIGITS if w.isascii())
_OTHER_WORDS = "|".join(sorted((w for w in _WORD_DIGITS if not w.isascii()), key=len, reverse=True))
_DIGITISH = rf"(?:\d|(?<![a-z])(?:{_LATIN_WORDS})(?![a-z])|{_OTHER_WORDS})"
_SEP = r"[ \t\-.()/·_]{0,3}"
# A run starts with a digit or "+" (found by a fast scan for that character; the case-insensitive
# spelled digits come only after it, as in "0 9 7-one two three …"), not right after a letter or digit.
_RUN = re.compile(rf"[+\d](?<![0-9A-Za-z][+\d])(?:{_SEP}(?i:{_DIGITISH})){{7,40}}(?![0-9])")
_GROUP = re.compile(rf"\+|{_DIGITISH}", re.IGNORECASE)
# A number written out in words from its first digit ("zero nine seven one two …"): rare, so the
# pattern runs only when the post holds at least eight English digit words.
_WORD_RUN = re.compile(
    rf"(?<![a-z])(?:{_LATIN_WORDS})(?:[ \t\-.,]{{1,3}}(?:{_LATIN_WORDS})){{7,14}}(?![a-z])"
)
_MESSENGER_LABEL = re.compile(
    r"(whats\s?app|wa|zalo|viber|telegram|tele|tg|line|signal|วอทส์แอพ|ไลน์|ซาโล|飞机|电报|微信)"
    r"\s*(?:id|no\.?|number|號|号)?\s*[:：]?\s*$",
    re.IGNORECASE,
)
_PLATFORM_OF_LABEL = {"whatsapp": "whatsapp", "whats app": "whatsapp", "wa": "whatsapp", "zalo": "zalo",
                      "viber": "viber", "telegram": "telegram", "tele": "telegram", "tg": "telegram",
                      "line": "line", "signal": "signal", "วอทส์แอพ": "whatsapp", "ไลน์": "line",
                      "ซาโล": "zalo", "飞机": "telegram", "电报": "telegram", "微信": "wechat"}  # fmt: skip
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")


def _valid(number: phonenumbers.PhoneNumber) -> str | None:
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1 << 16)
def _parse_in(digits: str, plus: bool, region: str | None) -> str | None:
    """E.164 when ``digits`` is a valid number written as given: with ``+``, with a calling code,
    or the local way in ``region`` (with its trunk ``0``, or a Chinese mobile).

    Remembered for the last 65,536 digit strings: a recruiter posts the same numbers again and
    again, and phonenumbers takes about 0.1 ms for each (the answer depends on nothing else)."""
    try:
        if plus:
            return _valid(phonenumbers.parse("+" + digits, None))
        if region is None:
            for code in (digits[:3], digits[:2]):
                if code in _COUNTRY_CODES and len(digits) >= 10:
                    found = _valid(phonenumbers.parse("+" + digits, None))
                    if found:
                        return found
            return None
        if digits.startswith("0"):
            return _valid(phonenumbers.parse(digits, region))
        if region == "CN" and _CN_MOBILE.fullmatch(digits):
            return _valid(phonenumbers.parse(digits, "CN"))
    except phonenumbers.NumberParseException:
        return None
    return None


def _region_order(hint: str | None) -> list[str | None]:
    first = LANGUAGE_REGION.get(hint or "")
    return [None, *([first] if first else []), *(r for r in REGIONS if r != first)]


def parse_phone(digits: str, plus: bool, hint: str | None = None) -> str | None:
    """E.164 for a digit string, or None when it is no valid number of the region.

    A number without a calling code must be written the local way, with its
    trunk ``0`` (or be a Chinese mobile): a bare 8-digit figure such as a salary
    range "1500-3000" is then never mistaken for a phone.  The region of the
    post's language is tried first, then the others.
    """
    if not 8 <= len(digits) <= 15:
        return None
    for region in [None] if plus else _region_order(hint):
        found = _parse_in(digits, plus, region)
        if found:
            return found
    return None


#: Separators no one writes inside one number: they always split two numbers.
_HARD_SEP = re.compile(r"\s*/\s*|\s{2,}|\t")


#: Numbers tried with phonenumbers per post.  An ordinary post needs a few dozen; a post of
#: thousands of spaced zeros would need millions (18 s), so the search stops at this many.
PHONE_BUDGET = 600


def _phones_in_run(
    text: str, match: re.Match[str], hint: str | None, budget: list[int]
) -> list[tuple[int, int, str]]:
    """The valid numbers in a run of digit-like tokens (two numbers may be written side by side).

    Within a stretch between hard separators, the longest valid number starting
    at each token is taken, trying the post's own region before the others, so
    that "0916 772 232 0 9 1 6…" is not read as one long foreign number.
    """
    found: list[tuple[int, int, str]] = []
    cuts = [match.start()] + [p for m in _HARD_SEP.finditer(text, match.start(), match.end())
                              for p in (m.start(), m.end())] + [match.end()]  # fmt: skip
    for seg_start, seg_end in zip(cuts[::2], cuts[1::2], strict=False):
        groups = [(m.start(), m.end(), m.group(0)) for m in _GROUP.finditer(text, seg_start, seg_end)]
        # a number starts and ends where a chunk of digits does, never inside "10800"
        starts = [
            k == 0 or groups[k - 1][1] < groups[k][0] or groups[k - 1][2] == "+" for k in range(len(groups))
        ]
        ends = [k == len(groups) - 1 or groups[k][1] < groups[k + 1][0] for k in range(len(groups))]
        i = 0
        while i < len(groups):
            if not starts[i]:
                i += 1
                continue
            plus = groups[i][2] == "+"
            first = i + 1 if plus else i
            digits = [_WORD_DIGITS.get(g[2].lower(), g[2]) for g in groups[first : first + 16]]
            best: tuple[int, str] | None = None
            for region in [None] if plus else _region_order(hint):
                for j in range(len(digits), 7, -1):
                    if not ends[first + j - 1]:
                        continue
                    budget[0] -= 1
                    if budget[0] < 0:
                        return found
                    e164 = _parse_in("".join(digits[:j]), plus, region)
                    if e164:
                        best = (first + j - 1, e164)
                        break
                if best:
                    break
            if best is None:
                i += 1
                continue
            j, e164 = best
            found.append((groups[i][0], groups[j][1], e164))
            i = j + 1
    return found


# -- handles, e-mails, URLs ---------------------------------------------------------------------------

_HANDLE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "telegram",
        re.compile(
            r"(?:https?://)?(?:t|telegram)\.(?:me|dog)/(?:joinchat/|\+|s/)?([A-Za-z0-9_]{4,40})", re.I
        ),
    ),
    ("whatsapp", re.compile(r"(?:https?://)?wa\.me/\+?(\d{8,15})", re.I)),
    ("whatsapp", re.compile(r"(?:https?://)?api\.whatsapp\.com/send/?\?phone=\+?(\d{8,15})", re.I)),
    ("line", re.compile(r"(?:https?://)?line\.me/(?:R/)?ti/p/[~@]?([A-Za-z0-9_.\-]{3,32})", re.I)),
    ("zalo", re.compile(r"(?:https?://)?zalo\.me/(\d{8,15}|[A-Za-z0-9_.]{3,32})", re.I)),
    (
        "telegram",
        re.compile(
            r"(?<![a-z])(?:telegram|tele|tg|电报|纸飞机|飞机|เทเลแกรม|เทเล|ទេឡេក្រាម|តេឡេក្រាម)\s*(?:id|ID|号)?"
            r"\s*(?:[:：]\s*@?\s?|@\s?)([A-Za-z][A-Za-z0-9_]{3,31})",
            re.I,
        ),
    ),
    (
        "line",
        re.compile(r"(?<![a-z])(?:line\s*id|line|ไอดีไลน์|ไลน์)\s*[:：]\s*@?([A-Za-z0-9_.\-]{3,32})", re.I),
    ),
    (
        "wechat",
        re.compile(
            r"(?<![a-z])(?:wechat|weixin|vx|微信号|微信|威信|v信)\s*(?:id|ID|号)?"
            r"(?:\s*[:：]\s*|\s+(?=[A-Za-z][A-Za-z0-9_\-]*\d))([A-Za-z][A-Za-z0-9_\-]{5,19})",
            re.I,
        ),
    ),
    ("zalo", re.compile(r"(?<![a-z])zalo\s*[:：]\s*([A-Za-z][A-Za-z0-9_.]{2,31})", re.I)),
    ("telegram", re.compile(r"(?<![\w.@/])@([A-Za-z][A-Za-z0-9_]{4,31})(?![\w@.]*\.[a-z]{2})")),
]
#: Substrings (lower case) without which a handle pattern cannot match: the pattern is then skipped.
_HANDLE_TRIGGERS: list[tuple[str, ...]] = [
    ("me/", ".dog/"), ("wa.me/",), ("whatsapp.com",), ("line.me/",), ("zalo.me/",),
    ("tele", "tg", "电报", "飞机", "เทเล", "ទេឡេ", "តេឡេ"), ("line", "ไลน์"),
    ("wechat", "weixin", "vx", "微信", "威信", "v信"), ("zalo",), ("@",),
]  # fmt: skip
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])([A-Za-z0-9][A-Za-z0-9._%+\-]*)\s*(?:@|\[at\]|\(at\))\s*"
    r"([A-Za-z0-9\-]+(?:(?:\.|\s*\[dot\]\s*)[A-Za-z0-9\-]+)*(?:\.|\s*\[dot\]\s*)[A-Za-z]{2,})"
)
_URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9\-._~:/?#@!$&*+,;=%]+", re.I)
_TLDS = (
    "com|net|org|info|biz|io|co|me|top|xyz|asia|site|online|vip|cc|app|jobs|work|kh|th|vn|cn|la|mm|my|"
    "id|ph|sg"
)
_DOMAIN = re.compile(
    rf"(?<![A-Za-z0-9@.\-/])((?:[a-z0-9\-]+\.)+(?:{_TLDS}))(/[A-Za-z0-9\-._~/?#=&%]*)?(?![A-Za-z0-9\-])", re.I
)
_MESSENGER_HOSTS = ("t.me", "telegram.me", "telegram.dog", "wa.me", "api.whatsapp.com", "line.me", "zalo.me")
FREE_MAIL = frozenset({"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "icloud.com",
                       "qq.com", "163.com", "126.com", "proton.me", "protonmail.com", "mail.ru",
                       "yandex.com", "aol.com", "gmx.com"})  # fmt: skip

# -- money ------------------------------------------------------------------------------------------

_CURRENCY_WORDS: list[tuple[str, str]] = [
    (
        "USD",
        r"US\$|USD|usd|US\s?dollars?|dollars?|\$|美元|美金|ดอลลาร์|ดอลล่าร์|đô\s?la|đô|ដុល្លារ|USDT|U(?![a-zA-Z])",
    ),
    ("THB", r"฿|THB|baht|บาท"),
    ("VND", r"₫|VNĐ|VND|đồng|vnđ"),
    ("CNY", r"¥|￥|RMB|CNY|yuan|人民币|元|块"),
    ("KHR", r"៛|KHR|riels?|រៀល"),
    ("MYR", r"RM|MYR|ringgit"),
    ("IDR", r"Rp\.?|IDR|rupiah"),
    ("PHP", r"₱|PHP|pesos?"),
    ("MMK", r"MMK|kyats?|ကျပ်"),
    ("LAK", r"₭|LAK|kip|ກີບ"),
]
_CURRENCY = "|".join(f"(?P<{code}_{{side}}>{words})" for code, words in _CURRENCY_WORDS)
_MULTIPLIERS = {"k": 1e3, "千": 1e3, "พัน": 1e3, "ពាន់": 1e3, "万": 1e4, "萬": 1e4, "หมื่น": 1e4,
                "triệu": 1e6, "tr": 1e6, "juta": 1e6, "jt": 1e6, "ล้าน": 1e6, "លាន": 1e6}  # fmt: skip
_MULT = "|".join(sorted(map(re.escape, _MULTIPLIERS), key=len, reverse=True))
_AMOUNT = r"\d{1,3}(?:[,.]\d{3})+(?!\d)|\d+(?:[.,]\d{1,2})?"
_RANGE_SEP = r"\s*(?:-|–|—|~|～|to|至|到|đến|ถึง|ដល់|hingga|sampai)\s*"
# Anchored on the amount's first digit (a scan for digits is fast); a currency written before the
# amount is looked for in the few characters before it.
_MONEY = re.compile(
    rf"(?P<lo>{_AMOUNT})\s?(?P<lom>(?i:{_MULT}))?(?:(?i:{_RANGE_SEP})(?:(?:\$|US\$|USD)\s?)?(?P<hi>{_AMOUNT})\s?"
    rf"(?P<him>(?i:{_MULT}))?)?\s?(?:(?i:{_CURRENCY.format(side='a')})(?![A-Za-z]))?"
)
_CURRENCY_BEFORE = re.compile(rf"(?:{_CURRENCY.format(side='b')})\s?$", re.IGNORECASE)
_PERIODS: list[tuple[str, str]] = [
    ("month", r"months?|mo|mth|monthly|个月|月|เดือน|tháng|ខែ|bulan|ເດືອນ|လ"),
    ("week", r"weeks?|wk|weekly|周|週|สัปดาห์|tuần|សប្តាហ៍|minggu"),
    ("day", r"days?|daily|天|日|วัน|ngày|ថ្ងៃ|hari"),
    ("hour", r"hours?|hr|hourly|小时|ชั่วโมง|giờ|ម៉ោង|jam"),
    ("year", r"years?|yr|annual(?:ly)?|年|ปี|năm|ឆ្នាំ|tahun"),
]
_PERIOD_AFTER = re.compile(
    r"\s*(?:/|per|a|an|each|every|mỗi|một|ต่อ|每|一个|ក្នុង\s*មួយ|ក្នុងមួយ|sebulan|/\s*1)?\s*(?:"
    + "|".join(f"(?P<{name}>{words})" for name, words in _PERIODS)
    + r")(?![a-z])",
    re.IGNORECASE,
)
#: What introduces a pay period ("/month", "per day", "mỗi tháng", "每月"); else "18 days" is a duration.
_PER = re.compile(r"\s*(?:/|per\b|a\b|an\b|each\b|every\b|mỗi|một|ต่อ|每|一个|ក្នុង)", re.IGNORECASE)
_PERIOD_BEFORE = {"月薪": "month", "月收入": "month", "月入": "month", "日薪": "day", "年薪": "year",
                  "日入": "day", "每天": "day", "mỗi ngày": "day", "วันละ": "day", "daily": "day",
                  "annual": "year", "yearly": "year", "per year": "year",
                  "monthly": "month", "lương tháng": "month", "เงินเดือน": "month",
                  "ប្រាក់ខែ": "month"}  # fmt: skip
_SALARY_WORDS = re.compile(
    r"salary|salaries|pay|paid|income|earn|earning|wage|wages|commission|lương|thu nhập|เงินเดือน|รายได้|"
    r"ค่าจ้าง|ប្រាក់ខែ|ប្រាក់ចំណូល|ចំណូល|(?<!带)薪(?!假)|工资|收入|底薪|待遇|日入|gaji|penghasilan|upah|kiếm",
    re.IGNORECASE,
)
_FEE_WORDS = re.compile(r"fee|deposit|cost|phí|ค่าธรรมเนียม|押金|费|ថ្លៃ|កម្រៃ|biaya|deduct", re.I)
_PERIOD_MONTHS = {"month": 1.0, "week": 52 / 12, "day": 26.0, "hour": 208.0, "year": 1 / 12}
DEFAULT_CURRENCY = {"en": "USD", "km": "USD", "th": "THB", "vi": "VND", "zh": "CNY", "id": "IDR",
                    "ms": "MYR", "my": "MMK", "lo": "LAK", "tl": "PHP"}  # fmt: skip

# -- ages, mentions ----------------------------------------------------------------------------------

_AGE_RANGE = r"(?P<lo>\d{2})\s*(?:-|–|—|~|to|至|到|ถึง|đến|ដល់|sampai|hingga)\s*(?P<hi>\d{2})"
_AGE_PAIR = re.compile(_AGE_RANGE, re.IGNORECASE)
_AGES = [
    re.compile(
        r"(?:age[sd]?|อายุ|tuổi|độ tuổi|អាយុ|年龄|年齡|年纪|usia|umur|အသက်)\s*[:：]?"
        r"\s*(?:from|between|từ|ตั้งแต่|ពី)?"
        rf"\s*{_AGE_RANGE}",
        re.I,
    ),
    re.compile(rf"{_AGE_RANGE}\s*(?:years?\s*old|yrs|y/o|岁|歲|周岁|ปี|tuổi|ឆ្នាំ|tahun)", re.I),
]
#: Matched on lower-cased text (patterns in lower case), which keeps the scan fast.
MENTIONS: dict[str, re.Pattern[str]] = {
    "passport": re.compile(r"passports?|护照|護照|หนังสือเดินทาง|พาสปอร์ต|hộ chiếu|លិខិតឆ្លងដែន|paspor|ပတ်စပို့"),
    "visa": re.compile(r"(?<![a-z])visas?(?![a-z])|签证|簽證|วีซ่า|thị thực|ទិដ្ឋាការ|វីសា"),
    "ticket": re.compile(r"tickets?|flights?|airfare|机票|機票|ตั๋ว|vé máy bay|សំបុត្រ|tiket"),
    "fee": re.compile(r"(?<![a-z])fees?(?![a-z])|deposit|phí|ค่าธรรมเนียม|押金|手续费|费用|ថ្លៃសេវា|កម្រៃ|biaya"),
}


@cache
def _mentions() -> list[tuple[str, re.Pattern[str], tuple[str, ...] | None]]:
    """Each mention pattern with the literals of which every match holds one (as for the rules)."""
    from ctis.screening.indicators import triggers  # indicators reads entities: imported when used

    return [(name, pattern, triggers(pattern.pattern)) for name, pattern in MENTIONS.items()]


@dataclass(frozen=True)
class Span:
    """Where an entity was written: ``kind`` is phone, handle, email, url, money, age, place, mention."""

    start: int
    end: int
    kind: str
    value: str


@dataclass(frozen=True)
class Salary:
    low: float
    high: float
    currency: str
    period: str
    usd_month: float


@dataclass(frozen=True)
class Place:
    key: str
    name: str
    country: str
    kind: str  # hub, border, city


@dataclass
class Entities:
    phones: list[str] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    salaries: list[Salary] = field(default_factory=list)
    ages: list[tuple[int, int]] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)

    @property
    def salary_usd_month(self) -> int | None:
        """The highest monthly pay the post offers: the lure is the top of the range."""
        return round(max(s.usd_month for s in self.salaries)) if self.salaries else None

    def contacts(self) -> list[str]:
        """Contact points that tie posts to one author (see ``ctis.screening.networks``)."""
        out = [f"phone:{p}" for p in self.phones] + list(self.handles) + [f"email:{e}" for e in self.emails]
        return out + [f"url:{u}" for u in self.urls if not _common_host(u)]

    def as_dict(self) -> dict[str, Any]:
        """The stored and printed form; ``salary_usd_month`` is what the CLI's JSON names."""
        return {
            "phones": self.phones, "handles": self.handles, "emails": self.emails, "urls": self.urls,
            "domains": self.domains, "salary_usd_month": self.salary_usd_month,
            "salaries": [s.__dict__ for s in self.salaries],
            "ages": [{"min": a, "max": b} for a, b in self.ages], "mentions": self.mentions,
            "places": [p.key for p in self.places],
        }  # fmt: skip


#: Hosts whose URLs many unrelated authors share: a link to them ties no two posts together.
COMMON_HOSTS = frozenset({"facebook.com", "www.facebook.com", "m.facebook.com", "fb.com", "youtube.com",
                          "www.youtube.com", "google.com", "www.google.com", "tiktok.com", "www.tiktok.com",
                          "instagram.com", "linkedin.com", "www.linkedin.com", "bit.ly"})  # fmt: skip


def _common_host(url: str) -> bool:
    host = url.split("://", 1)[-1].split("/", 1)[0]
    return host in COMMON_HOSTS


@cache
def rates() -> dict[str, float]:
    """US dollars per unit of each currency, from ``data/rates.csv`` (an analyst updates the file)."""
    path = resources.files("ctis.screening") / "data" / "rates.csv"
    with path.open(encoding="utf-8") as fh:
        return {row["currency"]: float(row["usd_per_unit"]) for row in csv.DictReader(fh)}


def trie_pattern(words: list[str]) -> str:
    """One regular expression for many literal words, nested as a trie.

    ``re`` tries the alternatives of ``a|b|c`` one after another at every
    position; nested by common prefixes, a position that starts no word costs
    one look at its first character.  (A gazetteer of 150 names ran ten times
    faster this way.)
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return f"(?:{body})?"
        return body

    return build(trie)


@cache
def gazetteer() -> tuple[re.Pattern[str], dict[str, Place]]:
    """One pattern over every name of every place in ``data/places.csv`` (matched on lower-cased
    text), and the place of each lower-cased name."""
    path = resources.files("ctis.screening") / "data" / "places.csv"
    by_name: dict[str, Place] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            place = Place(row["key"], row["name_en"], row["country"], row["kind"])
            for alias in row["aliases"].split("|"):
                if alias.strip():
                    by_name[alias.strip().lower()] = place
    # Latin names must stand as words ("Bavet" not inside "Bavetto"); other scripts have no spaces.
    # The check for a letter before the name is made by hand (see :func:`_places`): a pattern that
    # starts with a look-behind is tried at every position, one that starts with the trie is not.
    pattern = re.compile(rf"(?:{trie_pattern(list(by_name))})(?![a-z])")
    return pattern, by_name


def _places(pattern: re.Pattern[str], lower: str) -> Iterator[re.Match[str]]:
    """The gazetteer's matches not right after a Latin letter, as ``(?<![a-z])`` before the trie
    would find them: after a match that fails the check, the search goes on from the next
    character, not from the match's end, so a name inside it is still found."""
    pos = 0
    while (m := pattern.search(lower, pos)) is not None:
        start = m.start()
        if start > 0 and "a" <= lower[start - 1] <= "z":
            pos = start + 1
            continue
        yield m
        pos = m.end() if m.end() > start else start + 1


def _amount(text: str | None, mult: str | None) -> float | None:
    if not text:
        return None
    if re.fullmatch(r"\d{1,3}(?:[,.]\d{3})+", text):
        value = float(re.sub(r"[,.]", "", text))
    else:
        value = float(text.replace(",", "."))
    return value * _MULTIPLIERS.get((mult or "").lower(), 1.0)


_IMPLIED_CURRENCY = {"triệu": "VND", "tr": "VND", "juta": "IDR", "jt": "IDR"}


def _bare_number(text: str, m: re.Match[str], start: int) -> bool:
    """True for an amount without a currency, without a multiplier that implies one ("25 triệu"),
    and not right after a word for pay: :func:`_salary` then finds no pay in it, whatever follows.
    (Tested first because it settles most numbers; every other outcome of that case is None too.)"""
    multiplier = (m.group("lom") or m.group("him") or "").lower()
    if multiplier in _IMPLIED_CURRENCY:
        return False
    before = text[max(0, start - 40) : start]
    salary_word = _SALARY_WORDS.search(before)
    return salary_word is None or salary_word.end() < len(before) - 6


def _salary(text: str, m: re.Match[str], language: str | None) -> tuple[int, Salary] | None:
    """The pay an amount states, and where its text starts (a currency may precede the amount)."""
    groups = {k: v for k, v in m.groupdict().items() if v}
    start = m.start()
    prefix = _CURRENCY_BEFORE.search(text, max(0, start - 8), start)
    if prefix is not None:
        groups |= {k: v for k, v in prefix.groupdict().items() if v}
        start = prefix.start()
    currency = next((k.split("_")[0] for k in groups if k.endswith(("_a", "_b"))), None)
    if currency is None and _bare_number(text, m, start):
        return None  # most numbers in a post: the test below, made before anything else is read
    low = _amount(m.group("lo"), m.group("lom"))
    high = _amount(m.group("hi"), m.group("him") or m.group("lom")) or low
    if low is None or high is None:
        return None
    before = text[max(0, start - 40) : start]
    if _FEE_WORDS.search(before[-8:]):
        return None
    period_match = _PERIOD_AFTER.match(text, m.end())
    period = next((k for k, v in period_match.groupdict().items() if v), None) if period_match else None
    if period is None:
        period = next((p for word, p in _PERIOD_BEFORE.items() if word in before[-16:].lower()), None)
    salary_word = _SALARY_WORDS.search(before)
    per = period_match is not None and _PER.match(text, m.end()) is not None
    explicit = currency is not None
    if currency is None:
        multiplier = (m.group("lom") or m.group("him") or "").lower()
        implied = _IMPLIED_CURRENCY.get(multiplier)
        if implied is None and (salary_word is None or salary_word.end() < len(before) - 6):
            return None  # a bare number is pay only right after a word for pay ("月薪8000")
        if period_match is not None and not per:
            return None  # "18 days of leave", "18天带薪年假": a duration, not pay
        currency = implied or DEFAULT_CURRENCY.get(language or "", "USD")
    if period is None and salary_word is None:
        return None
    period = period or "month"
    if period == "year" and period_match is not None and not per:
        return None  # "aged 18 to 35 years" is an age, not a yearly salary
    rate = rates().get(currency, 0.0)
    usd = high * rate * _PERIOD_MONTHS[period]
    # below 50 US dollars a month a bare number is an ordinal or a count ("13th-month salary")
    if not (1 if explicit else 50) <= usd <= 1_000_000:
        return None
    return start, Salary(low, high, currency, period, round(usd, 2))


def _claimed(spans: list[Span], start: int, end: int) -> bool:
    return any(s.start < end and start < s.end for s in spans)


def extract(text: str, language: str | None = None) -> Entities:
    """Every entity in ``text``; ``language`` chooses the region and currency of local numbers."""
    norm = normalise_digits(text)
    out = Entities()
    spans = out.spans

    def add(start: int, end: int, kind: str, value: str, target: list[str]) -> None:
        spans.append(Span(start, end, kind, value))
        if value not in target:
            target.append(value)

    lower = lower_same_length(norm)
    # Each scan below is skipped when the text lacks a literal that every match of it holds.
    for m in _URL.finditer(norm) if "://" in norm or "www." in lower else ():
        url = m.group(0).rstrip(".,;:!?")
        full = url if "://" in url else "http://" + url
        scheme, rest = full.split("://", 1)
        host = rest.split("/", 1)[0].lower()
        if host.startswith(_MESSENGER_HOSTS) or host.replace("www.", "", 1) in _MESSENGER_HOSTS:
            continue
        add(m.start(), m.start() + len(url), "url", f"{scheme.lower()}://{host}{rest[len(host) :]}", out.urls)
        if host not in out.domains:
            out.domains.append(host)
    for m in _EMAIL.finditer(norm) if "@" in norm or "[at]" in norm or "(at)" in norm else ():
        if _claimed(spans, m.start(), m.end()):
            continue
        domain = re.sub(r"\s*\[dot\]\s*", ".", m.group(2)).lower()
        add(m.start(), m.end(), "email", f"{m.group(1).lower()}@{domain}", out.emails)
    for (platform, pattern), triggers in zip(_HANDLE_PATTERNS, _HANDLE_TRIGGERS, strict=True):
        if not any(t in lower for t in triggers):
            continue  # a substring test is far cheaper than a scan with the pattern
        for m in pattern.finditer(norm):
            if _claimed(spans, m.start(), m.end()):
                continue
            name = m.group(1)
            if platform in {"whatsapp", "zalo"} and name.isdigit():
                e164 = parse_phone(name, True) or parse_phone(name, False, language)
                if e164 is None:
                    continue
                add(m.start(), m.end(), "handle", f"{platform}:{e164}", out.handles)
                if e164 not in out.phones:
                    out.phones.append(e164)
                continue
            add(m.start(), m.end(), "handle", f"{platform}:{name.lower().lstrip('~@')}", out.handles)
    for m in _DOMAIN.finditer(norm) if "." in norm else ():
        if _claimed(spans, m.start(), m.end()):
            continue
        host = m.group(1).lower()
        if host in _MESSENGER_HOSTS or re.fullmatch(r"[\d.]+", host):
            continue
        add(m.start(), m.end(), "url", f"http://{host}{m.group(2) or ''}", out.urls)
        if host not in out.domains:
            out.domains.append(host)
    budget = [PHONE_BUDGET]
    runs = list(_RUN.finditer(norm))
    if sum(lower.count(w) for w in _WORD_DIGITS if w.isascii()) >= 8:
        runs += [
            m for m in _WORD_RUN.finditer(lower) if not any(r.start() <= m.start() < r.end() for r in runs)
        ]
    for run in runs:
        if budget[0] < 0:
            break
        for start, end, e164 in _phones_in_run(norm, run, language, budget):
            if _claimed(spans, start, end):
                continue
            spans.append(Span(start, end, "phone", e164))
            if e164 not in out.phones:
                out.phones.append(e164)
            label = _MESSENGER_LABEL.search(norm[max(0, start - 24) : start])
            if label:
                platform = _PLATFORM_OF_LABEL.get(re.sub(r"\s+", " ", label.group(1).lower()), "phone")
                handle = f"{platform}:{e164}"
                if handle not in out.handles:
                    out.handles.append(handle)
    for pattern in _AGES if _AGE_PAIR.search(norm) else ():
        for m in pattern.finditer(norm):
            lo, hi = int(m.group("lo")), int(m.group("hi"))
            if 14 <= lo < hi <= 70 and not _claimed(spans, m.start("lo"), m.end("hi")):
                spans.append(Span(m.start(), m.end(), "age", f"{lo}-{hi}"))
                if (lo, hi) not in out.ages:
                    out.ages.append((lo, hi))
    for m in _MONEY.finditer(norm):
        if _claimed(spans, m.start(), m.end()):
            continue
        found = _salary(norm, m, language)
        if found is not None:
            start, salary = found
            spans.append(Span(start, m.end(), "money", f"{salary.usd_month:g} USD/month"))
            out.salaries.append(salary)
    pattern, by_name = gazetteer()
    for m in _places(pattern, lower):
        place = by_name[m.group(0)]
        spans.append(Span(m.start(), m.end(), "place", place.key))
        if place not in out.places:
            out.places.append(place)
    for name, mention, need in _mentions():
        if need is not None and not any(literal in lower for literal in need):
            continue  # none of the words every match holds: no scan
        for m in mention.finditer(lower):
            spans.append(Span(m.start(), m.end(), "mention", name))
            if name not in out.mentions:
                out.mentions.append(name)
    spans.sort(key=lambda s: (s.start, -s.end))
    return out
