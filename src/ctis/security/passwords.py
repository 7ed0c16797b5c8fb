"""Password hashing with argon2id.

Parameters follow OWASP ASVS level 2 (t=3, m=64 MiB, p=4).  A stored hash made
with older parameters is replaced at the next successful sign-in.  Unknown
accounts are checked against a dummy hash so that "no such user" and "wrong
password" take the same time.
"""

from __future__ import annotations

import os
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12


@cache
def hasher() -> PasswordHasher:
    # CTIS_ARGON2_MEMORY_KIB lowers the cost for the test suite only; production keeps 64 MiB.
    memory = int(os.environ.get("CTIS_ARGON2_MEMORY_KIB", "65536"))
    return PasswordHasher(time_cost=3, memory_cost=memory, parallelism=4)


@cache
def _dummy_hash() -> str:
    return hasher().hash("not-a-real-password-but-the-same-cost")


def hash_password(password: str) -> str:
    return hasher().hash(password)


def check_strength(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if password.strip() != password:
        return "no spaces at the start or end"
    return None


def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash); the same work is done whether or not the account exists."""
    target = stored or _dummy_hash()
    try:
        hasher().verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    if stored is None:
        return False, False
    return True, hasher().check_needs_rehash(stored)
