"""A seeded synthetic corpus of job posts: recruitment posts of scam networks and ordinary job posts.

The model is trained on it and the evaluation measures on it, so it must not
be easy in the ways that flatter a screener:

* each recruitment network writes its own template — its own sentences,
  chosen from pools of differently built sentences, in its own order, with
  its own name — and varies it per post the way recruiters do: a new phone
  or handle, another salary, another hub city, a dropped sentence, a synonym;
* ordinary posts cover many trades and pay levels, including engineering and
  medical posts that pay more than the lures do, and carry some of the red
  flags on their own (an age range, "no experience needed", a Telegram
  contact, a hotel in Sihanoukville), as real posts in the region do;
* the test part holds whole networks that the train part never saw.

Only synthetic data: every phone number, handle, name and company is made up
here from random parts.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import phonenumbers

from ctis.screening.entities import rates
from ctis.screening.posts import Post

LANGS = ("en", "km", "zh", "th", "vi")
_REGION = {"en": "KH", "km": "KH", "zh": "CN", "th": "TH", "vi": "VN"}
_NATIVE_DIGITS = {"km": 0x17E0, "th": 0x0E50}
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@cache
def corpus_data() -> dict[str, Any]:
    """Sentence pools, names and parts of names (``data/corpus.json``): data, not code."""
    path = resources.files("ctis.screening") / "data" / "corpus.json"
    with path.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@dataclass
class Truth:
    """What the generator wrote into a post, for the evaluation of entity extraction."""

    phones: set[str] = field(default_factory=set)
    handles: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)
    salary_usd_month: int | None = None


@dataclass
class LabelledPost:
    post: Post
    recruitment: bool
    group: str  # the network (recruitment) or the employer's job (ordinary posts, reposted)
    language: str
    split: str  # train, test
    truth: Truth


@dataclass
class _Network:
    id: str
    language: str
    brand: str
    parts: list[tuple[str, int]]
    phones: list[str]
    handles: list[tuple[str, str]]
    hubs: list[str]
    pay: tuple[int, int]
    age: tuple[int, int]
    phone_style: int
    contact_style: int
    split: str
    lists: list[tuple[int, str, list[str]]]  # the network's own lists: position, lead, items


def _e164(rng: random.Random, region: str) -> str:
    """A random number that phonenumbers accepts as a valid mobile of ``region``."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        raise ValueError(f"phonenumbers has no example mobile number for {region}")
    national = str(example.national_number)
    while True:
        keep = 2 if region != "CN" else 3
        digits = national[:keep] + "".join(rng.choice("0123456789") for _ in range(len(national) - keep))
        number = phonenumbers.parse("+" + str(example.country_code) + digits)
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _write_phone(rng: random.Random, e164: str, lang: str, style: int) -> str:
    """The number as recruiters write it: local, international, spaced, native or spelled digits."""
    number = phonenumbers.parse(e164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    compact = "".join(ch for ch in national if ch.isdigit())
    if style == 0:
        return national
    if style == 1:
        return international
    if style == 2:
        return compact
    if style == 3:
        return " ".join(compact)
    if style == 4 and lang in _NATIVE_DIGITS:
        base = _NATIVE_DIGITS[lang]
        return "".join(chr(base + int(ch)) if ch.isdigit() else ch for ch in national)
    if style == 4 and lang == "en":
        head, tail = compact[:3], compact[3:]
        return " ".join(head) + "-" + " ".join(_WORDS[int(d)] for d in tail[:3]) + " " + " ".join(tail[3:])
    return national.replace(" ", "-")


def _salary_text(rng: random.Random, lang: str, low: int, high: int) -> tuple[str, int]:
    """A pay range in the language's usual currency and writing, and its top in US dollars a month."""
    r = rates()
    style = rng.randrange(3)
    if lang == "th":
        lo, hi = round(low / r["THB"], -3), round(high / r["THB"], -3)
        text = f"{lo:,.0f}-{hi:,.0f} บาท/เดือน" if style else f"{hi:,.0f} บาท ต่อเดือน"
        return text, round(hi * r["THB"])
    if lang == "vi" and style:
        lo, hi = round(low / r["VND"] / 1e6), round(high / r["VND"] / 1e6)
        return (f"{lo}-{hi} triệu/tháng" if style == 1 else f"{hi} triệu đồng/tháng"), round(
            hi * 1e6 * r["VND"]
        )
    if lang == "zh" and style == 2:
        lo, hi = round(low / r["CNY"], -2), round(high / r["CNY"], -2)
        return f"{lo:.0f}-{hi:.0f}元/月", round(hi * r["CNY"])
    if lang == "zh":
        return (f"{high}U/月" if style else f"{low}-{high}美金/月"), high
    if lang == "km":
        return (f"{low}$-{high}$ ក្នុងមួយខែ" if style else f"{high} ដុល្លារ/ខែ"), high
    if lang == "vi":
        return f"{low}-{high} USD/tháng", high
    forms = [f"${low:,}-${high:,} per month", f"{low}-{high} USD/month", f"up to ${high:,} a month"]
    return forms[style], high


def _handle_text(rng: random.Random, platform: str, name: str, lang: str, style: int) -> tuple[str, str]:
    """A messaging handle as written, and its normalised form (``platform:name``)."""
    if platform == "telegram":
        forms = [f"Telegram: @{name}", f"TG @{name}", f"t.me/{name}", f"@{name}"]
        if lang == "zh":
            forms = [f"飞机 @{name}", f"电报: @{name}", f"t.me/{name}", f"Telegram: @{name}"]
        return forms[style % len(forms)], f"telegram:{name.lower()}"
    if platform == "wechat":
        return [f"微信: {name}", f"微信号：{name}", f"WeChat: {name}"][style % 3], f"wechat:{name.lower()}"
    if platform == "line":
        return [f"Line: @{name}", f"ไลน์: {name}", f"line.me/ti/p/~{name}"][style % 3], f"line:{name.lower()}"
    raise ValueError(platform)


def _handle_name(rng: random.Random) -> str:
    d = corpus_data()
    joiner = rng.choice(["_", ""])
    return f"{rng.choice(d['handle_a'])}{joiner}{rng.choice(d['handle_b'])}{rng.randrange(10, 999)}"


def _pick(rng: random.Random, size: int, split: str) -> int:
    """A sentence of a pool: every third one is kept for the test part, so test posts are worded in
    ways the model never saw in training (the rules were never fitted to any of them)."""
    own = [i for i in range(size) if (i % 3 == 2) == (split == "test")]
    return rng.choice(own or list(range(size)))


def _make_network(rng: random.Random, index: int, lang: str, split: str) -> _Network:
    pools = corpus_data()["recruitment"][lang]
    core = ["open", "job", "pay", "contact"]
    optional = [k for k in ("perks", "req", "place", "urgent", "ilo") if rng.random() < 0.75]
    if "place" not in optional and rng.random() < 0.7:
        optional.append("place")
    middle = ["job", "pay", *optional]
    rng.shuffle(middle)
    order = ["open", *middle, "contact"]
    parts = [(k, _pick(rng, len(pools[k]), split)) for k in order]
    if rng.random() < 0.4:  # a second sentence of one kind, for longer templates
        extra = rng.choice([k for k in pools if k not in core])
        parts.insert(rng.randrange(1, len(parts)), (extra, _pick(rng, len(pools[extra]), split)))
    region = _REGION[lang] if rng.random() < 0.7 else rng.choice(["KH", "TH", "VN", "MM"])
    phones = [_e164(rng, region) for _ in range(rng.randint(1, 3))]
    platforms = corpus_data()["platforms"][lang]
    handles = [(rng.choice(platforms), _handle_name(rng)) for _ in range(rng.randint(1, 3))]
    hub_names = corpus_data()["hubs"][lang]
    hubs = rng.sample(hub_names, k=min(len(hub_names), rng.randint(1, 3)))
    brand = f"{rng.choice(corpus_data()['brand_a'])} {rng.choice(corpus_data()['brand_b'])}"
    low = rng.choice([800, 1000, 1200, 1500, 2000])
    # its own lists of perks and tasks, in its own order: what makes one network's posts its own
    own = corpus_data()["recruitment_parts"][lang]
    lists = []
    for kind, lead in (("perks", "perk_lead"), ("tasks", "task_lead")):
        if rng.random() < 0.8:
            items = rng.sample(own[kind], k=rng.randint(3, 5))
            lists.append((rng.randrange(1, len(parts)), rng.choice(own[lead]), items))
    return _Network(
        id=f"NET{index:03d}", language=lang, brand=brand, parts=parts,
        phones=phones, handles=handles, hubs=hubs, pay=(low, low + rng.choice([500, 1000, 1500, 3000])),
        age=(rng.choice([18, 18, 20]), rng.choice([30, 35, 35, 40])), phone_style=rng.randrange(6),
        contact_style=rng.randrange(4), split=split, lists=lists,
    )  # fmt: skip


def _scam_post(rng: random.Random, net: _Network, number: int, when: datetime) -> LabelledPost:
    lang = net.language
    pools = corpus_data()["recruitment"][lang]
    truth = Truth()
    parts = list(net.parts)
    if len(parts) > 5 and rng.random() < 0.35:  # drop one sentence that is not the opening or contact
        parts.pop(rng.randrange(1, len(parts) - 1))
    if rng.random() < 0.25:  # two middle sentences trade places
        i = rng.randrange(1, len(parts) - 2)
        parts[i], parts[i + 1] = parts[i + 1], parts[i]
    if rng.random() < 0.2:  # one sentence reworded: another of the same kind
        i = rng.randrange(1, len(parts) - 1)
        parts[i] = (parts[i][0], _pick(rng, len(pools[parts[i][0]]), net.split))
    low, high = net.pay
    jitter = rng.choice([0, 0, 100, 200, 500])
    salary, usd = _salary_text(rng, lang, low + jitter, high + jitter)
    contact_bits = []
    platform, name = rng.choice(net.handles)
    if platform in {"whatsapp", "zalo"}:
        e164 = rng.choice(net.phones)
        label = "WhatsApp" if platform == "whatsapp" else "Zalo"
        foreign = phonenumbers.region_code_for_number(phonenumbers.parse(e164)) != _REGION[lang]
        contact_bits.append(
            f"{label}: {_write_phone(rng, e164, lang, 1 if foreign else rng.choice([0, 1, 2]))}"
        )
        truth.phones.add(e164)
        truth.handles.add(f"{platform}:{e164}")
    else:
        text, normal = _handle_text(rng, platform, name, lang, net.contact_style + rng.choice([0, 0, 1]))
        contact_bits.append(text)
        truth.handles.add(normal)
    if rng.random() < 0.6:
        e164 = rng.choice(net.phones)
        style = net.phone_style if rng.random() < 0.7 else rng.randrange(6)
        if phonenumbers.region_code_for_number(phonenumbers.parse(e164)) != _REGION[lang]:
            style = 1  # a foreign number is written with its calling code, or no reader could call it
        contact_bits.append(_write_phone(rng, e164, lang, style))
        truth.phones.add(e164)
    contact = " / ".join(contact_bits)
    age = f"{net.age[0]}-{net.age[1]}"
    values = {"brand": net.brand, "salary": salary, "city": rng.choice(net.hubs), "age": age,
              "contact": contact, "days": rng.randint(2, 5)}  # fmt: skip
    sentences = [pools[kind][i].format(**values) for kind, i in parts]
    if any("{salary}" in pools[kind][i] for kind, i in parts):
        truth.salary_usd_month = usd
    for at, lead, items in net.lists:
        kept = [x for x in items if rng.random() > 0.1] or items  # now and then an item is left out
        sentences.insert(min(at, len(sentences) - 1), f"{lead} {_join(kept, lang)}")
    sep = rng.choice(["\n", " ", "\n"]) if lang not in {"th"} else rng.choice(["\n", " "])
    text = sep.join(sentences)
    source = rng.choice(["facebook", "telegram", "jobsite"])
    post = Post(id=f"{net.id}-{number:04d}", text=text, source=source,
                posted_at=when)  # fmt: skip
    return LabelledPost(post, True, net.id, lang, net.split, truth)


@dataclass
class _Employer:
    """An ordinary employer: one name, one way to apply, used in every post it makes."""

    id: str
    language: str
    name: str
    apply: str
    truth: Truth
    weight: float
    split: str


def _join(items: list[str], lang: str) -> str:
    if lang == "zh":
        return "、".join(items)
    if lang in {"km", "th"}:
        return " ".join(items)
    word = " and " if lang == "en" else " và "
    return ", ".join(items[:-1]) + word + items[-1] if len(items) > 1 else items[0]


def _employers(rng: random.Random, test_share: float) -> dict[str, list[_Employer]]:
    """Every company name of the pools once, spread over the languages, each with its own contact."""
    d = corpus_data()
    names = [(a, b) for a in d["company_a"] for b in d["company_b"]]
    rng.shuffle(names)
    out: dict[str, list[_Employer]] = {lang: [] for lang in LANGS}
    for k, (a, b) in enumerate(names):
        lang = LANGS[k % len(LANGS)]
        slug = (a + b.split()[0]).lower().replace(" ", "").replace("&", "")
        domain = slug + rng.choice([".com", ".com.kh", ".co.th", ".vn", ".com"])
        truth = Truth()
        how = rng.random()
        if how < 0.45:
            apply = f"{rng.choice(['hr', 'jobs', 'careers', 'recruitment'])}@{domain}"
            truth.emails = {apply}
        elif how < 0.6:
            apply = f"{slug}.hr{rng.randrange(10, 99)}@{rng.choice(d['free_mail'])}"
            truth.emails = {apply}
        elif how < 0.8:
            apply = f"https://www.{domain}/careers"
            truth.urls = {apply}
        else:
            e164 = _e164(rng, _REGION[lang])
            apply = _write_phone(rng, e164, lang, rng.choice([0, 1, 2]))
            truth.phones = {e164}
            if rng.random() < 0.3:  # small employers answer on Telegram too
                name = _handle_name(rng)
                apply += f" (Telegram @{name})"
                truth.handles = {f"telegram:{name.lower()}"}
        company = d["company_form"][lang].format(a=a, b=b)
        split = "test" if rng.random() < test_share else "train"
        employer = _Employer(f"EMP{k:03d}", lang, company, apply, truth, rng.paretovariate(1.2), split)
        out[lang].append(employer)
    return out


def _legit_post(rng: random.Random, index: int, employer: _Employer, when: datetime) -> list[LabelledPost]:
    """One ordinary job post, sometimes reposted by its employer (one to three copies, lightly edited)."""
    lang = employer.language
    pools = corpus_data()["ordinary"][lang]
    role = rng.choice(corpus_data()["roles"])
    key, (low_pay, high_pay), names, skilled = role["key"], role["pay"], role["names"], role["skilled"]
    company, apply = employer.name, employer.apply
    truth = Truth(set(employer.truth.phones), set(employer.truth.handles), set(employer.truth.emails),
                  set(employer.truth.urls))  # fmt: skip
    # hotels and restaurants in a hub city are ordinary employers too
    hotel_trade = key in {"receptionist", "cook", "waiter", "security"}
    city_pool = corpus_data()["cities"][lang] + (corpus_data()["hubs"][lang][:1] if hotel_trade else [])
    low = rng.randrange(low_pay, high_pay, 50) if high_pay > low_pay else low_pay
    high = low + rng.choice([0, 100, 300, 500]) * (3 if low > 1500 else 1)
    salary, usd = _salary_text(rng, lang, low, high)
    address = corpus_data()["address"][lang].format(
        n=rng.randint(1, 300), s=rng.randint(1, 600), floor=rng.randint(2, 20)
    )
    values = {"company": company, "role": names[lang], "salary": salary, "city": rng.choice(city_pool),
              "years": rng.randint(1, 6), "apply": apply, "days": rng.randint(10, 28),
              "age": f"{rng.choice([18, 20, 22])}-{rng.choice([30, 35, 40, 45])}",
              "address": address}  # fmt: skip
    order = ["open", "duty", "req_skilled" if skilled or rng.random() < 0.15 else "req_basic"]
    order += [k for k in ("pay", "benefit", "where") if rng.random() < 0.8] + ["apply"]
    if rng.random() < 0.3:
        order.insert(2, "duty")
    chosen = [(k, _pick(rng, len(pools[k]), employer.split)) for k in order]
    sentences = [pools[k][i].format(**values) for k, i in chosen]
    if any("{salary}" in pools[k][i] for k, i in chosen):
        truth.salary_usd_month = usd
    # each employer writes its own list of duties, benefits and skills: ordinary posts vary as real ones do
    parts = corpus_data()["ordinary_parts"][lang]
    for kind, chance, at in (("duties", 0.85, 1), ("skills", 0.6, 2), ("benefits", 0.7, -1)):
        if rng.random() < chance:
            picked = rng.sample(parts[kind], k=rng.randint(2, 4))
            lead = rng.choice(
                parts[{"duties": "duty_lead", "skills": "skill_lead", "benefits": "benefit_lead"}[kind]]
            )
            sentences.insert(at if at >= 0 else len(sentences) - 1, f"{lead} {_join(picked, lang)}.")
    sep = rng.choice(["\n", " "])
    group = employer.id
    out = []
    for copy in range(rng.choice([1, 1, 1, 1, 2, 3])):
        text = sep.join(sentences)
        if copy:  # a repost: the date line or a closing sentence changes
            text += rng.choice(["\n(reposted)", " 🙏", "\nDeadline extended.", ""])
        post = Post(id=f"JOB{index:05d}-{copy}", text=text, title=names[lang] if rng.random() < 0.3 else None,
                    source=rng.choice(["jobsite", "facebook", "company website"]),
                    posted_at=when + timedelta(days=7 * copy))  # fmt: skip
        out.append(LabelledPost(post, False, group, lang, employer.split, truth))
    return out


def generate(
    n: int = 5000, seed: int = 20250501, networks: int = 50, test_share: float = 0.2
) -> list[LabelledPost]:
    """About ``n`` posts, a fifth of them from ``networks`` recruitment networks, split train/test.

    The split is frozen by the seed: whole networks (the last ``test_share`` of
    them) and whole employers go to the test part, and every third sentence of
    each pool is written only by them, so the test part holds templates and
    wordings that training never saw.
    """
    rng = random.Random(seed)  # noqa: S311 - seeded synthetic data, nothing secret
    start = datetime(2025, 1, 1)
    n_test_networks = max(1, round(networks * test_share))
    first_test = networks - n_test_networks
    nets = [_make_network(rng, i, LANGS[i % len(LANGS)], "test" if i >= first_test else "train")
            for i in range(networks)]  # fmt: skip
    posts: list[LabelledPost] = []
    target_scam = n // 5
    weights = [rng.uniform(0.3, 2.0) for _ in nets]
    counts = {net.id: 0 for net in nets}
    for i in range(target_scam):
        net = nets[i] if i < len(nets) else rng.choices(nets, weights)[0]
        counts[net.id] += 1
        when = start + timedelta(hours=rng.randrange(24 * 180))
        posts.append(_scam_post(rng, net, counts[net.id], when))
    employers = _employers(rng, test_share)
    index = 0
    while len(posts) < n:
        when = start + timedelta(hours=rng.randrange(24 * 180))
        lang = LANGS[index % len(LANGS)]
        employer = rng.choices(employers[lang], [e.weight for e in employers[lang]])[0]
        for item in _legit_post(rng, index, employer, when):
            posts.append(item)
        index += 1
    rng.shuffle(posts)
    return posts[:n] if len(posts) > n else posts


def as_records(posts: list[LabelledPost]) -> list[dict[str, Any]]:
    """The posts as a crawler would send them (JSON objects without the labels)."""
    out = []
    for item in posts:
        p = item.post
        record: dict[str, Any] = {"id": p.id, "text": p.text, "source": p.source}
        if p.title:
            record["title"] = p.title
        if p.posted_at:
            record["posted_at"] = p.posted_at.isoformat()
        out.append(record)
    return out
