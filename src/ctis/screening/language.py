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
import unicodedata
from functools import cache

import numpy as np
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


#: Script of each code point, numbered as in :data:`_SCRIPT_PATTERNS` from 1 (0: none of them);
#: read off the patterns themselves, so the two cannot disagree.
_SCRIPT_OF = np.zeros(0x110000, dtype=np.uint8)
_EVERY_CHARACTER = "".join(map(chr, range(0x110000)))
for _number, (_name, _pattern) in enumerate(_SCRIPT_PATTERNS, 1):
    _SCRIPT_OF[[m.start() for m in _pattern.finditer(_EVERY_CHARACTER)]] = _number
del _EVERY_CHARACTER
#: A byte's state in py3langid's automaton depends only on the last bytes read: the automaton is an
#: Aho-Corasick one, whose state is the longest suffix that is a prefix of a feature, and no state is
#: more than six bytes from the start (a test walks the automaton and holds this).
_LANGID_WINDOW = 6


class _FastIdentifier:
    """py3langid's ``classify``, with its byte automaton run over all bytes of a text at once.

    py3langid walks its automaton one byte at a time in Python (about 0.3 ms
    for a post).  Its state after a byte is the state reached by walking just
    the last :data:`_LANGID_WINDOW` bytes from the start, so numpy does those
    few steps for every position together.  The features are then counted in order of first
    appearance and scored with py3langid's own expression, so the result is
    py3langid's, bit for bit (a test compares them).
    """

    def __init__(self, ident: langid.LanguageIdentifier):
        self.ident = ident
        self.nextmove = np.asarray(ident.tk_nextmove, dtype=np.int64)
        self.rowbase = np.asarray(ident.tk_row, dtype=np.int64) << 8
        self.output = np.asarray(ident.tk_output, dtype=np.int64)

    def classify(self, text: str) -> str:
        ident = self.ident
        if text.isupper():
            text = text.lower()
        data = np.frombuffer(
            unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass"), dtype=np.uint8
        ).astype(np.int64)
        n = len(data)
        state = np.zeros(n, dtype=np.int64)
        for back in range(_LANGID_WINDOW - 1, -1, -1):  # the byte `back` places before each position
            if back >= n:
                continue
            step = self.nextmove[self.rowbase[state[back:]] + data[: n - back]]
            state[back:] = step
        features = self.output[state]
        features = features[features >= 0]
        if len(features):
            kinds, first, counts = np.unique(features, return_index=True, return_counts=True)
            order = np.argsort(first, kind="stable")
            idx = kinds[order].astype(np.intp)
            scores = np.log1p(counts[order].astype(np.float32)) @ ident.nb_ptc[idx] + ident.nb_pc
        else:
            scores = np.full(len(ident.nb_classes), langid.RAW_FLOOR, dtype=np.float32)
        for i, j in ident._alias_pairs:
            scores[i] = max(scores[i], scores[j])
            scores[j] = langid.RAW_FLOOR
        return str(ident.nb_classes[int(scores.argmax())])


@cache
def _fast_identifier() -> _FastIdentifier:
    return _FastIdentifier(_identifier())


def detect_many(texts: list[str]) -> list[str]:
    """:func:`detect` for a batch: the scripts counted for all texts in one pass, and py3langid's
    automaton run with numpy (:class:`_FastIdentifier`).  The same answers as :func:`detect`."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    code = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    text_of = np.repeat(np.arange(len(texts)), lengths)
    width = len(_SCRIPT_PATTERNS) + 1
    counts = np.bincount(text_of * width + _SCRIPT_OF[code], minlength=len(texts) * width)
    counts = counts.reshape(len(texts), width)[:, 1:].tolist()
    names = [name for name, _ in _SCRIPT_PATTERNS]
    fast = _fast_identifier()
    out = []
    for text, row in zip(texts, counts, strict=True):
        total = sum(row)
        if total == 0:
            out.append("und")
            continue
        regional, best = None, 0
        for name, n in zip(names[1:], row[1:], strict=True):
            if n > best:
                regional, best = name, n
        if regional is not None and best / total >= (0.1 if regional == "zh" else 0.2):
            out.append(regional)
            continue
        lang = fast.classify(text)
        out.append("id" if lang == "ms" else lang)
    return out


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
