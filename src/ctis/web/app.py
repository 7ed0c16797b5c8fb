"""The web application: REST API and server-rendered pages over the same services.

``create_app`` wires the pieces: the API router, the page router, static files,
error handlers that turn domain exceptions into 4xx answers (never a 500 for
bad input), and a middleware that sets the language of the request and the
security headers of every answer.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ctis import __version__, records
from ctis.security import probing
from ctis.security.permissions import Forbidden
from ctis.security.ratelimit import sign_in_limiter
from ctis.web import i18n
from ctis.web.deps import LANG_COOKIE, NotSignedIn, trusted_proxies

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 1_000_000  # bytes; imports of large files go through the CLI

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/")


class GuardMiddleware:
    """Body-size limit, the request's language, and the security headers of every answer.

    A plain ASGI middleware rather than ``@app.middleware("http")``: Starlette's
    ``BaseHTTPMiddleware`` runs each request in an extra task with memory
    streams between the two, which cost about a millisecond per request under
    load (``benchmarks/api_load.py``).
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length and (not length.isdigit() or int(length) > MAX_BODY):
            await _too_large()(scope, receive, self._secure(send, scope["path"]))
            return
        # A chunked body has no Content-Length, and one that has may still be read by whoever
        # reads first (a form parser, before any sign-in check): count what arrives instead.
        limited = _LimitedBody(receive, MAX_BODY)
        receive, send = limited, limited.guard(self._secure(send, scope["path"]))
        if "json" in headers.get("content-type", ""):
            # JSON may carry a lone surrogate ("\ud800"), which no database, page or JSON answer
            # can encode: refused here, once for every route, before any handler works on it.
            try:
                body = await limited.read_all()
            except BodyTooLarge:
                await limited.answer()
                return
            if _has_lone_surrogate(body):
                await _unpaired_surrogate()(scope, receive, send)
                return
            receive = limited.replay(body)
        cookies = _cookies(headers)
        lang = i18n.negotiate(headers.get("accept-language"), cookies.get(LANG_COOKIE))
        token = i18n.set_language(lang)
        digits = i18n.khmer_digits.set(cookies.get("ctis_digits") == "km")
        slots: asyncio.Semaphore | None = getattr(scope["app"].state, "slots", None)
        try:
            if slots is None or scope["path"].startswith("/static/"):
                await self.app(scope, receive, send)
            else:
                async with slots:
                    await self.app(scope, receive, send)
        except BodyTooLarge:
            await limited.answer()
        finally:
            i18n.current_lang.reset(token)
            i18n.khmer_digits.reset(digits)

    @staticmethod
    def _secure(send: Send, path: str) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    out[name] = value
                if not path.startswith("/static/"):
                    out["Cache-Control"] = "no-store"
            await send(message)

        return send_with_headers


def _too_large() -> JSONResponse:
    return JSONResponse({"detail": f"request body larger than {MAX_BODY} bytes"}, status_code=413)


class BodyTooLarge(StarletteHTTPException):
    """The body grew past :data:`MAX_BODY` while it was being read; answered 413."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail=f"request body larger than {MAX_BODY} bytes")


class _LimitedBody:
    """``receive`` that counts the body's bytes as they arrive and stops at the limit.

    The first chunk past the limit raises :class:`BodyTooLarge` (an HTTP 413 exception, which
    FastAPI's body parsing passes on rather than turning into a 400), so no more than the limit
    and one chunk is ever held.  Whatever the application answers after that — a handler that
    caught the exception and answered something else included — :meth:`guard` replaces with the
    413, so an oversized body is never half-processed.
    """

    def __init__(self, receive: Receive, limit: int):
        self._receive = receive
        self.limit = limit
        self.received = 0
        self.exceeded = False
        self._send: Send | None = None
        self._started = False

    async def __call__(self) -> Message:
        if self.exceeded:
            raise BodyTooLarge()
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                raise BodyTooLarge()
        return message

    async def read_all(self) -> bytes:
        """The whole body (within the limit), for a check before the application sees it."""
        chunks: list[bytes] = []
        while True:
            message = await self()
            if message["type"] != "http.request":  # the client went away: the app will hear it
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def replay(self, body: bytes) -> Receive:
        """``receive`` that gives the application ``body`` (already read), then the client's events."""
        given = False

        async def receive() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await self._receive()

        return receive

    def guard(self, send: Send) -> Send:
        self._send = send

        async def send_unless_too_large(message: Message) -> None:
            if self.exceeded:
                await self.answer()
                return
            if message["type"] == "http.response.start":
                self._started = True
            await send(message)

        return send_unless_too_large

    async def answer(self) -> None:
        """Send the 413 once, unless another answer had already begun before the limit was hit."""
        if self._started or self._send is None:
            return
        self._started = True
        response = _too_large()
        await self._send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await self._send({"type": "http.response.body", "body": response.body})


def _unpaired_surrogate() -> JSONResponse:
    return JSONResponse(
        {"detail": "invalid request",
         "errors": {"body": "text holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode"}},
        status_code=422,
    )  # fmt: skip


def _has_lone_surrogate(body: bytes) -> bool:
    """Whether a JSON body holds a string (or key) with an unpaired surrogate escape.

    Only ``\\u`` escapes can produce one (UTF-8 cannot encode a surrogate), so a body without
    them is not parsed at all; a body that is not JSON is left to the application's 422.
    """
    if b"\\u" not in body:
        return False
    try:
        value = json.loads(body)
    except ValueError:
        return False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _cookies(headers: Headers) -> dict[str, str]:
    raw = headers.get("cookie")
    return cookie_parser(raw) if raw else {}


#: Requests the application works on at once, per worker process; the others wait their turn
#: in arrival order (in the event loop, at no cost).  Why a bound: each request holds a pooled
#: database connection across several thread hops (the identity, the handler, the commit), so
#: with more requests in flight than connections, threads block on the pool while
#: the requests holding connections wait for a thread: a deadlock until the pool times out.
#: And with the GIL, dozens of threads competing for one core make every request wait for the
#: others' time slices.  A small bound answers sooner under load (docs/benchmarks-api.md).
CONCURRENCY = max(1, int(os.environ.get("CTIS_CONCURRENCY", "8")))


#: Seconds a client is asked to wait after a 503 for a busy database.
RETRY_AFTER_BUSY = 2
#: PostgreSQL states that mean "try again": lock not available, serialization failure, deadlock.
_BUSY_SQLSTATES = {"55P03", "40001", "40P01"}


def _is_busy(exc: OperationalError) -> bool:
    """Whether a database error means contention (retry later) rather than a fault."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    message = str(orig if orig is not None else exc).lower()
    return "database is locked" in message or "database table is locked" in message or "busy" in message


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Enough threads for every admitted request plus static files; never more than needed.
    anyio.to_thread.current_default_thread_limiter().total_tokens = CONCURRENCY + 4
    # Everything built at start-up (modules, routes, templates, the registry) lives as long as
    # the process: move it out of the collector's sight, so that full collections under load
    # walk only what requests allocate (shorter pauses; they hold the GIL).
    gc.collect()
    gc.freeze()
    app.state.slots = asyncio.Semaphore(CONCURRENCY)
    yield


def create_app(engine: Engine | None = None, secure_cookies: bool | None = None) -> FastAPI:
    """The application; ``secure_cookies`` (default: ``CTIS_SECURE_COOKIES=1``) is on behind HTTPS."""
    if secure_cookies is None:
        secure_cookies = os.environ.get("CTIS_SECURE_COOKIES") == "1"
    from ctis import services
    from ctis.web import allegations, api, apidocs, claims, linkage, pages, publication, screening

    app = FastAPI(
        lifespan=_lifespan,
        title="CTIS API",
        version=__version__,
        description="Counter-Trafficking Information System. Figures come from the metric registry; "
        "identifying fields are masked unless your role may see them.",
        docs_url=None,  # /api/docs is ctis.web.apidocs: vendored Swagger UI that the CSP allows
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.engine = engine or services.engine()
    app.state.secure_cookies = secure_cookies
    app.state.limiter = sign_in_limiter()
    trusted_proxies()  # CTIS_TRUSTED_PROXIES is checked now: a mistake stops the start, not a sign-in
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(claims.router)
    app.include_router(allegations.router)
    app.include_router(publication.router)
    app.include_router(screening.router)
    app.include_router(linkage.router)
    app.include_router(apidocs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    app.add_middleware(GuardMiddleware)

    def problem(request: Request, status: int, detail: str, **extra: Any) -> Response:
        if _wants_html(request) and status in {403, 404, 409, 422}:
            return pages.error_page(request, status, detail)
        return JSONResponse({"detail": detail, **extra}, status_code=status)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if isinstance(exc, records.ScopeRefused):  # audited after the request's rollback
            engine = request.app.state.engine
            await run_in_threadpool(probing.record_after_rollback, engine, exc.actor, exc.events)
        return problem(request, 403, str(exc))

    @app.exception_handler(records.NotFound)
    async def not_found(request: Request, exc: records.NotFound) -> Response:
        return problem(request, 404, str(exc).strip("'\""))

    @app.exception_handler(records.Invalid)
    async def invalid(request: Request, exc: records.Invalid) -> Response:
        return problem(request, 422, str(exc), errors=exc.errors)

    @app.exception_handler(records.HiddenRuleRefused)
    async def hidden_rule(request: Request, exc: records.HiddenRuleRefused) -> Response:
        # The request's unit of work has been rolled back by now; the refusal is audited on its own.
        engine = request.app.state.engine
        await run_in_threadpool(probing.record_after_rollback, engine, exc.actor, exc.events)
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        body = {"detail": str(exc), "errors": exc.errors}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(records.Conflict)
    async def conflict(request: Request, exc: records.Conflict) -> Response:
        return JSONResponse({"detail": str(exc), "current": api.json_safe(exc.current)}, status_code=409)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={pages.quote(target)}", status_code=303)

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        # The last line of defence: a value the database cannot hold or compare (too long, out of
        # range, a NUL character) is bad input, whichever form or parameter it came through.
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        return problem(request, 422, f"invalid value: {reason}")

    @app.exception_handler(OperationalError)
    async def busy(request: Request, exc: OperationalError) -> Response:
        # The last line of defence for a database that is busy, not broken: SQLite's write lock
        # held past the busy timeout by another process (an import, a linkage run), or a
        # PostgreSQL lock timeout or deadlock.  The request changed nothing (its transaction is
        # rolled back), so it may be sent again: 503 with Retry-After, not a 500.
        if not _is_busy(exc):
            raise exc
        detail = "the database is busy with another change (an import or a linkage run?); try again shortly"
        headers = {"Retry-After": str(RETRY_AFTER_BUSY)}
        if _wants_html(request):
            page = pages.error_page(request, 503, detail)
            page.headers.update(headers)
            return page
        return JSONResponse({"detail": detail}, status_code=503, headers=headers)

    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, exc: OverflowError) -> Response:
        # SQLite's driver raises this (not a DataError) for an integer past 64 bits, and the
        # calendar for a date past 9999: out-of-range input that a route did not bound itself.
        return problem(request, 422, f"invalid value: out of range ({exc})")

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> Response:
        errors: dict[str, str] = {}
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in {"body", "query", "path"}]
            errors.setdefault(".".join(loc) or "body", str(err.get("msg", "invalid")))
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if _wants_html(request) and exc.status_code in {403, 404}:
            return pages.error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=headers)

    return app
