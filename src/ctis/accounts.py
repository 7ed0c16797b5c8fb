"""Accounts, server-side sessions and personal API tokens (services; no HTTP here).

Secrets handed to a browser or a script (session ids, API tokens) are random
and stored only as SHA-256 hashes, so a copy of the database cannot be used to
sign in.  A session ends at sign-out, after the idle timeout, when its account
is disabled and when the password changes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ctis.security import audit
from ctis.security.passwords import check_strength, hash_password, verify_password
from ctis.security.permissions import ROLES, Actor
from ctis.storage.models import ApiToken, User, WebSession, utcnow

TOKEN_PREFIX = "ctis_"  # noqa: S105 - a public marker, not a secret


class AccountError(ValueError):
    """A request about an account that cannot be honoured, with the reason."""


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def idle_timeout() -> timedelta:
    return timedelta(minutes=int(os.environ.get("CTIS_SESSION_IDLE_MINUTES", "30")))


def actor_of(user: User) -> Actor:
    return Actor(
        id=user.id, username=user.username, role=user.role, agency_id=user.agency_id, scope=user.scope
    )


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    agency_id: int | None = None,
    scope: str = "own",
    language: str = "en",
) -> User:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
    if scope not in {"own", "all"}:
        raise AccountError("scope is 'own' or 'all'")
    problem = check_strength(password)
    if problem:
        raise AccountError(f"password refused: {problem}")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"username {username!r} is taken")
    user = User(
        username=username, display_name=display_name or username, password_hash=hash_password(password),
        role=role, agency_id=agency_id, scope=scope, language=language,
    )  # fmt: skip
    session.add(user)
    session.flush()
    audit.record(session, "system", "user.create", "users", user.id, {"role": role})
    return user


#: The actor of a failed sign-in whose user name matches no account.
UNKNOWN_USER = "unknown user"


def authenticate(session: Session, username: str, password: str, address: str | None = None) -> User | None:
    """The account if the password is right and the account active; the sign-in is audited."""
    user = session.scalar(select(User).where(User.username == username))
    ok, rehash = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        # An unknown name is not stored: it is often a password typed into the wrong field.
        audit.record(session, user.username if user else UNKNOWN_USER, "sign_in.failed", "users",
                     user.id if user else None, {"address": address})  # fmt: skip
        return None
    if rehash:
        user.password_hash = hash_password(password)
    audit.record(session, user.username, "sign_in", "users", user.id, {"address": address})
    return user


def change_password(session: Session, user: User, new_password: str) -> None:
    problem = check_strength(new_password)
    if problem:
        raise AccountError(f"password refused: {problem}")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    end_all_sessions(session, user.id)
    # A changed password is often a suspected leak: tokens made with the old one stop too.
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=user.password_changed_at)
    )
    audit.record(session, user.username, "password.change", "users", user.id)


def set_active(session: Session, user: User, active: bool, actor: str) -> None:
    user.is_active = active
    if not active:
        end_all_sessions(session, user.id)
    audit.record(session, actor, "user.enable" if active else "user.disable", "users", user.id)


# -- sessions --------------------------------------------------------------
@dataclass(frozen=True)
class SessionInfo:
    user: User
    csrf_token: str


def start_session(session: Session, user: User, address: str | None) -> tuple[str, str]:
    """A new session id (for the cookie) and its CSRF token; a fresh id at every sign-in."""
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(WebSession(id_hash=_sha(secret), user_id=user.id, csrf_token=csrf, address=address))
    session.flush()
    return secret, csrf


#: When this process last wrote a session's last-seen or a token's last-used time.
_touched: dict[tuple[str, object], float] = {}
_touched_lock = threading.Lock()


def _first_to_touch(key: tuple[str, object], seconds: float) -> bool:
    """Whether this request is the one (in this process) to record that a session or token is in use.

    The write is needed only once in a while (idle timeout, "last used" shown to the owner), but
    every request of that second would see the old time and try it: concurrent writers queue on
    the database's write lock (SQLite has one) and stall the requests behind them.  One request
    per interval and process writes; the others read on.
    """
    now = time.monotonic()
    with _touched_lock:
        last = _touched.get(key)
        if last is not None and now - last < seconds:
            return False
        if len(_touched) > 10_000:  # sessions come and go; forget the oldest half
            for old in sorted(_touched, key=_touched.__getitem__)[:5_000]:
                del _touched[old]
        _touched[key] = now
        return True


def load_session(session: Session, secret: str | None, touch: bool = True) -> SessionInfo | None:
    if not secret:
        return None
    # One statement for the session and its account: this runs on every page view.
    found = session.execute(
        select(WebSession, User)
        .outerjoin(User, User.id == WebSession.user_id)
        .where(WebSession.id_hash == _sha(secret))
    ).first()
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if (
        user is None
        or not user.is_active
        or now - row.last_seen_at > idle_timeout()
        or row.created_at < user.password_changed_at
    ):
        session.delete(row)
        return None
    if (
        touch
        and now - row.last_seen_at > timedelta(seconds=30)
        and _first_to_touch(("session", row.id_hash), 30)
    ):
        row.last_seen_at = now
    return SessionInfo(user=user, csrf_token=row.csrf_token)


def end_session(session: Session, secret: str | None) -> None:
    if secret:
        session.execute(delete(WebSession).where(WebSession.id_hash == _sha(secret)))


def end_all_sessions(session: Session, user_id: int) -> None:
    session.execute(delete(WebSession).where(WebSession.user_id == user_id))


# -- API tokens --------------------------------------------------------------
def create_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token; the secret is returned once and never stored."""
    if not name.strip():
        raise AccountError("a token needs a name")
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(user_id=user.id, name=name.strip()[:100], prefix=prefix, token_hash=_sha(secret))
    session.add(token)
    session.flush()
    audit.record(session, user.username, "token.create", "api_tokens", token.id)
    return token, secret


def user_for_token(session: Session, secret: str) -> User | None:
    if not secret.startswith(TOKEN_PREFIX):
        return None
    # One statement for the token and its account: this runs on every API call.
    found = session.execute(
        select(ApiToken, User)
        .outerjoin(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == _sha(secret))
    ).first()
    if found is None:
        return None
    token, user = found
    if token.revoked_at is not None:
        return None
    if user is None or not user.is_active:
        return None
    now = utcnow()
    stale = token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1)
    if stale and _first_to_touch(("token", token.id), 60):
        token.last_used_at = now
    return user


def revoke_token(session: Session, user: User, token_id: int) -> bool:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    audit.record(session, user.username, "token.revoke", "api_tokens", token.id)
    return True
