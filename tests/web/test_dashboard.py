"""The dashboard in real headless Chromium on the demo company.

Every page in two languages without console errors or error banners (screenshots kept as
artefacts); filters change the numbers, and the numbers are the metrics layer's for that scope;
the language switch; a shared URL restoring the view; cross-filter clicks and drill-down; reset;
Customer 360 search; no horizontal scroll at phone width.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from crmlens.metrics import metric, overview
from crmlens.metrics.quality import quality_report
from crmlens.metrics.summary import history_scope
from crmlens.warehouse import Warehouse
from crmlens.web.data import Bounds
from crmlens.web.i18n import metric_value, number
from crmlens.web.pages import PAGES
from crmlens.web.state import View

#: The tab fixtures' type (conftest.Page; test dirs are not packages, so it is not imported).
Page = Any

LANGS = ("zh-CN", "en")


def expected_card(wh: Warehouse, name: str, search: str) -> str:
    """A KPI card's value as the metrics layer computes and the dashboard formats it."""
    history = history_scope(wh)
    b = Bounds(history.start, history.end)
    view = View.parse(search)
    scope = view.scope(b.default_start, b.default_end)
    value = overview(wh, [name], scope)["value"].iloc[0]
    return metric_value(metric(name), value, view.lang)


def card(page: Page, name: str) -> str:
    return page.text(f'[data-metric="{name}"] .kpi-value')


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.tab.url).query)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_loads_cleanly(page: Page, name: str, lang: str) -> None:
    page.errors.clear()
    extra = "&id=M0000010&q=M00000" if name == "customer" else ""
    page.open(f"/{name}?lang={lang}{extra}")
    assert page.errors == []
    assert page.tab.query_selector_all(".error-banner") == []
    assert page.tab.query_selector_all(".card"), f"{name} shows no cards"
    page.screenshot(f"{name}-{lang}")


def test_quality_duplicate_keys_fill_in_from_the_metrics_layer(
    page: Page, demo_wh: Warehouse
) -> None:
    # the page comes without the duplicate-key counts (slow at scale); a second request adds them
    page.open("/quality?lang=en")
    page.tab.wait_for_function(
        "() => { const t = document.querySelector('#dq-tables tbody');"
        " return !!t && !t.innerText.includes('…'); }",
        timeout=20_000,
        polling=100,
    )
    report = quality_report(demo_wh, as_of=history_scope(demo_wh).end).set_index("label_en")
    rows = page.tab.query_selector_all("#dq-tables tbody tr")
    assert len(rows) == len(report)
    for row in rows:
        cells = [c.inner_text() for c in row.query_selector_all("td")]
        assert cells[3] == number(int(report.loc[cells[0], "duplicate_keys"]), "en"), cells[0]
    assert page.errors == []


def test_kpi_cards_equal_the_metrics_layer(page: Page, demo_wh: Warehouse) -> None:
    page.open("/overview")
    for name in ("revenue", "orders", "aov", "new_customers"):
        assert card(page, name) == expected_card(demo_wh, name, "")


def test_changing_a_filter_changes_the_numbers(page: Page, demo_wh: Warehouse) -> None:
    page.open("/overview")
    before = card(page, "revenue")
    page.tab.click("#f-city")
    page.tab.click('.dash-dropdown-option:has-text("烟台")')
    page.tab.wait_for_function("() => location.search.includes('city=')", timeout=10_000)
    page.tab.keyboard.press("Escape")
    after = page.wait_for_text('[data-metric="revenue"] .kpi-value', not_equal=before)
    assert query(page)["city"] == ["烟台"]
    assert after == expected_card(demo_wh, "revenue", "?city=烟台")
    # a second filter narrows further, and still agrees
    page.open("/overview?city=烟台&tier=白金,黄金&grain=quarter")
    assert card(page, "revenue") == expected_card(
        demo_wh, "revenue", "?city=烟台&tier=白金,黄金&grain=quarter"
    )


def test_language_switch_changes_labels(page: Page) -> None:
    page.open("/overview")
    assert page.text("#nav-overview") == "总览"
    page.tab.click('.lang-switch label:has-text("English")')
    page.tab.wait_for_function("() => location.search.includes('lang=en')", timeout=10_000)
    page.wait_for_text('[data-metric="revenue"] .kpi-label', not_equal="销售额(净)")
    assert page.text("#nav-overview") == "Overview"
    assert page.text('[data-metric="revenue"] .kpi-label') == "Revenue (net)"
    assert page.text("#l-city") == "City"
    page.tab.click('.lang-switch label:has-text("繁體中文")')
    page.tab.wait_for_function("() => location.search.includes('lang=zh-TW')", timeout=10_000)
    page.wait_for_text('[data-metric="revenue"] .kpi-label', not_equal="Revenue (net)")
    assert page.text("#nav-members") == "會員與目標"
    assert page.text('[data-metric="new_customers"] .kpi-label') == "新增客戶數"


def test_a_shared_url_restores_the_view(fresh_page: Page, demo_wh: Warehouse) -> None:
    search = "?from=2021-04&to=2021-09&grain=quarter&region=华东&tier=白金&lang=en"
    fresh_page.open("/overview" + search)
    assert fresh_page.text("#f-from") == "Apr 2021"
    assert fresh_page.text("#f-to") == "Sep 2021"
    assert fresh_page.text("#f-grain") == "Quarter"
    assert fresh_page.text("#f-region") == "East"
    assert "Platinum" in fresh_page.text("#f-tier")
    assert card(fresh_page, "revenue") == expected_card(demo_wh, "revenue", search)
    # navigation keeps the view
    href = fresh_page.tab.get_attribute("#nav-members", "href")
    assert parse_qs(urlparse(href).query)["region"] == ["华东"]
    assert fresh_page.errors == []


def test_clicking_a_bar_filters_and_drills_down(page: Page) -> None:
    page.open("/overview")
    bars = page.tab.locator('[id*="\\"dim\\":\\"region\\""] .bars path')
    assert bars.count() > 0
    title = page.text("#page-overview .card.wide:last-child .card-title")
    bars.first.click(force=True)
    page.tab.wait_for_function("() => location.search.includes('region=')", timeout=10_000)
    # the breakdown's title names the next level down (城市)
    page.wait_for_text("#page-overview .card.wide:last-child .card-title", not_equal=title)
    region = query(page)["region"][0]
    # the breakdown now shows the region's cities: a click there narrows to a city
    cities = page.tab.locator('[id*="\\"dim\\":\\"city\\""] .bars path')
    assert cities.count() > 0
    assert page.text("#f-region") == region
    revenue = card(page, "revenue")
    cities.first.click(force=True)
    page.tab.wait_for_function("() => location.search.includes('city=')", timeout=10_000)
    page.wait_for_text('[data-metric="revenue"] .kpi-value', not_equal=revenue)
    assert query(page)["region"] == [region]
    assert page.text("#f-city") == query(page)["city"][0]
    # reset clears every filter
    narrowed = card(page, "revenue")
    page.tab.click("#f-reset")
    page.tab.wait_for_function("() => !location.search.includes('region=')", timeout=10_000)
    assert page.wait_for_text('[data-metric="revenue"] .kpi-value', not_equal=narrowed)
    assert "city" not in query(page)


def test_customer_360_search(page: Page) -> None:
    page.open("/customer")
    page.tab.fill("#c360-query", "M000012")
    page.tab.click("#c360-go")
    hit = page.tab.locator(".c360-hit").first
    hit.wait_for(timeout=10_000)
    customer_id = hit.inner_text()
    hit.click()
    page.tab.wait_for_selector("#c360-profile", timeout=10_000)
    page.settle()
    profile = page.text("#c360-profile")
    assert customer_id in profile
    assert "****" in profile  # the phone is masked (D7)
    assert page.errors == []


@pytest.mark.parametrize("name", ["overview", "members", "segments", "churn", "customer"])
def test_phone_width_has_no_horizontal_scroll(phone: Page, name: str) -> None:
    phone.open(f"/{name}")
    width = phone.tab.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{name} scrolls sideways at phone width: {width}"
    phone.screenshot(f"phone-{name}")


def test_the_api_prefix_is_not_swallowed(server: str) -> None:
    with urllib.request.urlopen(server + "/api/v1/ping", timeout=10) as r:
        assert json.load(r) == {"ok": True}
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server + "/api/v1/no-such-route", timeout=10)
    assert err.value.code == 404
    assert err.value.headers["content-type"].startswith("application/json")
    with urllib.request.urlopen(server + "/members", timeout=10) as r:
        assert r.headers["content-type"].startswith("text/html")
