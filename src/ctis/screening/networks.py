"""Networks: posts written by the same recruiters, found by their text and by their contact points.

Recruiters re-post one text with a new phone number, a new handle, another
salary or another hub city.  So before comparing texts, every such slot is
replaced by a slot token (:func:`mask`); what remains is the recruiter's own
writing.  Texts are cut into character 5-grams (no word segmentation needed
for Khmer, Thai or Chinese), summarised by MinHash signatures, and candidate
near-duplicates come from MinHash LSH; a candidate joins only when the
estimated Jaccard similarity of the two texts is at least
:data:`JOIN_JACCARD`, so two posts that share one stock phrase ("no
experience needed") stay apart.  Posts that share a phone, a handle, an
e-mail address or a URL are joined outright: a contact point is an author's
signature.

Joins go through a union-find, so adding posts is incremental: a new post is
compared with the index and joins (or merges) the networks it touches; no
network is re-clustered.  Signatures are 512 bytes per post, stored with the
post, so the index is rebuilt from the database in memory at little cost.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np
from datasketch import MinHash, MinHashLSH

from ctis.screening.entities import Entities, extract, normalise_digits

NUM_PERM = 128
SHINGLE = 5
#: LSH is tuned to find pairs from this similarity up; each candidate is then checked exactly.
LSH_THRESHOLD = 0.5
#: Members of one network compared without a match, after which the rest of it is skipped: a large
#: network of look-alike posts would otherwise cost a comparison per member for every new post.
MAX_MISSES = 3
#: Estimated Jaccard similarity of masked shingles from which two posts are one network's.  On the
#: evaluation corpus, posts of one network mostly score 0.6-1.0 and posts of two different networks
#: up to 0.6 (they share stock sentences); 0.65 kept every text join right there, while still
#: finding 96 % of same-network pairs by text alone (benchmarks/screening_eval.py).
JOIN_JACCARD = 0.65
SCHEME = "affine32"
#: Slot tokens: one character each, so that a slot is one short run in a shingle.
SLOTS = {"phone": "\u2460", "handle": "\u2461", "email": "\u2462", "url": "\u2463", "money": "\u2464",
         "place": "\u2465", "age": "\u2466", "number": "\u2467"}  # fmt: skip
SLOT_NAMES = {v: k for k, v in SLOTS.items()}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SPACE = re.compile(r"\s+")
#: Emoji, pictographs, dingbats, arrows and box drawing: decoration that changes from post to post.
_DECORATION = re.compile(
    "[\u2190-\u21ff\u2300-\u23ff\u2500-\u27bf\u2900-\u297f\u2b00-\u2bff\u3297\u3299"
    "\ufe0f\u200d\U0001f000-\U0001faff]"
)
_PROTOTYPE = MinHash(num_perm=NUM_PERM, seed=1)


def _crc32(data: bytes) -> int:
    return zlib.crc32(data)


def mask(text: str, entities: Entities | None = None, language: str | None = None) -> str:
    """The text with contact points, money, ages, places and numbers replaced by slot tokens.

    Emoji and other symbols are dropped and letters lower-cased, since
    recruiters vary decoration from post to post while the wording stays.
    """
    norm = normalise_digits(text)
    ents = entities if entities is not None else extract(text, language)
    pieces: list[str] = []
    at = 0
    for span in ents.spans:
        if span.kind == "mention" or span.start < at:
            continue
        pieces.append(norm[at : span.start])
        pieces.append(f" {SLOTS[span.kind]} ")
        at = span.end
    pieces.append(norm[at:])
    out = _NUMBER.sub(SLOTS["number"], "".join(pieces))
    out = _DECORATION.sub("", out)
    return _SPACE.sub(" ", out).strip().lower()


def shingles(masked: str) -> set[bytes]:
    """Character 5-grams of the masked text (the whole text when shorter)."""
    if len(masked) <= SHINGLE:
        return {masked.encode()} if masked else set()
    return {masked[i : i + SHINGLE].encode() for i in range(len(masked) - SHINGLE + 1)}


def signature(masked: str) -> MinHash:
    sig = MinHash(num_perm=NUM_PERM, hashfunc=_crc32, permutations=_PROTOTYPE.permutations, scheme=SCHEME)
    sig.update_batch(shingles(masked))
    return sig


def _crc_table() -> np.ndarray:
    """The byte table of zlib's CRC-32 (reflected polynomial 0xEDB88320)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> np.uint32(1)) ^ np.uint32(0xEDB88320), table >> np.uint32(1))
    return table.astype(np.uint32)


_CRC_TABLE = _crc_table()
_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
#: Shingles whose permuted hashes are held in memory at once (x 128 x 4 bytes).
_CHUNK = 32_768


def shingle_hashes(masked_texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The CRC-32 of every shingle of every text, computed for the batch at once, and where each
    text's hashes start (``starts[i]:starts[i + 1]``).

    The same values as ``zlib.crc32`` of each shingle's UTF-8 bytes (a test holds it), but the
    CRC runs byte column by byte column over all shingles of one byte length together, instead of
    one Python call per shingle.  Repeated shingles are kept: a minimum does not mind them.
    """
    lengths = np.fromiter((len(t) for t in masked_texts), dtype=np.int64, count=len(masked_texts))
    char_start = np.concatenate(([0], np.cumsum(lengths)))
    joined = "".join(masked_texts)
    code = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    width = 1 + (code >= 0x80) + (code >= 0x800) + (code >= 0x10000)
    byte_at = np.concatenate(([0], np.cumsum(width)))
    data = np.frombuffer(joined.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    # a text of SHINGLE characters or fewer is one shingle, the whole text; an empty text none
    per_text = np.where(lengths > SHINGLE, lengths - SHINGLE + 1, np.minimum(lengths, 1))
    starts = np.concatenate(([0], np.cumsum(per_text)))
    text_of = np.repeat(np.arange(len(masked_texts)), per_text)
    first_char = char_start[text_of] + (np.arange(len(text_of)) - starts[text_of])
    last_char = first_char + np.minimum(lengths[text_of], SHINGLE)
    begin, size = byte_at[first_char], byte_at[last_char] - byte_at[first_char]
    out = np.empty(len(text_of), dtype=np.uint32)
    for n in np.unique(size).tolist():
        which = np.flatnonzero(size == n)
        reg = np.full(len(which), 0xFFFFFFFF, dtype=np.uint32)
        at = begin[which]
        for k in range(n):
            reg = _CRC_TABLE[(reg ^ data[at + k]) & np.uint32(0xFF)] ^ (reg >> np.uint32(8))
        out[which] = reg ^ np.uint32(0xFFFFFFFF)
    return out, starts


def signatures(masked_texts: list[str]) -> list[MinHash]:
    """:func:`signature` of each text, for a whole batch at once (the same values, a test holds it)."""
    return [
        MinHash(hashvalues=row, permutations=_PROTOTYPE.permutations, scheme=SCHEME, hashfunc=_crc32)
        for row in signature_values(masked_texts)
    ]


def signature_values(masked_texts: list[str]) -> np.ndarray:
    """The values of :func:`signatures`, one row of 128 uint32 per text.

    The shingles are hashed together (:func:`shingle_hashes`), mixed and permuted as datasketch's
    ``affine32`` scheme does (the MurmurHash3 finaliser, then ``a * h + b`` in 32 bits), and each
    text's minimum per permutation is taken with one ``np.minimum.reduceat``.
    """
    hashes, starts = shingle_hashes(masked_texts)
    s1, m1, s2, m2, s3 = _FMIX
    hv = hashes ^ (hashes >> s1)
    hv = hv * m1
    hv = hv ^ (hv >> s2)
    hv = hv * m2
    hv = hv ^ (hv >> s3)
    a, b = _PROTOTYPE.permutations
    a, b = a.astype(np.uint32), b.astype(np.uint32)
    values = np.full((len(masked_texts), NUM_PERM), 0xFFFFFFFF, dtype=np.uint32)
    counts = np.diff(starts)
    text = 0
    while text < len(masked_texts):  # texts in groups of about _CHUNK shingles
        end = text + 1
        while end < len(masked_texts) and starts[end + 1] - starts[text] <= _CHUNK:
            end += 1
        rows = [i for i in range(text, end) if counts[i]]
        if rows:
            lo, hi = starts[text], starts[end]
            phv = np.multiply.outer(a, hv[lo:hi])  # permutations x shingles: rows are contiguous
            phv += b[:, None]
            values[rows] = np.minimum.reduceat(phv, starts[rows] - lo, axis=1).T
        text = end
    return values


def values_of(sig: MinHash | np.ndarray) -> np.ndarray:
    """A signature's 128 values as a uint32 array (from a MinHash or from an array of them)."""
    values = sig.hashvalues if isinstance(sig, MinHash) else sig
    return np.asarray(values, dtype=np.uint32)


def to_bytes(sig: MinHash | np.ndarray) -> bytes:
    return values_of(sig).astype("<u4", copy=False).tobytes()


def from_bytes(data: bytes) -> MinHash:
    return MinHash(hashvalues=values_from_bytes(data), permutations=_PROTOTYPE.permutations, scheme=SCHEME,
                   hashfunc=_crc32)  # fmt: skip


def values_from_bytes(data: bytes) -> np.ndarray:
    """The values of one stored signature (512 bytes), without making a :class:`MinHash` of them."""
    values = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    if len(values) != NUM_PERM:
        raise ValueError(f"a signature has {NUM_PERM} values, not {len(values)}")
    return values


def network_id(first_member: str) -> str:
    """A network's id: named after the post that started it, so the id is stable as it grows."""
    return "NW-" + hashlib.sha256(first_member.encode()).hexdigest()[:10].upper()


@cache
def bands() -> tuple[int, int]:
    """Bands and rows per band of the LSH: datasketch's choice for :data:`LSH_THRESHOLD` (25 x 5)."""
    lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM)
    return lsh.b, lsh.r


@dataclass
class Join:
    """Why a post joined: the post it was linked to, and the text similarity or the shared contact."""

    post: str
    other: str
    how: str  # text, contact
    evidence: str


class NetworkIndex:
    """MinHash LSH plus exact contact links, joined by a union-find with stable network ids.

    The LSH is datasketch's ``MinHashLSH`` (same bands and rows), kept here in
    plain structures so that it costs little per post and stays fast as it
    grows to millions: a post is a number (the order in which it was first
    indexed), its signature a row of one uint32 matrix, each band a dict from
    the band's bytes to the posts holding them, and every post knows its
    network's root directly (a network that joins a bigger one has its members
    re-pointed, so no post is re-pointed more than log2(n) times).  A post finds
    the same candidates as in datasketch's index, compares them in the same
    order and makes the same joins, so networks and their ids are the same (a
    test compares the two on generated posts).
    """

    def __init__(self) -> None:
        self.ids: list[str] = []  # post number -> post id
        self.number: dict[str, int] = {}  # post id -> post number (order of first indexing)
        self._values = np.zeros((1024, NUM_PERM), dtype=np.uint32)
        self._root = np.zeros(1024, dtype=np.int64)
        self._bands: list[dict[bytes, int | array[int]]] = [{} for _ in range(bands()[0])]
        self.members_of: dict[int, list[int]] = {}  # root -> every post of its component
        self.label: dict[int, str] = {}  # root -> network id
        self.contact_owner: dict[str, int] = {}
        self.merged: dict[str, str] = {}  # absorbed network id -> surviving id
        self.joins: list[Join] = []
        self.first_of: dict[str, int] = {}  # stored network id -> its first restored post

    def __len__(self) -> int:
        """Posts indexed."""
        return len(self.ids)

    def __contains__(self, post: object) -> bool:
        return post in self.number

    def signature_of(self, post: str) -> np.ndarray:
        return self._values[self.number[post]].copy()

    def find(self, post: str) -> str:
        """The post that names the root of ``post``'s network (itself while it stands alone)."""
        return self.ids[int(self._root[self.number[post]])]

    def _band_keys(self, values: np.ndarray) -> list[bytes]:
        b, r = bands()
        return np.ascontiguousarray(values[: b * r]).view(np.dtype((np.void, 4 * r))).tolist()

    def _new(self, post: str, values: np.ndarray, keys: list[bytes] | None = None) -> int:
        """Number a post seen for the first time and put it in the bands."""
        n = len(self.ids)
        if n == len(self._root):
            self._values = np.concatenate([self._values, np.zeros_like(self._values)])
            self._root = np.concatenate([self._root, np.zeros_like(self._root)])
        self.ids.append(post)
        self.number[post] = n
        self._root[n] = n
        self.members_of[n] = [n]
        self._values[n] = values
        self._put(n, keys if keys is not None else self._band_keys(values))
        return n

    def _put(self, n: int, keys: list[bytes]) -> None:
        for band, key in zip(self._bands, keys, strict=True):
            held = band.setdefault(key, n)  # most band values are one post's: a number, no array
            if held is n:
                continue
            if isinstance(held, int):
                band[key] = array("q", (held, n))
            else:
                held.append(n)

    def _take_out(self, n: int) -> None:
        for band, key in zip(self._bands, self._band_keys(self._values[n]), strict=True):
            held = band[key]
            if isinstance(held, int):
                del band[key]
            else:
                held.remove(n)
                if len(held) == 1:
                    band[key] = held[0]

    def _set_values(self, n: int, values: np.ndarray, keys: list[bytes]) -> None:
        """A changed text: the post leaves the bands of its old signature and enters the new ones."""
        self._take_out(n)
        self._values[n] = values
        self._put(n, keys)

    def _candidates(self, keys: list[bytes]) -> np.ndarray:
        """Posts that share at least one band with ``keys`` (datasketch's query), repeats included.

        A band's posts are an ``array('q')``: their bytes are joined and read by
        numpy at once, where a million-post index gives some posts thousands.
        """
        single = array("q")
        held_by_band: list[array[int]] = [single]
        for band, key in zip(self._bands, keys, strict=True):
            held = band.get(key)
            if held is None:
                continue
            if isinstance(held, int):
                single.append(held)
            else:
                held_by_band.append(held)
        return np.frombuffer(b"".join(held_by_band), dtype=np.int64)

    def _union(self, a: int, b: int) -> None:
        ra, rb = int(self._root[a]), int(self._root[b])
        if ra == rb:
            return
        size_a, size_b = len(self.members_of[ra]), len(self.members_of[rb])
        if size_a < size_b or (size_a == size_b and self.ids[ra] > self.ids[rb]):
            ra, rb = rb, ra
        la, lb = self.label.pop(ra, None), self.label.pop(rb, None)
        moved = self.members_of.pop(rb)
        self._root[moved] = ra
        self.members_of[ra].extend(moved)
        # the bigger network keeps its id; the other's id is recorded as merged into it
        keep = la or lb or network_id(self.ids[ra])
        if la and lb and la != lb:
            self.merged[lb] = la
        self.label[ra] = keep

    def restore(
        self, post: str, sig: MinHash | np.ndarray, contacts: Iterable[str], network: str | None
    ) -> None:
        """Put back a stored post with its stored network, without comparing it again."""
        values = values_of(sig)
        n = self.number.get(post)
        if n is None:
            n = self._new(post, values)
        else:
            self._set_values(n, values, self._band_keys(values))
        for contact in contacts:
            self.contact_owner.setdefault(contact, n)
        if network is None:
            return
        first = self.first_of.setdefault(network, n)
        if first != n:
            self._union(first, n)
        self.label[int(self._root[n])] = network

    def add(self, post: str, sig: MinHash | np.ndarray, contacts: Iterable[str]) -> str | None:
        """Index a new (or changed) post, join it to what it matches, and return its network id.

        The candidates from the bands are compared in indexing order; a network
        is given up after :data:`MAX_MISSES` of its members unlike the post, and
        one the post has joined is not compared again.
        """
        values = values_of(sig)
        n = self.number.get(post)
        if n is None or not np.array_equal(self._values[n], values):  # else the same text again: linked
            keys = self._band_keys(values)
            found = self._candidates(keys)
            if len(found):
                n = self._text_joins(post, n, values, found)
            if n is None:
                n = self._new(post, values, keys)
            elif not np.array_equal(self._values[n], values):
                self._set_values(n, values, keys)
        for contact in contacts:
            owner = self.contact_owner.setdefault(contact, n)
            if owner != n:
                self._link(post, n, owner, "contact", contact, values)
        return self.network_of(post)

    def _text_joins(self, post: str, n: int | None, values: np.ndarray, found: np.ndarray) -> int | None:
        """Compare the candidates and join the post to those alike; its number (it has one once joined).

        As the candidates would be walked one by one in indexing order — a
        network given up after :data:`MAX_MISSES` of its members unlike the
        post, one that the post has joined not compared again — but for all at
        once: a join merges the post's network with the candidate's and no
        other, so the networks' candidates do not affect each other.  Each
        network's first :data:`MAX_MISSES` candidates are compared, and the
        post joins every network whose first match is among them, in the order
        of those matches.
        """
        roots = self._root[found]
        grouped = np.sort((roots << 32) | found)  # by network, then in indexing order (< 2**32 posts)
        if len(grouped) > 1:  # without repeats (a post in several of the bands)
            grouped = grouped[np.r_[True, grouped[1:] != grouped[:-1]]]
        candidates, roots = grouped & 0xFFFFFFFF, grouped >> 32
        if n is not None:  # a changed text: neither the post nor its own network is compared again
            keep = (candidates != n) & (roots != self._root[n])
            candidates, roots = candidates[keep], roots[keep]
        if not len(candidates):
            return n
        first = np.empty(len(roots), dtype=bool)
        first[0] = True
        np.not_equal(roots[1:], roots[:-1], out=first[1:])
        position = np.arange(len(roots))
        rank = position - np.maximum.accumulate(np.where(first, position, 0))
        compared = rank < MAX_MISSES
        candidates, roots = candidates[compared], roots[compared]
        same = np.count_nonzero(self._values[candidates] == values, axis=1)
        similarity = same / np.float64(NUM_PERM)  # as MinHash.jaccard computes it
        hit = np.flatnonzero(similarity >= JOIN_JACCARD)
        if not len(hit):
            return n
        hit_roots = roots[hit]
        firsts = hit[np.r_[True, hit_roots[1:] != hit_roots[:-1]]]  # each network's first match
        firsts = firsts[np.argsort(candidates[firsts])]  # joined in indexing order
        for other, sim in zip(candidates[firsts].tolist(), similarity[firsts].tolist(), strict=True):
            n = self._link(post, n, other, "text", f"{sim:.2f}", values)
        return n

    def _link(self, post: str, n: int | None, other: int, how: str, evidence: str, values: np.ndarray) -> int:
        if n is None:
            n = self._new(post, values)
        if self._root[n] != self._root[other]:
            self.joins.append(Join(post, self.ids[other], how, evidence))
            self._union(n, other)
        return n

    def network_of(self, post: str) -> str | None:
        """The post's network id, or None while it stands alone."""
        n = self.number.get(post)
        if n is None:
            return None
        root = int(self._root[n])
        if len(self.members_of[root]) < 2:
            return None
        return self.label.setdefault(root, network_id(self.ids[root]))

    def members(self, post: str) -> list[str]:
        """Every post in the same network as ``post`` (itself included)."""
        n = self.number.get(post)
        if n is None:
            return []
        return [self.ids[m] for m in self.members_of[int(self._root[n])]]

    def networks(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for root, members in self.members_of.items():
            if len(members) >= 2:
                out[self.label.setdefault(root, network_id(self.ids[root]))] = [self.ids[m] for m in members]
        return out


def template(masked_texts: list[str], share: float = 0.6) -> str:
    """The text a network's posts share, with the slots and varying words marked.

    Words of the most typical member are kept when at least ``share`` of the
    members use them; a run of others becomes ``…``, and slot tokens become
    ``{phone}``, ``{handle}``, ``{money}``, ``{place}``….
    """
    if not masked_texts:
        return ""
    token_sets = [set(t.split()) for t in masked_texts]
    counts: Counter[str] = Counter(tok for s in token_sets for tok in s)
    need = max(1, int(share * len(masked_texts) + 0.5))
    base = max(masked_texts, key=lambda t: sum(counts[tok] for tok in set(t.split())) / (1 + len(t.split())))
    out: list[str] = []
    for tok in base.split():
        if tok in SLOT_NAMES:
            word = "{" + SLOT_NAMES[tok] + "}"
        elif counts[tok] >= need:
            word = tok
        else:
            word = "…"
        if not (word == "…" and out and out[-1] == "…"):
            out.append(word)
    return " ".join(out)
