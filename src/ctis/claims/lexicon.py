"""The words the claim finder knows, and what each one says about a figure.

Patterns are regular expressions over a sentence's *token string*: its tokens
in lower case joined by single spaces, numbers as ``<num>``, period phrases as
``<period>`` and masked spans as ``<x>``.  A pattern therefore matches whole
tokens only, whatever the spacing and punctuation of the original text.

Qualifiers narrow what is counted; they are kept as ``{dimension: codes}``:

* ``sex``: female / male
* ``age``: minor / adult
* ``nationality``: KHM, ``foreign`` (any known nationality but KHM) or an ISO code
* ``province``: an ISO 3166-2:KH code
* ``type``: an offence / exploitation type code
"""

from __future__ import annotations

import csv
import re
from functools import cache
from importlib import resources

Quals = dict[str, frozenset[str]]

#: When every value of a dimension is named ("men and women"), the dimension says nothing.
COMPLETE: dict[str, frozenset[str]] = {
    "sex": frozenset({"female", "male"}),
    "age": frozenset({"minor", "adult"}),
    "nationality": frozenset({"KHM", "foreign"}),
}


def q(**dims: str) -> Quals:
    return {dim: frozenset(codes.split("|")) for dim, codes in dims.items()}


# --- verbs -----------------------------------------------------------------------------------------
#: class -> pattern.  Classes: rescue, assist, repatriate, refer (victims); arrest, prosecute, convict
#: (suspects); crackdown (cases); conduct (operations); neg (events no metric counts).
_GIFTS = (
    r"(?:shelter|assistance|support|care|services|aid|help|counsell?ing|protection|accommodation|treatment)"
)
VERBS: dict[str, str] = {
    "rescue": "|".join(
        [
            r"rescu(?:e|ed|es|ing)|saved|sav(?:e|ing)|freed|liberat(?:e|ed|es|ing)|identif(?:y|ied|ies|ying)",
            r"intercept(?:ed|ing|s)?|removed|pulled out|brought to safety|taken to safety|extracted",
            r"recovered",
            r"released from|escorted out",
        ]
    ),
    "assist": "|".join(
        [
            r"assist(?:ed|ing|s)?|support(?:ed|ing)|help(?:ed|ing)|shelter(?:ed|ing)|cared for|looked after",
            r"provided (?:with|for)|given " + _GIFTS,
            r"(?:provid|offer|giv|extend)(?:e|ed|es|ing|en)? (?:\S+ ){0,3}?" + _GIFTS + r"(?: to| for)?",
            r"gave (?:\S+ ){0,3}?" + _GIFTS + r"(?: to)?",
            r"(?:received|receiving|receive|got|get|obtained|accessed) (?:\S+ ){0,2}" + _GIFTS,
            r"counsell?ed|accommodated|housed|treated",
            r"(?:assistance|support|shelter|care|services|aid|protection) (?:was |were )?"
            r"(?:provided |given )?to",
        ]
    ),
    "repatriate": "|".join(
        [
            r"repatriat(?:e|ed|es|ing)|returned home|sent (?:back )?home|brought (?:back )?home|sent back",
            r"returned to (?:cambodia|their (?:home )?countr(?:y|ies)|their homes?|their families)",
        ]
    ),
    "refer": r"referr(?:ed|ing)|refers?",
    "arrest": "|".join(
        [
            r"arrest(?:ed|ing)?|detain(?:ed|ing|s)?|apprehend(?:ed|ing|s)?|caught|nabbed|captured",
            r"taken into custody|held in custody|in custody|rounded up|placed under arrest|put under arrest",
            r"picked up|held for questioning|locked up",
        ]
    ),
    "prosecute": "|".join(
        [
            r"prosecut(?:e|ed|es|ing)|charg(?:e|ed|es|ing)|indict(?:ed|ing|s)?",
            r"brought to (?:court|justice|trial)|sent to (?:court|trial)|taken to court|put on trial",
            r"faced charges|facing charges|tried in court|stood trial|on trial",
            r"brought before (?:a |the )?(?:court|judge)",
        ]
    ),
    "convict": "|".join(
        [
            r"convict(?:ed|ing|s)?|sentenc(?:e|ed|es|ing)|found guilty|jailed|imprisoned|put behind bars",
            r"guilty",
            r"given (?:prison|jail) (?:terms|sentences)|handed (?:down )?(?:prison|jail) (?:terms|sentences)",
        ]
    ),
    "crackdown": "|".join(
        [
            r"crack(?:ed|ing|s)? down(?: on)?|bust(?:ed|ing)?|dismantl(?:e|ed|es|ing)|broke up|broken up",
            r"handl(?:e|ed|es|ing)|investigat(?:e|ed|es|ing)|uncover(?:ed|ing|s)?|solv(?:e|ed|es|ing)",
            r"dealt with|tackl(?:e|ed|es|ing)|recorded|suppress(?:ed|ing)",
        ]
    ),
    "conduct": "|".join(
        [
            r"conduct(?:ed|ing|s)?|carried out|carry out|launch(?:ed|ing|es)?|stag(?:e|ed)|mount(?:ed|ing)",
            r"performed|undert(?:ook|aken)",
        ]
    ),
    "neg": "|".join(
        [
            r"at large|escaped|fled|on the run|wanted|sought|died|dead|killed|injured|missing|acquitted",
            r"released on bail|freed on bail|released|remain at large|deported|trafficked|lured|recruited",
            r"deceived|tricked|sold|exploited|abused|held captive|kidnapp?ed|abducted|smuggled",
            r"beaten|tortured|raped|murdered|enslaved|confined|locked up inside|trapped|stranded|stuck",
            r"employed|working|worked|hired|paid|promised|attended|joined|participated|trained",
            r"interviewed|surveyed|polled|lived|living|migrated|travell?ed|crossed|remain|remained|remains",
            r"live|work|works|went|left|moved|sent abroad|taken abroad",
        ]
    ),
}
VERB_DOMAIN: dict[str, str] = {
    "rescue": "victims",
    "assist": "victims",
    "repatriate": "victims",
    "refer": "victims",
    "arrest": "suspects",
    "prosecute": "suspects",
    "convict": "suspects",
    "crackdown": "cases",
    "conduct": "operations",
}
VERB_METRIC: dict[str, str] = {
    "rescue": "victims_rescued",
    "assist": "victims_assisted",
    "repatriate": "victims_repatriated",
    "refer": "victims_referred",
    "arrest": "suspects_arrested",
    "prosecute": "suspects_prosecuted",
    "convict": "suspects_convicted",
    "crackdown": "cases_cracked_down",
    "conduct": "operations",
}
#: What a domain counts when no verb says otherwise.
DOMAIN_DEFAULT: dict[str, str] = {
    "victims": "victims_rescued",
    "suspects": "suspects_arrested",
    "cases": "cases_cracked_down",
    "operations": "operations",
}
METRIC_DOMAIN: dict[str, str] = {metric: VERB_DOMAIN[verb] for verb, metric in VERB_METRIC.items()}

# --- nouns -----------------------------------------------------------------------------------------
#: Nouns that name what a metric counts.
DOMAIN_NOUNS: dict[str, str] = {
    r"victims?|survivors?": "victims",
    r"suspects?|perpetrators?|offenders?|traffickers?|culprits?|criminals?|accused|defendants?|brokers?|"
    r"recruiters?|pimps?|ringleaders?|gang members?|alleged traffickers?": "suspects",
    r"cases?|incidents?|offen[cs]es?|crimes?": "cases",
    r"operations?|raids?|crackdowns?|interventions?|missions?|stings?|busts?|sweeps?|inspections?": (
        "operations"
    ),
}
#: Nouns that name the counted event itself: "134 arrests".
ACTION_NOUNS: dict[str, str] = {
    r"arrests|detentions|apprehensions": "suspects_arrested",
    r"rescues": "victims_rescued",
    r"convictions": "suspects_convicted",
    r"prosecutions|indictments": "suspects_prosecuted",
    r"repatriations": "victims_repatriated",
    r"referrals": "victims_referred",
}
#: Singular action nouns that can anchor a figure ("the number of arrests", "arrests: 134").
ACTION_ANCHORS: dict[str, str] = {
    r"arrests?|detentions?": "suspects_arrested",
    r"rescues?": "victims_rescued",
    r"convictions?": "suspects_convicted",
    r"prosecutions?|indictments?": "suspects_prosecuted",
    r"repatriations?": "victims_repatriated",
    r"referrals?": "victims_referred",
    r"assistance": "victims_assisted",
}

DEMONYMS: dict[str, str] = {
    "cambodian": "KHM",
    "cambodians": "KHM",
    "khmer": "KHM",
    "khmers": "KHM",
    "vietnamese": "VNM",
    "chinese": "CHN",
    "thai": "THA",
    "thais": "THA",
    "lao": "LAO",
    "laotian": "LAO",
    "laotians": "LAO",
    "indonesian": "IDN",
    "indonesians": "IDN",
    "malaysian": "MYS",
    "malaysians": "MYS",
    "burmese": "MMR",
    "myanmar": "MMR",
    "filipino": "PHL",
    "filipinos": "PHL",
    "filipina": "PHL",
    "filipinas": "PHL",
    "indian": "IND",
    "indians": "IND",
    "bangladeshi": "BGD",
    "bangladeshis": "BGD",
    "pakistani": "PAK",
    "pakistanis": "PAK",
    "nepali": "NPL",
    "nepalese": "NPL",
    "sri lankan": "LKA",
    "sri lankans": "LKA",
    "korean": "KOR",
    "koreans": "KOR",
    "south korean": "KOR",
    "south koreans": "KOR",
    "japanese": "JPN",
    "taiwanese": "TWN",
    "singaporean": "SGP",
    "singaporeans": "SGP",
    "kenyan": "KEN",
    "kenyans": "KEN",
    "ugandan": "UGA",
    "ugandans": "UGA",
    "ethiopian": "ETH",
    "ethiopians": "ETH",
    "nigerian": "NGA",
    "nigerians": "NGA",
    "american": "USA",
    "americans": "USA",
    "british": "GBR",
    "australian": "AUS",
    "australians": "AUS",
    "russian": "RUS",
    "russians": "RUS",
    "turkish": "TUR",
    "brazilian": "BRA",
    "brazilians": "BRA",
}
#: Countries, for "rescued from Thailand": a place of exploitation, which CTIS does not break down.
COUNTRIES = (
    r"thailand|vietnam|viet nam|china|myanmar|burma|laos|malaysia|indonesia|the philippines|philippines|"
    r"south korea|korea|japan|taiwan|singapore|dubai|the uae|united arab emirates|saudi arabia|qatar|"
    r"kuwait|india|bangladesh|sri lanka|nepal|pakistan|hong kong|macau|macao|the united states|"
    r"the us|australia|the middle east"
)

#: Nouns for people, which count nothing until a verb or the context says what: with their qualifiers.
PEOPLE_NOUNS: dict[str, Quals] = {
    r"people|persons?|individuals?|human beings|nationals?|citizens?|workers?|migrants?|migrant workers?|"
    r"labou?rers?|employees?|fishermen|fishers|staff members|youths?|teenagers?|teens?|"
    r"job ?seekers?|jobseekers?|villagers?|residents?|ppl|folks": {},
    r"women and girls|girls and women|women|woman|ladies|females": q(sex="female"),
    r"girls?": q(sex="female"),
    r"men and boys|men|man|males": q(sex="male"),
    r"boys?": q(sex="male", age="minor"),
    r"girls and boys|boys and girls": q(age="minor"),
    r"children|child|kids|minors|juveniles|under-18s|under 18s|underage people|infants|babies": q(
        age="minor"
    ),
    r"adults": q(age="adult"),
    r"foreigners|foreign nationals|foreign citizens|foreign workers|non-cambodians|expatriates|expats|"
    r"outsiders|aliens": q(nationality="foreign"),
}
for _word, _code in DEMONYMS.items():
    if _word.endswith("s") or _word in {
        "vietnamese",
        "chinese",
        "burmese",
        "japanese",
        "taiwanese",
        "nepalese",
        "lao",
    }:
        PEOPLE_NOUNS.setdefault(re.escape(_word), q(nationality="KHM" if _code == "KHM" else _code))

#: Adjectives and phrases that narrow a noun.
QUAL_WORDS: dict[str, Quals] = {
    r"female|women|woman|girl": q(sex="female"),
    r"male|men": q(sex="male"),
    r"underage|under-age|under-aged|underaged|minor|child|juvenile|young|under-18|school-age": q(age="minor"),
    r"adult|grown-up": q(age="adult"),
    r"foreign|foreign-national|non-cambodian|foreign-born|overseas|expatriate|of foreign nationality|"
    r"of other nationalities|from other countries|non-khmer": q(nationality="foreign"),
    r"local": q(nationality="KHM"),
}
for _word, _code in DEMONYMS.items():
    if not _word.endswith("s") or _word in {
        "vietnamese",
        "chinese",
        "burmese",
        "japanese",
        "taiwanese",
        "nepalese",
    }:
        QUAL_WORDS.setdefault(re.escape(_word), q(nationality=_code))

#: Age phrases: "under 18", "under the age of 18", "aged below 18", "18 and over".
AGE_QUALS: list[tuple[str, Quals]] = [
    (
        r"\b(?:aged\s+|who\s+were\s+|were\s+)?(?:under|below|younger\s+than|less\s+than|not\s+yet)\s+(?:the\s+age\s+of\s+)?"
        r"(?:18|eighteen)(?:\s+years(?:\s+of\s+age|\s+old)?)?(?!\d|,\d|\s*(?:victims|suspects|people|persons|cases))",
        q(age="minor"),
    ),
    (r"\bunder[\s-](?:18|eighteen)s?\b", q(age="minor")),
    (r"\b(?:aged\s+)?(?:18|eighteen)\s+(?:years\s+)?(?:and|or)\s+(?:over|older|above)\b", q(age="adult")),
    (
        r"\b(?:aged\s+)?(?:over|above|older\s+than)\s+(?:the\s+age\s+of\s+)?(?:17|18|eighteen)(?:\s+years(?:\s+old)?)?"
        r"(?!\d|,\d|\s*(?:victims|suspects|people|persons|cases))",
        q(age="adult"),
    ),
]

#: Offence / exploitation types named in a noun phrase.  "trafficking" alone names them all.
TYPE_WORDS: dict[str, str] = {
    r"sex(?:ual)?[\s-]trafficking|sexual[\s-]exploitation|sex|sexual|prostitution|sex work": (
        "sexual_exploitation"
    ),
    r"(?:forced|bonded)[\s-]labou?r|labou?r[\s-]trafficking|labou?r[\s-]exploitation|labou?r": (
        "forced_labour"
    ),
    r"(?:online[\s-])?scams?|scam[\s-]compounds?|forced[\s-]criminality|cyber[\s-]?scams?|online[\s-]fraud": (
        "forced_criminality"
    ),
    r"fraud": "forced_criminality",
    r"forced[\s-]marriages?|bride[\s-]trafficking|marriage": "forced_marriage",
    r"organ[\s-]removal|organ[\s-]trafficking|organs?": "organ_removal",
    r"(?:forced[\s-])?begging": "forced_begging",
}
GENERIC_TYPE = r"(?:human[\s-])?trafficking|trafficking[\s-]in[\s-]persons|tip"

#: Nouns after a number that make it something other than a count of people or cases.
UNIT_NOUNS = (
    r"years?|months?|weeks?|days?|hours?|minutes?|seconds?|decades?|centuries|times|dollars?|usd|riels?|khr|"
    r"baht|yuan|euros?|pounds?|ringgit|dong|km|kms|kilomet(?:re|er)s?|miles?|met(?:re|er)s?|kg|kilos?|"
    r"kilograms?|tons?|tonnes?|calls?|messages?|posts?|reports?|tips?|complaints?|provinces?|districts?|"
    r"communes?|villages?|cities|towns?|countries|nations|agencies|ministries|officers?|police(?:men)?|"
    r"officials?|troops?|soldiers?|staff|members?|teams?|units?|shelters?|ngos?|organi[sz]ations?|partners?|"
    r"hotlines?|phones?|computers?|laptops?|vehicles?|cars?|motorbikes?|motorcycles?|boats?|buildings?|"
    r"rooms?|floors?|compounds?|casinos?|hotels?|brothels?|bars?|karaoke|massage|parlou?rs?|establishments?|"
    r"venues?|premises|sites?|locations?|laws?|articles?|sections?|pages?|points?|steps?|percent|per|"
    r"pc|sessions?|trainings?|workshops?|meetings?|campaigns?|courses?|participants?|students?|"
    r"judges?|prosecutors?|lawyers?|courts?|prisons?|sentences?|counts?|charges?|documents?|passports?|"
    r"websites?|accounts?|pieces?|items?|weapons?|guns?|dogs?|languages?|generations?|families|households?|"
    r"journalists?|reporters?|billion|million|thousand|hundred|laws?|decrees?|stories|versions?|"
    r"social workers?|volunteers?|delegates?|guests?|attendees?|leaders?|representatives?"
)
#: Words between a number and its noun that are allowed ("290 *trafficking* victims").
STOP_WORDS = {
    "of",
    "in",
    "on",
    "at",
    "from",
    "by",
    "with",
    "to",
    "for",
    "into",
    "during",
    "over",
    "under",
    "about",
    "were",
    "was",
    "are",
    "is",
    "be",
    "been",
    "being",
    "had",
    "have",
    "has",
    "will",
    "would",
    "could",
    "should",
    "that",
    "which",
    "who",
    "whom",
    "whose",
    "this",
    "these",
    "those",
    "it",
    "its",
    "they",
    "them",
    "their",
    "he",
    "she",
    "his",
    "her",
    "we",
    "our",
    "you",
    "your",
    "i",
    "as",
    "than",
    "then",
    "but",
    "while",
    "whereas",
    "because",
    "since",
    "after",
    "before",
    "when",
    "where",
    "if",
    "not",
    "no",
    "nor",
    "so",
    "per",
    "each",
    "every",
    "a",
    "an",
    "the",
    "more",
    "fewer",
    "less",
    "said",
    "says",
    "told",
    "also",
    "compared",
    "versus",
    "vs",
    "against",
    "up",
    "down",
    "out",
    "all",
    "both",
    "some",
    "any",
    "only",
    "including",
    "among",
    "amongst",
    "between",
    "through",
    "across",
    "within",
    "without",
    "via",
    "off",
}
#: Words right after a number that make it a difference, not a total ("12 more victims").
DIFFERENCE_WORDS = {
    "more",
    "fewer",
    "less",
    "additional",
    "extra",
    "further",
    "other",
    "others",
    "higher",
    "lower",
}

#: Comparators, as they appear before a number.
COMPARATORS: list[tuple[str, str]] = [
    (r"just over|slightly (?:more|over) than|slightly over|a little over|a little more than|just above", ">"),
    (
        r"just under|slightly (?:fewer|less) than|slightly under|just shy of|a little under|"
        r"a little less than",
        "<",
    ),
    (r"more than|over|above|upwards of|in excess of|exceeding|greater than|beyond", ">"),
    (
        r"at least|no fewer than|no less than|not less than|not fewer than|a minimum of|minimum of|"
        r"at minimum|min\.?",
        ">=",
    ),
    (r"fewer than|less than|under|below|not even|short of", "<"),
    (r"at most|no more than|not more than|a maximum of|maximum of|up to|as many as|a max of", "<="),
    (
        r"about|around|approximately|approx\.?|roughly|some|nearly|almost|close to|an estimated|estimated|"
        r"circa|c\.|~|in the region of|of the order of|on the order of|nigh on|more or less|or so|"
        r"some estimated|an approximate|approximate|near|close on",
        "~",
    ),
]
#: Words that put a number in a subset of the figure just named ("of whom 241 were women").
SUBSET_MARKERS = (
    r"of whom|of them|among them|amongst them|among whom|including|included|includes|among these|"
    r"among those|of these|of those|of which|among the total|among the victims|among the suspects|"
    r"of the total|out of these|out of them|this included|these included|they included|comprising|namely"
)
#: Copulas and the like between a number and what it is ("241 were women").
COPULA = r"were|was|are|is|had been|have been|has been|being|be|been|became|being"
#: Verbs and phrases that link a bare number to the figure named before it ("arrests reached 134").
LINKS = (
    r"rose to|risen to|increased to|grew to|climbed to|jumped to|went up to|fell to|dropped to|declined to|"
    r"decreased to|went down to|reached|totall?ed|totall?ing|total|stood at|stands at|standing at|numbered|"
    r"number|came to|amounted to|amounting to|hit|was|were|is|are|:|=|-|–|—|of|at|from|up from|down from|"
    r"compared with|compared to|against|versus|vs\.?|to|and|as many as|reaching|totaling|a total of|total of|"
    r"make up|made up|making up|accounted for|accounting for|account for"
)
#: Change words: figures that compare two periods ("up 15%", "an increase of 20").
CHANGE_WORDS = (
    r"increase[sd]?|increasing|rise|rises|rising|rose|risen|up|down|drop|drops|dropped|dropping|fell|fall|falls|"
    r"falling|decline[sd]?|declining|decrease[sd]?|decreasing|jump|jumped|jumps|grew|grow|growth|surge[sd]?|"
    r"climbed|climb|reduction|reduced|higher|lower|more|fewer|less|by|doubled|tripled|halved"
)
#: A single operation or place: a figure about one event, not a period total.
EVENT = (
    r"(?:in|during|from|at|after|through) (?:a|an|one|the|a single|that|this|one single) (?:\S+ ){0,3}?"
    r"(?:raid|operation|bust|sting|swoop|compound|brothel|bar|karaoke(?: parlou?r| club| bar)?|casino|hotel|"
    r"building|house|apartment|condominium|factory|boat|vessel|ship|bus|van|truck|restaurant|club|"
    r"massage parlou?r|guesthouse|guest house|villa|plantation|farm|checkpoint|incident|case|event)\b"
)
#: Phrases that make a figure national, cancelling a province named nearby.
NATIONAL = (
    r"nationwide|nation-wide|countrywide|country-wide|across the country|throughout the country|"
    r"across cambodia|throughout cambodia|all over the country|in all (?:25|<num>) provinces|"
    r"in all provinces|national(?:ly)?|in total|in cambodia"
)
#: Words before "in <province>" that make it a venue, not where things were counted.
PLACE_OF_SPEAKER = (
    r"based|held|meeting|conference|speech|said|says|told|office|headquarters|ceremony|event|forum|workshop|"
    r"residing|living|lives|live|born|speaking|spoke|summit|press conference|visit|visiting"
)
#: Verbs after "police in <province>" that make the province where the speaker is.
SPEECH_AFTER = (
    r"said|says|say|told|announced|reported|stated|added|noted|explained|confirmed|revealed|claimed"
)


@cache
def provinces() -> list[tuple[str, str]]:
    """(lower-case name or alias, ISO 3166-2:KH code), longest names first."""
    rows: list[tuple[str, str]] = []
    with resources.files("ctis.domain").joinpath("data", "provinces.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rows.append((row["name_en"].lower(), row["code"]))
            rows.extend((alias.lower(), row["code"]) for alias in row["aliases"].split(";") if alias)
    rows.extend(
        [
            ("sihanouk", "KH-18"),
            ("sihanouk ville", "KH-18"),
            ("poi pet", "KH-1"),
            ("phnom penh city", "KH-12"),
        ]
    )
    return sorted(rows, key=lambda r: -len(r[0]))


def alternation(patterns: object) -> str:
    """One regular-expression alternation of whole-token patterns."""
    return r"(?<![\w<>-])(?:" + "|".join(f"(?:{p})" for p in patterns) + r")(?![\w<>-])"  # type: ignore[attr-defined]
