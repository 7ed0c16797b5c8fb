"""The language of a post: by script where the script decides, by py3langid otherwise.

Khmer, Thai, Lao and Burmese each have a script of their own, and Chinese is
the only language of the region written in Han characters, so counting letters
per Unicode block settles them exactly and costs nothing; py3langid (whose
model ships inside the package) is asked only about Latin-script text, and
only to choose among the region's Latin-script languages, where a free choice
among a hundred languages would often guess wrongly on short posts.
"""

from __future__ import annotations

import re
import threading
from functools import cache

import py3langid.langid as langid

#: Languages the screening knows (rule files, digits, currencies), in the order the docs list them.
LANGUAGES = ("en", "km", "zh", "th", "vi", "my", "lo", "id")
#: Latin-script languages py3langid chooses among; Malay is reported as Indonesian's neighbour "id".
LATIN = ("en", "vi", "id", "ms", "tl")
_lock = threading.Lock()


@cache
def _identifier() -> langid.LanguageIdentifier:
    ident = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=False)
    ident.set_languages(list(LATIN))
    return ident


_SCRIPT_PATTERNS = [
    ("latin", re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")),
    ("km", re.compile(r"[\u1780-\u17ff\u19e0-\u19ff]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
    ("lo", re.compile(r"[\u0e80-\u0eff]")),
    ("my", re.compile(r"[\u1000-\u109f]")),
    ("zh", re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")),
]


def script_counts(text: str) -> dict[str, int]:
    """Letters per regional script, plus ``latin`` for ASCII letters and Vietnamese accented ones.

    Counted with ``re.subn`` (a loop in C): a Python loop over the characters
    took half a millisecond a post.
    """
    counts = {}
    for name, pattern in _SCRIPT_PATTERNS:
        n = pattern.subn("", text)[1]
        if n:
            counts[name] = n
    return counts


def detect(text: str) -> str:
    """ISO 639-1 code of the post's main language; ``und`` when there are no letters at all.

    A post mixing scripts (Khmer with an English job title, Chinese with a
    Telegram handle) is given the regional script when that script holds at
    least a fifth of its letters: the Latin part is then usually names and
    contact points, not the language the reader is addressed in.
    """
    counts = script_counts(text)
    total = sum(counts.values())
    if total == 0:
        return "und"
    regional = max((k for k in counts if k != "latin"), key=lambda k: counts[k], default=None)
    if regional is not None:
        share = counts[regional] / total
        # Han characters are dense (one per word): a few make a Chinese post.
        if share >= (0.1 if regional == "zh" else 0.2):
            return regional
    with _lock:  # one identifier for all threads; it is not documented as thread-safe
        lang = str(_identifier().classify(text)[0])
    return "id" if lang == "ms" else lang
