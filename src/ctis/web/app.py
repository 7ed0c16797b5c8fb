"""The web application: REST API and server-rendered pages over the same services.

``create_app`` wires the pieces: the API router, the page router, static files,
error handlers that turn domain exceptions into 4xx answers (never a 500 for
bad input), and a middleware that sets the language of the request and the
security headers of every answer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ctis import __version__, records
from ctis.security.permissions import Forbidden
from ctis.security.ratelimit import sign_in_limiter
from ctis.web import i18n
from ctis.web.deps import LANG_COOKIE, NotSignedIn

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 1_000_000  # bytes; imports of large files go through the CLI

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/")


def create_app(engine: Engine | None = None, secure_cookies: bool | None = None) -> FastAPI:
    """The application; ``secure_cookies`` (default: ``CTIS_SECURE_COOKIES=1``) is on behind HTTPS."""
    if secure_cookies is None:
        secure_cookies = os.environ.get("CTIS_SECURE_COOKIES") == "1"
    from ctis import services
    from ctis.web import api, pages

    app = FastAPI(
        title="CTIS API",
        version=__version__,
        description="Counter-Trafficking Information System. Figures come from the metric registry; "
        "identifying fields are masked unless your role may see them.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.engine = engine or services.engine()
    app.state.secure_cookies = secure_cookies
    app.state.limiter = sign_in_limiter()
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"detail": f"request body larger than {MAX_BODY} bytes"}, status_code=413)
        lang = i18n.negotiate(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))
        token = i18n.set_language(lang)
        digits = i18n.khmer_digits.set(request.cookies.get("ctis_digits") == "km")
        try:
            response: Response = await call_next(request)
        finally:
            i18n.current_lang.reset(token)
            i18n.khmer_digits.reset(digits)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def problem(request: Request, status: int, detail: str, **extra: Any) -> Response:
        if _wants_html(request) and status in {403, 404, 409, 422}:
            return pages.error_page(request, status, detail)
        return JSONResponse({"detail": detail, **extra}, status_code=status)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return problem(request, 403, str(exc))

    @app.exception_handler(records.NotFound)
    async def not_found(request: Request, exc: records.NotFound) -> Response:
        return problem(request, 404, str(exc).strip("'\""))

    @app.exception_handler(records.Invalid)
    async def invalid(request: Request, exc: records.Invalid) -> Response:
        return problem(request, 422, str(exc), errors=exc.errors)

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
