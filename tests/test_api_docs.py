"""The interactive API documentation (``/api/docs``) works under the application's CSP.

The CSP allows scripts and styles from our own origin only (``script-src 'self'``,
``style-src 'self'``), so the page may load nothing from a CDN and may carry no
inline script or style: every asset is vendored under ``/static`` and the
initialisation is a static file. The browser half of the check (the operations
are drawn, no CSP violation in the console) is in ``tests/test_browser.py``.
"""

from __future__ import annotations

import asyncio
import glob
import re
import tomllib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ctis"
STATIC = PACKAGE / "web" / "static"
SWAGGER = STATIC / "vendor" / "swagger-ui"


class _Page(HTMLParser):
    """The URLs a page refers to, its inline scripts and its inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self.inline_styles: list[str] = []
        self.inline_attributes: list[str] = []  # style= and on...= handlers
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href", "action", "data-openapi-url"):
            if found.get(name):
                self.urls.append(str(found[name]))
        if "style" in found or any(name.startswith("on") for name in found):
            self.inline_attributes.append(f"<{tag} {found}>")
        self._in = tag if tag in {"script", "style"} else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script" and data.strip():
            self.inline_scripts.append(data)
        elif self._in == "style" and data.strip():
            self.inline_styles.append(data)


class Client:
    """Requests straight to the ASGI application, no server (the docs page reads no data)."""

    def __init__(self, app: FastAPI):
        self.app = app

    def get(self, url: str) -> httpx.Response:
        async def fetch() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ctis.test") as client:
                return await client.get(url)

        return asyncio.run(fetch())


@pytest.fixture
def client() -> Iterator[Client]:
    from ctis.web.app import create_app

    engine = create_engine("sqlite://")
    yield Client(create_app(engine))
    engine.dispose()


def _docs(client: Client) -> tuple[str, _Page]:
    r = client.get("/api/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    page = _Page()
    page.feed(r.text)
    return r.text, page


def test_docs_page_refers_only_to_static_files_of_our_own(client: Client) -> None:
    _, page = _docs(client)
    assert page.inline_scripts == [], "the CSP forbids inline scripts"
    assert page.inline_styles == [], "the CSP forbids inline styles"
    assert page.inline_attributes == [], "the CSP forbids style attributes and inline handlers"
    # "data:," is the empty icon, as on every page, so that the browser asks for no /favicon.ico
    assets = [u for u in page.urls if u not in {"/api/openapi.json", "data:,"}]
    assert "/api/openapi.json" in page.urls
    assert {"/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/vendor/swagger-ui/swagger-ui.css",
            "/static/js/api-docs.js"} <= set(assets)  # fmt: skip
    for url in assets:
        assert url.startswith("/static/"), url
        assert (STATIC / url.removeprefix("/static/")).is_file(), url
        served = client.get(url)
        assert served.status_code == 200, url


def test_docs_initialiser_reads_its_settings_from_the_page_and_calls_no_one_else() -> None:
    script = (STATIC / "js" / "api-docs.js").read_text(encoding="utf-8")
    assert "data-openapi-url" in script or "openapiUrl" in script
    assert not re.search(r"https?://", script), "no address outside our origin"
    assert "validatorUrl: null" in script  # the online validator badge would call swagger.io


def test_openapi_document_is_still_served(client: Client) -> None:
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    assert r.json()["paths"]


def test_vendored_swagger_ui_matches_its_recorded_checksums_and_keeps_its_licence() -> None:
    import hashlib

    readme = (SWAGGER / "README.md").read_text(encoding="utf-8")
    recorded = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M))
    assert set(recorded) == {p.name for p in SWAGGER.iterdir() if p.name != "README.md"}
    assert {"LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"} <= set(recorded)
    for name, digest in recorded.items():
        assert hashlib.sha256((SWAGGER / name).read_bytes()).hexdigest() == digest, name


def test_package_data_ships_every_static_file() -> None:
    """A wheel carries what ``[tool.setuptools.package-data]`` names; the docs page needs its assets there."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["ctis"]
    shipped = {
        Path(path).resolve()
        for pattern in patterns
        for path in glob.glob(str(PACKAGE / pattern), recursive=True)
    }
    missing = [str(p.relative_to(PACKAGE)) for p in STATIC.rglob("*") if p.is_file() and p not in shipped]
    assert not missing
    assert (SWAGGER / "swagger-ui-bundle.js").resolve() in shipped
