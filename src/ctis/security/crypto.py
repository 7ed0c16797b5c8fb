"""Encryption of identifying fields at rest.

Each value is sealed with AES-256-GCM under a random 96-bit nonce.  The
associated data binds the ciphertext to its place — table, column, row id and
key id — so a ciphertext copied into another row or column fails to open
instead of silently showing one person's name on another's record.

Stored layout: ``b"\\x01" | len(key_id) | key_id | nonce(12) | ciphertext+tag``.

Keys live outside the database and outside the repository: a key ring is read
from ``CTIS_FIELD_KEYS`` (JSON) or from a key file (``CTIS_KEY_FILE``, default
``$CTIS_DATA_DIR/keys.json``, mode 0600).  ``ctis init`` creates the key file
for a new database; for an existing one a missing key file is an error
(:class:`KeyRingMissing`), never a new ring, because values sealed with the old
keys could then never be opened again and new ones would be sealed with keys
nobody has backed up.  A key ring has one active key, used to seal, and older
keys kept to open values sealed before a rotation (``ctis keys rotate``).

The ring also holds the audit key: the HMAC key of the audit log's hash chain
(:mod:`ctis.security.audit`), so that write access to the database alone is not
enough to re-chain the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = 1
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A value could not be opened: wrong place, wrong key or tampered bytes."""


class KeyRingMissing(RuntimeError):
    """The database exists but its key ring does not: restore the key file, do not make a new one."""


_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


def normalise_words(text: str) -> list[str]:
    """Words of a name as search compares them: NFC, case-folded, zero-width marks removed."""
    clean = _ZERO_WIDTH.sub("", unicodedata.normalize("NFC", text)).casefold()
    return [w for w in re.split(r"[\s,.;:/\-]+", clean) if w]


def _aad(table: str, column: str, row_id: int, key_id: str) -> bytes:
    return f"ctis|{table}|{column}|{row_id}|{key_id}".encode()


@dataclass
class KeyRing:
    active: str
    keys: dict[str, bytes] = field(repr=False)
    #: HMAC key of the blind index that lets lists search encrypted names by word.
    index_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    #: HMAC key of the audit chain.  A ring written before the chain was keyed has none; it then
    #: gets one derived from its index key (:func:`_derived_audit_key`), the same on every load, so
    #: the ring need not be rewritten (it may come from CTIS_FIELD_KEYS) and the chain keeps verifying.
    audit_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @classmethod
    def generate(cls) -> KeyRing:
        key_id = f"k{secrets.token_hex(4)}"
        return cls(active=key_id, keys={key_id: AESGCM.generate_key(bit_length=256)})

    def rotated(self) -> KeyRing:
        """A copy with a new active key; old keys are kept to open older values."""
        new = KeyRing.generate()
        return KeyRing(
            active=new.active,
            keys={**self.keys, **new.keys},
            index_key=self.index_key,
            audit_key=self.audit_key,
        )

    def to_json(self) -> str:
        keys = {k: base64.b64encode(v).decode() for k, v in self.keys.items()}
        index = base64.b64encode(self.index_key).decode()
        audit_key = base64.b64encode(self.audit_key).decode()
        return json.dumps(
            {"active": self.active, "keys": keys, "index_key": index, "audit_key": audit_key}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        try:
            data = json.loads(text)
            keys = {k: base64.b64decode(v) for k, v in data["keys"].items()}
            active = data["active"]
            index_key = base64.b64decode(data["index_key"])
            stored_audit = data.get("audit_key")
            audit_key = base64.b64decode(stored_audit) if stored_audit else _derived_audit_key(index_key)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed key ring: {exc}") from None
        if active not in keys or any(len(k) != 32 for k in [*keys.values(), index_key, audit_key]):
            raise ValueError("malformed key ring: the active key is missing or a key is not 256 bits")
        return cls(active=active, keys=keys, index_key=index_key, audit_key=audit_key)

    # -- audit chain -----------------------------------------------------
    def audit_mac(self, message: bytes) -> str:
        """HMAC-SHA-256 of one canonical audit entry under the audit key (hex)."""
        return hmac.new(self.audit_key, message, hashlib.sha256).hexdigest()

    # -- blind index -----------------------------------------------------
    def index_tokens(self, *texts: str | None) -> str | None:
        """Keyed hashes of the words of ``texts``, space-separated, for exact-word search."""
        words = sorted({w for t in texts if t for w in normalise_words(t)})
        if not words:
            return None
        return " ".join(self.index_token(w) for w in words)

    def index_token(self, word: str) -> str:
        return hmac.new(self.index_key, word.encode(), hashlib.sha256).hexdigest()[:20]

    # -- sealing ---------------------------------------------------------
    def seal(self, plaintext: str, table: str, column: str, row_id: int) -> bytes:
        key_id = self.active
        nonce = os.urandom(NONCE_BYTES)
        body = AESGCM(self.keys[key_id]).encrypt(
            nonce, plaintext.encode(), _aad(table, column, row_id, key_id)
        )
        kid = key_id.encode()
        return bytes([FORMAT, len(kid)]) + kid + nonce + body

    def key_id_of(self, blob: bytes) -> str:
        if len(blob) < 2 or blob[0] != FORMAT:
            raise DecryptionError("not a CTIS sealed value")
        return blob[2 : 2 + blob[1]].decode()

    def open(self, blob: bytes, table: str, column: str, row_id: int) -> str:
        key_id = self.key_id_of(blob)
        key = self.keys.get(key_id)
        if key is None:
            raise DecryptionError(f"key {key_id!r} is not in the key ring")
        start = 2 + blob[1]
        nonce, body = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
        try:
            return AESGCM(key).decrypt(nonce, body, _aad(table, column, row_id, key_id)).decode()
        except Exception:
            raise DecryptionError(f"cannot open {table}.{column} of row {row_id}: moved or altered") from None


def _derived_audit_key(index_key: bytes) -> bytes:
    """The audit key of a ring written before rings held one: secret (it needs the index key)
    and stable, so every process that loads the old ring chains with the same key."""
    return hmac.new(index_key, b"ctis audit chain key v1", hashlib.sha256).digest()


def key_file_path() -> Path:
    from ctis.config import get_settings

    explicit = os.environ.get("CTIS_KEY_FILE")
    return Path(explicit) if explicit else get_settings().data_dir / "keys.json"


def write_key_file(ring: KeyRing, path: Path) -> None:
    """Write the ring atomically, mode 0600, in a directory made 0700 when CTIS creates it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(ring.to_json())
    os.chmod(tmp, 0o600)  # a .tmp left over by an older run keeps its mode through O_TRUNC
    os.replace(tmp, path)


def key_ring_available() -> bool:
    """Whether :func:`load_key_ring` has a ring to read (it may still be malformed)."""
    return bool(os.environ.get("CTIS_FIELD_KEYS")) or key_file_path().exists()


def missing_message(path: Path | None = None) -> str:
    """What to tell an operator whose database has lost its key file."""
    path = path or key_file_path()
    return (
        f"the key file {path} is missing, but the database already exists. CTIS will not make a new "
        "key ring: names sealed with the old keys could never be opened again and the audit chain "
        "would no longer verify. Restore keys.json from your key backup to that path (mode 0600), "
        "or point CTIS_KEY_FILE at it, or set CTIS_FIELD_KEYS to the ring's JSON."
    )


def load_key_ring(create: bool = False) -> KeyRing:
    """The key ring from ``CTIS_FIELD_KEYS`` or the key file.

    Only ``create=True`` (``ctis init`` on a new database) writes a new key file when there is
    none; anything else raises :class:`KeyRingMissing`, so a lost key file is never silently
    replaced by a ring that opens nothing.
    """
    inline = os.environ.get("CTIS_FIELD_KEYS")
    if inline:
        return KeyRing.from_json(inline)
    path = key_file_path()
    if path.exists():
        return KeyRing.from_json(path.read_text(encoding="utf-8"))
    if not create:
        raise KeyRingMissing(missing_message(path))
    ring = KeyRing.generate()
    write_key_file(ring, path)
    return ring
