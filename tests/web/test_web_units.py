"""The dashboard's pieces without a browser: catalogues, Traditional Chinese, number and date
formats, the URL state, and page rendering against the metrics layer."""

from __future__ import annotations

import re
from datetime import date

import pytest

from crmlens.metrics import DIMENSIONS, REGISTRY
from crmlens.metrics.cache import ResultCache
from crmlens.warehouse import Warehouse
from crmlens.web import DEFAULT_PORT, warm
from crmlens.web.app import render_cached
from crmlens.web.data import Data
from crmlens.web.i18n import (
    keys,
    metric_label,
    number,
    period_label,
    template,
    text,
    traditional,
    value_label,
)
from crmlens.web.pages import PAGES, PageContext, render_page
from crmlens.web.pages.quality import tables_card
from crmlens.web.state import View

_HAN = re.compile(r"[\u4e00-\u9fff]")


class _Ones(dict):
    def __missing__(self, name: str) -> str:
        return "1"


def _filled(key: str, lang: str) -> str:
    """A catalogue text with every ``{field}`` filled in with ``1``."""
    return template(key, lang).format_map(_Ones())


def test_every_catalogue_entry_has_chinese_and_english() -> None:
    for key in keys():
        zh, en = _filled(key, "zh-CN"), _filled(key, "en")
        assert _HAN.search(zh) or key.startswith("lang.") or "{" in template(key, "zh-CN"), key
        assert not _HAN.search(en) or key.startswith("lang."), f"{key}: Chinese in English"


def test_traditional_chinese_is_generated_not_copied() -> None:
    assert traditional("客户管理数据看板") == "客戶管理數據看板"
    assert traditional("夹心面包和页面") == "夾心麵包和頁面"
    assert metric_label("repurchase_rate", "zh-TW") == "複購率"
    assert text("nav.retention", "zh-TW") == "留存與生命週期"
    # every label the registry and the dimensions declare converts (no character left behind
    # that the table knows a Traditional form of, and the text changes where it should)
    assert metric_label("members", "zh-TW") == "會員數"
    assert DIMENSIONS["region"].label_zh == "大区" and traditional("大区") == "大區"
    assert len({traditional(m.label_zh) for m in REGISTRY.values()}) == len(REGISTRY)


def test_numbers_and_dates_per_locale() -> None:
    assert number(12_345, "zh-CN") == "1.2万"
    assert number(250_000_000, "zh-CN") == "2.50亿"
    assert number(250_000_000, "zh-TW") == "2.50億"
    assert number(12_345, "en") == "12,345"
    assert period_label("2021-03", "en") == "Mar 2021"
    assert period_label("2021-03", "zh-CN") == "2021年3月"
    assert period_label("2021-W05", "zh-TW") == "2021年第5週"
    assert value_label("白金", "en") == "Platinum"
    assert value_label("烟台", "zh-TW") == "煙台"


def test_the_url_round_trips_and_ignores_junk() -> None:
    v = View.parse("?from=2021-02&to=2021-05&grain=week&store=S01&tier=白金&lang=zh-TW")
    assert View.parse(v.query()) == v
    junk = View.parse("?from=2021-13&grain=century&lang=fr&nonsense=1&city=")
    assert junk == View()
    assert View.parse("?from=2021-06&to=2021-01").start == "2021-01"  # swapped, not an error


def test_picking_a_region_clears_the_finer_levels() -> None:
    v = View.parse("?region=华东&city=烟台&store=S01")
    assert v.drill_level() is None
    assert v.with_filter("region", ["华南"]).filters() == {"region": ("华南",)}
    assert v.with_filter("city", ["青岛"]).filters() == {"region": ("华东",), "city": ("青岛",)}
    assert View.parse("?region=华东").drill_level() == "city"


def test_default_port() -> None:
    assert DEFAULT_PORT == 8050


@pytest.mark.parametrize("lang", ["zh-CN", "zh-TW", "en"])
def test_pages_render_for_a_filtered_scope(demo_wh: Warehouse, lang: str) -> None:
    """Every page renders server-side for a narrow filter (city × tier × quarter) in each
    language, with an empty state rather than an error where a KPI cannot be filtered so."""
    data = Data(demo_wh, ResultCache(demo_wh))
    view = View.parse(f"?city=烟台&tier=白金&grain=quarter&lang={lang}")
    ctx = PageContext(data, view, data.scope_of(view), lang, view.query())
    for name in PAGES:
        out = render_page(f"/{name}", ctx)
        assert "error-banner" not in repr(out), name
    assert data.scope_of(View()).end == date(2021, 12, 31)


def test_warm_up_fills_the_cache_with_every_default_page(demo_wh: Warehouse) -> None:
    cache = ResultCache(demo_wh)
    data = Data(demo_wh, cache)
    warm(data)
    misses = cache.misses
    for name in PAGES:
        assert render_cached(data, f"/{name}", "") is render_cached(data, f"/{name}", "")
    tables_card(data, "en")  # the quality page's duplicate keys, asked once the page is shown
    assert cache.misses == misses  # every default page was answered from the cache
