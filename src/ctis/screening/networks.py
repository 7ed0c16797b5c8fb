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
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

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
    """:func:`signature` of each text, for a whole batch at once (the same values, a test holds it).

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
    return [
        MinHash(hashvalues=row, permutations=_PROTOTYPE.permutations, scheme=SCHEME, hashfunc=_crc32)
        for row in values
    ]


def to_bytes(sig: MinHash) -> bytes:
    return np.asarray(sig.hashvalues, dtype="<u4").tobytes()


def from_bytes(data: bytes) -> MinHash:
    values = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    if len(values) != NUM_PERM:
        raise ValueError(f"a signature has {NUM_PERM} values, not {len(values)}")
    return MinHash(hashvalues=values, permutations=_PROTOTYPE.permutations, scheme=SCHEME, hashfunc=_crc32)


def network_id(first_member: str) -> str:
    """A network's id: named after the post that started it, so the id is stable as it grows."""
    return "NW-" + hashlib.sha256(first_member.encode()).hexdigest()[:10].upper()


@dataclass
class Join:
    """Why a post joined: the post it was linked to, and the text similarity or the shared contact."""

    post: str
    other: str
    how: str  # text, contact
    evidence: str


@dataclass
class NetworkIndex:
    """MinHash LSH plus exact contact links, joined by a union-find with stable network ids."""

    lsh: MinHashLSH = field(default_factory=lambda: MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM))
    signatures: dict[str, MinHash] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)
    label: dict[str, str] = field(default_factory=dict)  # root -> network id
    contact_owner: dict[str, str] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)  # absorbed network id -> surviving id
    joins: list[Join] = field(default_factory=list)
    first_of: dict[str, str] = field(default_factory=dict)  # stored network id -> its first restored post
    members_of: dict[str, list[str]] = field(default_factory=dict)  # root -> every post of its component
    seq: dict[str, int] = field(default_factory=dict)  # post -> order of its first indexing

    def find(self, post: str) -> str:
        root = post
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[post] != root:  # path compression
            self.parent[post], post = root, self.parent[post]
        return root

    def _union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb] or (self.size[ra] == self.size[rb] and ra > rb):
            ra, rb = rb, ra
        la, lb = self.label.pop(ra, None), self.label.pop(rb, None)
        self.parent[rb] = ra
        self.size[ra] += self.size.pop(rb)
        self.members_of[ra].extend(self.members_of.pop(rb))
        # the bigger network keeps its id; the other's id is recorded as merged into it
        keep = la or lb or network_id(ra)
        if la and lb and la != lb:
            self.merged[lb] = la
        self.label[ra] = keep

    def _register(self, post: str, sig: MinHash) -> None:
        if post not in self.parent:
            self.parent[post] = post
            self.size[post] = 1
            self.members_of[post] = [post]
            self.seq[post] = len(self.seq)
        elif post in self.signatures:
            self.lsh.remove(post)
        self.signatures[post] = sig
        self.lsh.insert(post, sig)

    def restore(self, post: str, sig: MinHash, contacts: Iterable[str], network: str | None) -> None:
        """Put back a stored post with its stored network, without comparing it again."""
        self._register(post, sig)
        for contact in contacts:
            self.contact_owner.setdefault(contact, post)
        if network is None:
            return
        first = self.first_of.setdefault(network, post)
        if first != post:
            self._union(first, post)
        self.label[self.find(post)] = network

    def add(self, post: str, sig: MinHash, contacts: Iterable[str]) -> str | None:
        """Index a new (or changed) post, join it to what it matches, and return its network id."""
        if post in self.signatures and np.array_equal(self.signatures[post].hashvalues, sig.hashvalues):
            pass  # the same text again: its links are already made
        else:
            rejected: Counter[str] = Counter()
            # LSH returns a set (its order varies with Python's string hashing between runs); in
            # indexing order, the joins, and so the networks' ids, are the same on every run.
            for other in sorted(self.lsh.query(sig), key=self.seq.__getitem__):
                if other == post:
                    continue
                root = self.find(other)
                if (post in self.parent and root == self.find(post)) or rejected[root] >= MAX_MISSES:
                    continue  # one network already, or one that has proved unlike this post
                similarity = sig.jaccard(self.signatures[other])
                if similarity >= JOIN_JACCARD:
                    self._link(post, other, "text", f"{similarity:.2f}", sig)
                else:
                    rejected[root] += 1
            self._register(post, sig)
        for contact in contacts:
            owner = self.contact_owner.setdefault(contact, post)
            if owner != post:
                self._link(post, owner, "contact", contact, sig)
        return self.network_of(post)

    def _link(self, post: str, other: str, how: str, evidence: str, sig: MinHash) -> None:
        if post not in self.parent:
            self._register(post, sig)
        if self.find(post) != self.find(other):
            self.joins.append(Join(post, other, how, evidence))
            self._union(post, other)

    def network_of(self, post: str) -> str | None:
        """The post's network id, or None while it stands alone."""
        if post not in self.parent:
            return None
        root = self.find(post)
        if self.size[root] < 2:
            return None
        return self.label.setdefault(root, network_id(root))

    def members(self, post: str) -> list[str]:
        """Every post in the same network as ``post`` (itself included)."""
        return list(self.members_of[self.find(post)]) if post in self.parent else []

    def networks(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for root, members in self.members_of.items():
            if len(members) >= 2:
                out[self.label.setdefault(root, network_id(root))] = list(members)
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
