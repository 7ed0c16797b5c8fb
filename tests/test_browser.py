"""The pages in a real browser: Debian's chromium driven by Playwright, against the live server.

What only a browser shows: the period picker and the search work under the CSP
(no inline scripts or styles), charts are drawn, Khmer renders with the shipped
Noto Sans Khmer, the language choice survives a reload, and the forms keep what
was typed. Screenshots of the dashboard in both languages are written to
``tests/artifacts/`` for a person to look at.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete

from tests.conftest import PASSWORD, LiveServer, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.web, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
PERIOD = "2024-H1"

if not Path(CHROMIUM).exists():
    if os.environ.get("CTIS_REQUIRE_BROWSER"):
        pytest.fail(f"browser tests need {CHROMIUM} (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


class Tab:
    """A page in a fresh browser context, with the console errors it logged (CSP violations included)."""

    def __init__(self, context: BrowserContext, base_url: str):
        self.context = context
        self.base = base_url
        self.page: Page = context.new_page()
        self.errors: list[str] = []
        self.page.on(
            "console", lambda m: m.type == "error" and self.errors.append(f"{self.page.url}: {m.text}")
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"{self.page.url}: {e}"))

    def go(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def sign_in(self, username: str) -> Page:
        """Through the form, as a person would."""
        page = self.go("/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/dashboard"))
        return page

    def pick_period(self, period: str) -> None:
        """Choose in the period picker; it submits itself (a listener in app.js, not an inline handler)."""
        self.page.select_option("select[name=period]", period)
        self.page.wait_for_url(re.compile(rf"period={period}"))
        expect(self.page.locator("h1")).to_contain_text(period)

    def figure(self, key: str) -> int:
        return int(self.page.get_by_test_id(f"figure-{key}").inner_text().replace(",", ""))

    def assert_clean(self) -> None:
        assert not self.errors, "the browser logged errors:\n" + "\n".join(self.errors)


@pytest.fixture
def tab(browser: Browser, live_server: LiveServer) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    yield Tab(context, live_server.url)
    context.close()


@pytest.fixture
def new_victim_id(web_engine: Engine) -> Iterator[str]:
    """An external id for a victim the test creates, removed afterwards so other tests see the demo counts."""
    from ctis.storage.models import Victim

    external_id = f"VIC-BROWSER-{uuid.uuid4().hex[:12].upper()}"
    yield external_id
    with web_engine.begin() as conn:
        conn.execute(delete(Victim).where(Victim.external_id == external_id))


def _charts_drawn(page: Page) -> list[str]:
    """Ids of the dashboard canvases Chart.js has drawn on."""
    return page.evaluate(
        """() => [...document.querySelectorAll("canvas")]
              .filter((c) => window.Chart && Chart.getChart(c) && c.width > 0 && c.height > 0)
              .map((c) => c.id)"""
    )


def _fonts_of(page: Page, selector: str) -> list[dict[str, Any]]:
    """The fonts chromium really used for an element's text (DevTools protocol)."""
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument")["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        cdp.send("CSS.enable")
        return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]  # type: ignore[no-any-return]
    finally:
        cdp.detach()


def _screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("document.fonts.ready.then(() => true)")
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _switch_language(page: Page, lang: str) -> None:
    with page.expect_navigation():
        page.get_by_test_id(f"lang-{lang}").click()
    expect(page.locator("html")).to_have_attribute("lang", lang)


def test_new_victim_raises_the_headline_figure_and_dashboard_renders_in_both_languages(
    tab: Tab, new_victim_id: str
) -> None:
    page = tab.sign_in("officer")
    tab.pick_period(PERIOD)
    before = tab.figure("victims_rescued")
    assert before > 0

    page.get_by_role("link", name="Victims", exact=True).click()
    page.get_by_test_id("new-record").click()
    page.wait_for_url(re.compile(r"/records/victims/new$"))
    page.fill("#f-external_id", new_victim_id)
    page.select_option("#f-sex", "female")
    page.fill("#f-rescue_date", "2024-03-15")
    page.select_option("#f-province", index=1)
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(rf"/records/victims/{new_victim_id}$"))
    expect(page.locator("h1")).to_contain_text(new_victim_id)

    page.get_by_role("link", name="Dashboard", exact=True).click()
    page.wait_for_url(re.compile(r"/dashboard"))
    tab.pick_period(PERIOD)
    assert tab.figure("victims_rescued") == before + 1

    page.wait_for_function("document.querySelectorAll('canvas').length > 0 && window.Chart !== undefined")
    page.wait_for_function("() => Chart.getChart('chart-province') !== undefined")
    assert set(_charts_drawn(page)) == {
        "chart-trend",
        "chart-sex",
        "chart-age_band",
        "chart-exploitation_type",
        "chart-nationality",
        "chart-province",
    }
    # Age bands read youngest first, in the table as on the chart.
    bands = page.get_by_test_id("chart-age_band").locator("tbody td:first-child").all_inner_texts()
    assert bands[:2] == ["0-8", "9-17"]
    shot_en = _screenshot(page, "dashboard-en.png")

    try:
        _switch_language(page, "km")
        assert "period=2024-H1" in page.url  # the switch comes back to the same page
        expect(page.locator("h1")).to_contain_text("ផ្ទាំងគ្រប់គ្រង")
        assert tab.figure("victims_rescued") == before + 1
        page.wait_for_function("() => Chart.getChart('chart-province') !== undefined")
        assert len(_charts_drawn(page)) == 6
        shot_km = _screenshot(page, "dashboard-km.png")
        # Khmer text is drawn with the shipped web font, not a system font or boxes.
        fonts = _fonts_of(page, "h1")
        assert any(f["familyName"] == "Noto Sans Khmer" and f["isCustomFont"] for f in fonts), fonts
        loaded = page.evaluate(
            "performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('/fonts/'))"
        )
        assert any(n.endswith("/noto-sans-khmer-khmer-400-normal.woff2") for n in loaded), loaded
    finally:
        _switch_language(page, "en")  # the choice is saved in the account: leave it as found
    assert shot_en.stat().st_size > 50_000 and shot_km.stat().st_size > 50_000
    tab.assert_clean()


def test_language_choice_is_remembered(tab: Tab, browser: Browser, live_server: LiveServer) -> None:
    page = tab.sign_in("analyst")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    try:
        _switch_language(page, "km")
        page.reload()
        expect(page.locator("html")).to_have_attribute("lang", "km")
        tab.go("/reports")
        expect(page.locator("html")).to_have_attribute("lang", "km")
        expect(page.get_by_test_id("lang-en")).to_be_visible()
        # Khmer numerals are a second choice on Khmer pages, and can be turned off again.
        with page.expect_navigation():
            page.get_by_test_id("digits-km").click()
        expect(page.locator(".period .range")).to_have_text(re.compile("[០-៩]{4}"))
        with page.expect_navigation():
            page.get_by_test_id("digits-latin").click()
        expect(page.get_by_test_id("digits-km")).to_be_visible()
        expect(page.locator(".period .range")).to_have_text(re.compile("[0-9]{4}"))
        # Signing in on another browser finds the language kept with the account.
        other = Tab(browser.new_context(locale="en-GB"), live_server.url)
        try:
            other.sign_in("analyst")
            expect(other.page.locator("html")).to_have_attribute("lang", "km")
        finally:
            other.context.close()
    finally:
        _switch_language(page, "en")
    tab.assert_clean()


def test_invalid_fields_are_marked_beside_the_field_and_input_is_kept(tab: Tab) -> None:
    tab.sign_in("officer")
    page = tab.go("/records/victims/new")
    external_id = f"VIC-INVALID-{uuid.uuid4().hex[:8].upper()}"
    page.fill("#f-external_id", external_id)
    page.fill("#f-name_latin", "Sok Test")
    page.select_option("#f-sex", "male")
    page.fill("#f-age", "17")
    page.locator("input[name=means_of_control]").first.check()
    checked = page.locator("input[name=means_of_control]:checked").get_attribute("value")
    page.get_by_test_id("save").click()  # no rescue date

    message = page.get_by_test_id("error-rescue_date")
    expect(message).to_be_visible()
    expect(message).not_to_be_empty()
    expect(page.locator("#f-rescue_date")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-rescue_date")).to_be_focused()
    expect(page.locator("#f-external_id")).to_have_value(external_id)
    expect(page.locator("#f-name_latin")).to_have_value("Sok Test")
    expect(page.locator("#f-sex")).to_have_value("male")
    expect(page.locator("#f-age")).to_have_value("17")
    expect(page.locator(f"input[name=means_of_control][value='{checked}']")).to_be_checked()
    expect(page.get_by_test_id("error-name_latin")).to_be_hidden()

    page.fill("#f-rescue_date", "2999-01-01")  # a date that cannot have happened yet
    page.get_by_test_id("save").click()
    expect(message).not_to_be_empty()
    expect(page.locator("#f-rescue_date")).to_have_value("2999-01-01")
    expect(page.locator("#f-name_latin")).to_have_value("Sok Test")
    assert "/records/victims/new" in page.url
    tab.go(f"/records/victims/{external_id}")  # nothing was saved
    expect(page.locator("h1")).to_have_text("404")
    tab.errors = [e for e in tab.errors if "404" not in e and "422" not in e]  # the answers asked for
    tab.assert_clean()


def test_viewer_sees_masked_names_and_no_name_text(tab: Tab, live_server: LiveServer) -> None:
    tab.sign_in("viewer")
    page = tab.go("/records/victims")
    ids = page.locator("#rows tbody tr td:first-child a").all_inner_texts()
    assert ids, "the viewer's agency should have victims in the demo data"
    assert page.get_by_test_id("masked").count() >= len(ids)
    officer = sign_in(live_server.url, "officer")
    names = []
    for external_id in ids[:10]:
        record = officer.get(f"/api/v1/victims/{external_id}").json()
        names += [n for n in (record["name_latin"], record["name_khmer"]) if n]
    assert names, "the officer should see the names the viewer may not"
    listed = page.locator("main").inner_text()
    assert not [n for n in names if n in listed]

    page.get_by_role("link", name=ids[0], exact=True).click()
    page.wait_for_url(re.compile(rf"/records/victims/{ids[0]}$"))
    expect(page.locator('dd[data-field="name_latin"] [data-testid=masked]')).to_be_visible()
    expect(page.locator('dd[data-field="name_khmer"] [data-testid=masked]')).to_be_visible()
    shown = page.locator("main").inner_text()
    assert not [n for n in names if n in shown]
    tab.assert_clean()


def test_signed_out_visit_signs_in_and_comes_back(tab: Tab) -> None:
    # No session at all, then a session the server does not know (expired or signed out).
    for cookies in ([], [{"name": "ctis_session", "value": "expired", "url": tab.base}]):
        tab.context.clear_cookies()
        tab.context.add_cookies(cookies)  # type: ignore[arg-type]
        page = tab.go("/records/victims?sex=female")
        page.wait_for_url(re.compile(r"/login\?next="))
        assert page.locator("main input[name=next]").input_value() == "/records/victims?sex=female"
        page.fill("input[name=username]", "social")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/records/victims\?sex=female$"))
        expect(page.locator("h1")).to_have_text("Victims")

    # The session ends while the list is open: the next search goes to sign-in as a whole
    # page (not pasted into the table), and signing in comes back to the search.
    tab.context.clear_cookies()
    page.get_by_test_id("search").fill("VIC-0001")
    page.wait_for_url(re.compile(r"/login\?next="))
    expect(page.locator("#rows")).to_have_count(0)
    page.fill("input[name=username]", "social")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/records/victims\?.*q=VIC-0001"))
    expect(page.get_by_test_id("search")).to_have_value("VIC-0001")
    tab.assert_clean()


def test_htmx_search_filters_the_rows_in_place(tab: Tab) -> None:
    tab.sign_in("officer")
    page = tab.go("/records/victims")
    rows = page.locator("#rows tbody tr")
    expect(rows).to_have_count(50)
    total = page.get_by_test_id("row-count").inner_text()
    page.evaluate("window.__same_page = true")

    page.get_by_test_id("search").press_sequentially("VIC-0012", delay=20)
    expect(page.get_by_test_id("row-count")).not_to_have_text(total)
    expect(rows).to_have_count(10)  # VIC-00120 ... VIC-00129
    for text in page.locator("#rows tbody tr td:first-child").all_inner_texts():
        assert text.startswith("VIC-0012")
    assert page.evaluate("window.__same_page === true"), "the search reloaded the whole page"
    page.wait_for_url(re.compile(r"q=VIC-0012"))  # the address can be bookmarked or shared

    page.reload()  # the pushed address, loaded in full, shows the same rows
    expect(page.get_by_test_id("search")).to_have_value("VIC-0012")
    expect(rows).to_have_count(10)
    expect(page.locator("header nav")).to_be_visible()

    page.get_by_test_id("search").fill("no such victim anywhere")
    expect(page.locator("#rows tbody")).to_contain_text("No records.")
    tab.assert_clean()


def test_figures_and_chart_bars_open_the_records_behind_them(tab: Tab) -> None:
    tab.sign_in("officer")
    page = tab.go(f"/dashboard?period={PERIOD}")
    minors = tab.figure("victims_rescued_minor")
    page.get_by_test_id("figure-victims_rescued_minor").click()
    page.wait_for_url(re.compile(r"/drill\?metric=victims_rescued_minor&period=2024-H1$"))
    expect(page.get_by_test_id("drill-total")).to_have_text(str(minors))
    links = page.get_by_test_id("drill-records").locator("a")
    expect(links).to_have_count(minors)
    first = links.first.inner_text()
    links.first.click()
    page.wait_for_url(re.compile(rf"/records/victims/{first}$"))

    page.go_back()
    page.go_back()
    page.wait_for_url(re.compile(r"/dashboard"))
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-exploitation_type') !== undefined")
    # The first (longest) bar of the exploitation chart, clicked where Chart.js drew it.
    x, y, count, code = page.evaluate(
        """() => {
            const chart = Chart.getChart('chart-exploitation_type');
            chart.canvas.scrollIntoView({ block: 'center' });
            const bar = chart.getDatasetMeta(0).data[0];
            const box = chart.canvas.getBoundingClientRect();
            const data = JSON.parse(document.getElementById('chart-data').textContent);
            const row = data.charts.find((c) => c.id === 'chart-exploitation_type').rows[0];
            const centre = bar.getCenterPoint();
            return [box.left + centre.x, box.top + centre.y, row.count, row.code];
        }"""
    )
    page.mouse.click(x, y)
    page.wait_for_url(re.compile(rf"dimension=exploitation_type&value={code}$"))
    expect(page.get_by_test_id("drill-total")).to_have_text(f"{count:,}")
    expect(page.get_by_test_id("drill-records").locator("a")).to_have_count(count)
    tab.assert_clean()


def test_reports_breakdown_submits_itself(tab: Tab) -> None:
    tab.sign_in("analyst")
    page = tab.go(f"/reports?period={PERIOD}")
    page.select_option("select[name=by]", "age_band")
    page.wait_for_url(re.compile(r"by=age_band"))
    headers = page.locator("table.report thead th").all_inner_texts()
    assert headers[2:4] == ["0-8", "9-17"]
    tab.assert_clean()


def test_api_docs_show_the_operations_under_the_csp(tab: Tab) -> None:
    """Swagger UI from the vendored files, started by a static script: nothing the CSP refuses."""
    outside: list[str] = []
    tab.page.on("request", lambda r: r.url.startswith(tab.base) or outside.append(r.url))
    page = tab.go("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("CTIS API")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() > 20
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/me").first).to_be_visible()
    # an operation opens, as a reader would open it
    page.locator(".opblock-summary", has_text="/api/v1/me").first.click()
    expect(page.locator(".opblock-body").first).to_be_visible()
    assert outside == [], "the docs page called outside its origin"
    tab.assert_clean()
