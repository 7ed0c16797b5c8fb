"""The interactive API documentation, ``/api/docs``, from vendored Swagger UI under the CSP.

FastAPI's own page (``get_swagger_ui_html``) loads Swagger UI from a CDN and
starts it with an inline script; the application's Content-Security-Policy
(``script-src 'self'; style-src 'self'``, see :data:`ctis.web.app.CSP`) refuses
both, so the page stayed blank. This page loads the copy of ``swagger-ui-dist``
vendored under ``static/vendor/swagger-ui/`` and starts it from a static file,
``static/js/api-docs.js``, which reads the OpenAPI address from the page rather
than having it written into a script. Nothing is fetched from outside the origin,
so the page also works offline on a freshly installed machine.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

DOCS_URL = "/api/docs"
SWAGGER = "/static/vendor/swagger-ui"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{swagger}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{swagger}/swagger-ui-bundle.js"></script>
<script src="/static/js/api-docs.js"></script>
</body>
</html>
"""


@router.get(DOCS_URL, response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI over the application's OpenAPI document; public, like the document itself."""
    app = request.app
    page = _PAGE.format(
        title=escape(f"{app.title} – documentation"),
        swagger=SWAGGER,
        openapi_url=escape(app.openapi_url or "", quote=True),
    )
    return HTMLResponse(page)
