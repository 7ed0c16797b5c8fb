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


def _make_network(rng: random.Random, index: int, lang: str, split: str) -> _Network:
    pools = corpus_data()["recruitment"][lang]
    core = ["open", "job", "pay", "contact"]
    optional = [k for k in ("perks", "req", "place", "urgent", "ilo") if rng.random() < 0.75]
    if "place" not in optional and rng.random() < 0.7:
        optional.append("place")
    middle = ["job", "pay", *optional]
    rng.shuffle(middle)
    order = ["open", *middle, "contact"]
    parts = [(k, rng.randrange(len(pools[k]))) for k in order]
    if rng.random() < 0.4:  # a second sentence of one kind, for longer templates
        extra = rng.choice([k for k in pools if k not in core])
        parts.insert(rng.randrange(1, len(parts)), (extra, rng.randrange(len(pools[extra]))))
    region = _REGION[lang] if rng.random() < 0.7 else rng.choice(["KH", "TH", "VN", "MM"])
    phones = [_e164(rng, region) for _ in range(rng.randint(1, 3))]
    platforms = corpus_data()["platforms"][lang]
    handles = [(rng.choice(platforms), _handle_name(rng)) for _ in range(rng.randint(1, 3))]
    hub_names = corpus_data()["hubs"][lang]
    hubs = rng.sample(hub_names, k=min(len(hub_names), rng.randint(1, 3)))
    brand = f"{rng.choice(corpus_data()['brand_a'])} {rng.choice(corpus_data()['brand_b'])}"
    low = rng.choice([800, 1000, 1200, 1500, 2000])
    return _Network(
        id=f"NET{index:03d}", language=lang, brand=brand, parts=parts,
        phones=phones, handles=handles, hubs=hubs, pay=(low, low + rng.choice([500, 1000, 1500, 3000])),
        age=(rng.choice([18, 18, 20]), rng.choice([30, 35, 35, 40])), phone_style=rng.randrange(6),
        contact_style=rng.randrange(4), split=split,
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
        parts[i] = (parts[i][0], rng.randrange(len(pools[parts[i][0]])))
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
    sep = rng.choice(["\n", " ", "\n"]) if lang not in {"th"} else rng.choice(["\n", " "])
    text = sep.join(sentences)
    source = rng.choice(["facebook", "telegram", "jobsite"])
    post = Post(id=f"{net.id}-{number:04d}", text=text, source=source,
                posted_at=when)  # fmt: skip
    return LabelledPost(post, True, net.id, lang, net.split, truth)


def _company(rng: random.Random, lang: str) -> tuple[str, str]:
    a, b = rng.choice(corpus_data()["company_a"]), rng.choice(corpus_data()["company_b"])
    slug = (a + b.split()[0]).lower().replace(" ", "").replace("&", "")
    return corpus_data()["company_form"][lang].format(a=a, b=b), slug


def _legit_post(rng: random.Random, index: int, lang: str, when: datetime) -> list[LabelledPost]:
    """One ordinary job post, sometimes reposted by its employer (one to three copies, lightly edited)."""
    pools = corpus_data()["ordinary"][lang]
    role = rng.choice(corpus_data()["roles"])
    key, (low_pay, high_pay), names, skilled = role["key"], role["pay"], role["names"], role["skilled"]
    company, slug = _company(rng, lang)
    tld = rng.choice([".com", ".com.kh", ".co.th", ".vn", ".com"])
    domain = slug + tld
    truth = Truth()
    # hotels and restaurants in a hub city are ordinary employers too
    hotel_trade = key in {"receptionist", "cook", "waiter", "security"}
    city_pool = corpus_data()["cities"][lang] + (corpus_data()["hubs"][lang][:1] if hotel_trade else [])
    how = rng.random()
    if how < 0.45:
        email = f"{rng.choice(['hr', 'jobs', 'careers', 'recruitment'])}@{domain}"
        apply, truth.emails = email, {email}
    elif how < 0.6:
        email = f"{slug}.hr{rng.randrange(10, 99)}@{rng.choice(corpus_data()['free_mail'])}"
        apply, truth.emails = email, {email}
    elif how < 0.8:
        url = f"https://www.{domain}/careers"
        apply, truth.urls = url, {url}
    else:
        e164 = _e164(rng, _REGION[lang])
        apply = _write_phone(rng, e164, lang, rng.choice([0, 1, 2]))
        truth.phones = {e164}
        if rng.random() < 0.3:  # small employers answer on Telegram too
            name = _handle_name(rng)
            apply += f" (Telegram @{name})"
            truth.handles = {f"telegram:{name.lower()}"}
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
    chosen = [(k, rng.randrange(len(pools[k]))) for k in order]
    sentences = [pools[k][i].format(**values) for k, i in chosen]
    if any("{salary}" in pools[k][i] for k, i in chosen):
        truth.salary_usd_month = usd
    sep = rng.choice(["\n", " "])
    group = f"JOB{index:05d}"
    out = []
    for copy in range(rng.choice([1, 1, 1, 1, 2, 3])):
        text = sep.join(sentences)
        if copy:  # a repost: the date line or a closing sentence changes
            text += rng.choice(["\n(reposted)", " 🙏", "\nDeadline extended.", ""])
        post = Post(id=f"{group}-{copy}", text=text, title=names[lang] if rng.random() < 0.3 else None,
                    source=rng.choice(["jobsite", "facebook", "company website"]),
                    posted_at=when + timedelta(days=7 * copy))  # fmt: skip
        out.append(LabelledPost(post, False, group, lang, "", truth))
    return out


def generate(
    n: int = 5000, seed: int = 20250501, networks: int = 50, test_share: float = 0.2
) -> list[LabelledPost]:
    """About ``n`` posts, a fifth of them from ``networks`` recruitment networks, split train/test.

    The split is frozen by the seed: whole networks (the last ``test_share`` of
    them) and whole employers' jobs go to the test part, so no test template
    was seen in training.
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
    index = 0
    while len(posts) < n:
        when = start + timedelta(hours=rng.randrange(24 * 180))
        for item in _legit_post(rng, index, LANGS[index % len(LANGS)], when):
            item.split = "test" if rng.random() < test_share and item.post.id.endswith("-0") else item.split
            posts.append(item)
        index += 1
    # a job's reposts follow its first post into the same part
    split_of: dict[str, str] = {}
    for item in posts:
        if not item.recruitment:
            split_of.setdefault(item.group, item.split or "train")
            item.split = split_of[item.group]
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
