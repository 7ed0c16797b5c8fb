"""Request-scoped dependencies: the database session and the acting user.

A request is one unit of work: the session commits when the handler returns and
rolls back on any error, so an audit entry and the change it records always
land together.  The actor comes from a personal API token (``Authorization:
Bearer``) or from the session cookie; cookie-authenticated requests that change
state must carry the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request
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


def check_csrf(request: Request, identity: Identity, form_token: str | None = None) -> None:
    """State-changing browser requests must prove they come from our own pages."""
    if request.method in SAFE_METHODS or identity.via_token:
        return
    site = request.headers.get("sec-fetch-site")
    if site and site not in {"same-origin", "none"}:
        raise HTTPException(status_code=403, detail="cross-site request refused")
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") != str(request.base_url).rstrip("/"):
        raise HTTPException(status_code=403, detail="cross-origin request refused")
    sent = form_token or request.headers.get("x-csrf-token")
    if not sent or sent != identity.csrf_token:
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token; reload the page")


def api_identity(request: Request, db: DB) -> Identity:
    identity = identify(request, db)
    if identity is None:
        raise HTTPException(
            status_code=401, detail="sign in or send an API token", headers={"WWW-Authenticate": "Bearer"}
        )
    check_csrf(request, identity)
    return identity


ApiIdentity = Annotated[Identity, Depends(api_identity)]
