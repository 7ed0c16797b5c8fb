"""Request-scoped dependencies: the database session and the acting user.

A request is one unit of work: the session commits when the handler returns and
rolls back on any error, so an audit entry and the change it records always
land together.  The actor comes from a personal API token (``Authorization:
Bearer``) or from the session cookie; cookie-authenticated requests that change
state must carry the session's CSRF token.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request, Response
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ctis import accounts
from ctis.security.permissions import Actor
from ctis.storage.models import User

SESSION_COOKIE = "ctis_session"
LANG_COOKIE = "ctis_lang"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One unit of work per request: commit when the handler returns, roll back on any error.

    An async generator on purpose: opening a session does no I/O (the transaction
    begins at the first statement, in the handler's thread), so only the end of
    the unit of work needs a thread of its own; a sync generator would cost two
    extra thread hops per request.
    """
    session = Session(get_engine(request), expire_on_commit=False)
    try:
        yield session
    except BaseException:
        # Shielded: a request cancelled here (the client went away) still returns its connection.
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(session.close)  # rolls back what the request began
        raise
    with anyio.CancelScope(shield=True):  # a commit, once begun, finishes or fails as a whole
        await run_in_threadpool(_commit_and_close, session)


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    finally:
        session.close()


# "function" scope: commit before the answer leaves, so a client that follows a redirect
# at once (after sign-in, after a save) finds what was just written.
DB = Annotated[Session, Depends(get_db, scope="function")]


@dataclass
class Identity:
    """Who is calling and how: ``csrf_token`` is set for browser sessions only."""

    user: User
    actor: Actor
    csrf_token: str | None = None
    via_token: bool = False


class NotSignedIn(Exception):
    """No valid session or token: pages redirect to sign-in, the API answers 401."""


def identify(request: Request, db: Session) -> Identity | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = accounts.user_for_token(db, auth[7:].strip())
        if user is None:
            raise HTTPException(status_code=401, detail="invalid or revoked API token")
        return Identity(user, accounts.actor_of(user), via_token=True)
    info = accounts.load_session(db, request.cookies.get(SESSION_COOKIE))
    if info is None:
        return None
    return Identity(info.user, accounts.actor_of(info.user), csrf_token=info.csrf_token)


def _check_origin(request: Request) -> None:
    """The browser's own word on where a request comes from: other sites are refused."""
    site = request.headers.get("sec-fetch-site")
    if site and site not in {"same-origin", "none"}:
        raise HTTPException(status_code=403, detail="cross-site request refused")
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") != str(request.base_url).rstrip("/"):
        raise HTTPException(status_code=403, detail="cross-origin request refused")


def _same(sent: str | None, expected: str | None) -> bool:
    """Whether a token sent matches one expected: both present, compared in constant time.

    As bytes: ``compare_digest`` refuses non-ASCII text, and a form may send anything.
    """
    if not sent or not expected:
        return False
    return hmac.compare_digest(
        sent.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def check_csrf(request: Request, identity: Identity, form_token: str | None = None) -> None:
    """State-changing browser requests must prove they come from our own pages."""
    if request.method in SAFE_METHODS or identity.via_token:
        return
    _check_origin(request)
    sent = form_token or request.headers.get("x-csrf-token")
    if not _same(sent, identity.csrf_token):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token; reload the page")


# -- forms posted before there is a session (sign-in, language) --------------
def pre_session_cookie(request: Request) -> str:
    """The pre-session token's cookie; ``__Host-`` over HTTPS, so no sibling subdomain can set it."""
    return "__Host-ctis_csrf" if request.app.state.secure_cookies else "ctis_csrf"


def pre_session_token(request: Request) -> tuple[str, bool]:
    """The pre-session CSRF token for this browser, and whether it is new (its cookie must be set).

    Without a session there is no server-side token to compare with, so the sign-in and language
    forms use a double-submit token: a random value in a cookie of ours, repeated in the form.  A
    cross-site page can make the browser send the cookie but can neither read it nor set it, so it
    cannot write the matching form field (login CSRF: signing a victim in as the attacker).
    """
    token = request.cookies.get(pre_session_cookie(request), "")
    if 32 <= len(token) <= 64 and token.isascii() and token.replace("-", "").replace("_", "").isalnum():
        return token, False
    return secrets.token_urlsafe(32), True


def set_pre_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        pre_session_cookie(request),
        token,
        httponly=True,
        samesite="strict",
        secure=request.app.state.secure_cookies,
        path="/",
    )


def check_pre_session_csrf(request: Request, form_token: str, identity: Identity | None = None) -> None:
    """A form posted without a session must carry this browser's pre-session token.

    A signed-in browser may send its session's token instead (pages rendered for the session);
    a request with an API token needs neither, as for every other form.
    """
    if identity is not None and identity.via_token:
        return
    _check_origin(request)
    cookie = request.cookies.get(pre_session_cookie(request), "")
    expected = [cookie, identity.csrf_token if identity is not None else None]
    if not any(_same(form_token, token) for token in expected):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token; reload the page")


# -- the client's address -------------------------------------------------------
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4)
def _parse_proxies(setting: str) -> tuple[Network, ...]:
    networks = []
    for part in setting.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"CTIS_TRUSTED_PROXIES: {part.strip()!r} is not an address or network "
                    "(e.g. 127.0.0.1, 10.0.0.0/8, ::1)"
                ) from None
    return tuple(networks)


def trusted_proxies() -> tuple[Network, ...]:
    """The proxies whose ``X-Forwarded-For`` is believed (``CTIS_TRUSTED_PROXIES``; default none)."""
    return _parse_proxies(os.environ.get("CTIS_TRUSTED_PROXIES", ""))


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: Request) -> str:
    """The address sign-in limits and sessions record: the peer, or who a trusted proxy says it serves.

    ``X-Forwarded-For`` is anyone's to write; believed blindly, it would give every guess a
    fresh address (beating the per-address limit) and put any address in the audit log.  It
    is read only when the peer is a configured proxy, from the right: each trusted proxy
    appends the address it received from, so the first untrusted one is the client.
    """
    peer = request.client.host if request.client else "unknown"
    proxies = trusted_proxies()
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    address = peer
    for hop in reversed([h for h in hops if h]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # a garbled entry: keep the last address a trusted hop vouched for
        address = hop
        if not _trusted(hop, proxies):
            break
    return address


def api_identity(request: Request, db: DB) -> Identity:
    identity = identify(request, db)
    if identity is None:
        raise HTTPException(
            status_code=401, detail="sign in or send an API token", headers={"WWW-Authenticate": "Bearer"}
        )
    check_csrf(request, identity)
    return identity


ApiIdentity = Annotated[Identity, Depends(api_identity)]
