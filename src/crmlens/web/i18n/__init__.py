"""The dashboard's languages: Simplified Chinese (default), Traditional Chinese and English.

Labels come from three places, never typed twice:

- ``catalogue.json``: the dashboard's own texts, ``key → [Simplified, English]``;
- the metric registry, the dimensions and the schema (``label_zh`` / ``label_en``);
- ``values.json``: English names of well-known stored values (tiers, regions, customer types);
- the models: lifecycle stage names from :data:`crmlens.models.lifecycle.STAGES`.

Codes the loader writes (quarantine rules and actions, load statuses) are catalogue entries
``rule.<code>``, ``rule_action.<code>`` and ``load_status.<code>``; every ``default_<column>`` rule
shares ``rule.default``. An unknown code is shown as it is.

Traditional Chinese is generated from the Simplified text with a character table (``hant.json``;
a few words whose character depends on the word, such as 面包 → 麵包, are listed whole).

>>> text("nav.overview", "zh-TW"), text("nav.overview", "en")
('總覽', 'Overview')
>>> metric_label("new_customers", "zh-TW")
'新增客戶數'
>>> stage_label("at_risk", "zh-TW"), rule_label("missing_required", "en")
('流失風險', 'Required value missing')
>>> number(1234567, "zh-CN"), number(1234567, "en"), number(123456789, "zh-TW")
('123.5万', '1,234,567', '1.23億')
"""

from __future__ import annotations

import json
import math
from datetime import date
from functools import cache
from importlib import resources
from typing import Literal

from crmlens.metrics import DIMENSIONS, metric
from crmlens.metrics.metric import Metric
from crmlens.models.lifecycle import STAGES

Lang = Literal["zh-CN", "zh-TW", "en"]
LANGS: tuple[Lang, ...] = ("zh-CN", "zh-TW", "en")
DEFAULT_LANG: Lang = "zh-CN"


def _load(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


@cache
def _catalogue() -> dict[str, list[str]]:
    return _load("catalogue.json")


@cache
def _values() -> dict[str, str]:
    return _load("values.json")


@cache
def _hant() -> tuple[dict[str, str], dict[int, str]]:
    table = _load("hant.json")
    return table["phrases"], str.maketrans(table["chars"])


def check_lang(lang: str | None) -> Lang:
    """``lang`` if it is one of :data:`LANGS`, else the default (a bad URL must not break a page)."""
    return lang if lang in LANGS else DEFAULT_LANG  # type: ignore[return-value]


def traditional(simplified: str) -> str:
    """Simplified Chinese text in Traditional characters.

    >>> traditional("会员数与目标"), traditional("夹心面包")
    ('會員數與目標', '夾心麵包')
    """
    phrases, chars = _hant()
    # a few characters depend on the word (面包 → 麵包 but 页面 → 頁面): words first
    for zh, hant in phrases.items():
        simplified = simplified.replace(zh, hant)
    return simplified.translate(chars)


def pick(zh: str, en: str, lang: str) -> str:
    """The label of a ``(label_zh, label_en)`` pair in ``lang``."""
    if lang == "en":
        return en
    return traditional(zh) if lang == "zh-TW" else zh


def text(key: str, lang: str, **fields: object) -> str:
    """The catalogue text ``key`` in ``lang``, with ``{field}`` placeholders filled in.

    An unknown key raises KeyError: a missing label is a bug to find in tests, not a blank.
    """
    return template(key, lang).format(**fields)


def template(key: str, lang: str) -> str:
    """The catalogue text ``key`` in ``lang`` with its ``{field}`` placeholders unfilled."""
    zh, en = _catalogue()[key]
    return pick(zh, en, lang)


def keys() -> list[str]:
    """Every catalogue key (for tests)."""
    return list(_catalogue())


def metric_label(name: str | Metric, lang: str) -> str:
    """A KPI's label from the metric registry."""
    m = metric(name) if isinstance(name, str) else name
    return pick(m.label_zh, m.label_en, lang)


def dim_label(name: str, lang: str) -> str:
    """A dimension's label (大区, Region, …) from :data:`crmlens.metrics.DIMENSIONS`."""
    d = DIMENSIONS[name]
    return pick(d.label_zh, d.label_en, lang)


def value_label(raw: object, lang: str) -> str:
    """A stored value as shown: English names for well-known values, Traditional characters."""
    s = "—" if raw is None else str(raw)
    if lang == "en":
        return _values().get(s, s)
    return traditional(s) if lang == "zh-TW" else s


def stage_label(code: object, lang: str) -> str:
    """A lifecycle stage's name from its code (:data:`~crmlens.models.lifecycle.STAGES`); an unknown
    code as it is, a missing one as a dash.

    >>> stage_label("revenue_growth", "zh-CN"), stage_label("revenue_growth", "en")
    ('收入增长期', 'Revenue growth')
    >>> stage_label("dormant", "zh-CN"), stage_label(None, "en")
    ('dormant', '—')
    """
    if code is None or code != code:  # None or NaN from a frame
        return "—"
    names = STAGES.get(str(code))
    return str(code) if names is None else pick(*names, lang)


#: Rules named ``default_<column>`` (a missing or bad value replaced by the mapping's default) share
#: one label: the column is shown next to the rule anyway.
DEFAULT_RULE_PREFIX = "default_"


def _code_key(prefix: str, code: str) -> str | None:
    key = f"{prefix}.{code}"
    if key in _catalogue():
        return key
    if prefix == "rule" and code.startswith(DEFAULT_RULE_PREFIX):
        return "rule.default"
    return None


def code_label(prefix: str, code: object, lang: str) -> str:
    """The catalogue name of code ``code`` under ``prefix`` (``rule``, ``rule_action``,
    ``load_status``); an unknown code as it is, a missing one as a dash.

    >>> code_label("rule", "default_member_tier", "en"), code_label("rule", "new_rule", "zh-CN")
    ('Missing or invalid: default filled in', 'new_rule')
    """
    if code is None or code != code:
        return "—"
    key = _code_key(prefix, str(code))
    return str(code) if key is None else text(key, lang)


def has_code_label(prefix: str, code: str) -> bool:
    """Whether ``code`` has a catalogue name under ``prefix`` (for tests)."""
    return _code_key(prefix, code) is not None


def rule_label(rule: object, lang: str) -> str:
    """A quarantine rule's name (``missing_required`` → 必填值缺失)."""
    return code_label("rule", rule, lang)


def action_label(action: object, lang: str) -> str:
    """A quarantine action's name (``rejected`` → 整行拒收)."""
    return code_label("rule_action", action, lang)


def number(value: float | None, lang: str, decimals: int = 1) -> str:
    """A count or amount for a card or an axis: 万/亿 in Chinese, thousands separators in English.

    >>> number(9999, "zh-CN"), number(12345.6, "en", 0), number(None, "en")
    ('9,999', '12,346', '—')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    v = float(value)
    if lang != "en":
        for size, unit in ((1e8, "亿"), (1e4, "万")):
            if abs(v) >= size:
                shown = f"{v / size:,.{2 if size == 1e8 else decimals}f}{unit}"
                return traditional(shown) if lang == "zh-TW" else shown
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.{decimals}f}"
    if float(v).is_integer() or decimals == 0 or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{decimals}f}"


def metric_value(m: Metric, value: float | None, lang: str) -> str:
    """A KPI value with its unit: ratios as percent, money with ¥ and 万/亿, the rest as declared.

    >>> metric_value(metric("revenue"), 2345678.0, "zh-CN"), metric_value(metric("aov"), 88.5, "en")
    ('¥234.57万', '¥88.50')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if m.unit == "money":
        return "¥" + (number(value, lang, 2) if abs(value) >= 1e4 else f"{value:,.2f}")
    if m.unit == "count":
        return number(value, lang, m.fmt.decimals or 1)
    shown = m.fmt(value)
    if m.unit in ("days", "hours"):
        # " d" / " h" are English abbreviations; Chinese uses the word
        word = {"days": ("天", " days"), "hours": ("小时", " h")}[m.unit]
        shown = f"{value:,.1f}" + pick(word[0], word[1], lang)
    return shown


def period_label(label: str, lang: str) -> str:
    """A period label from the metrics layer (``2021-03``, ``2021-Q1``, ``2021-W05``, ``2021``,
    ``2021-03-05``) in the reader's language.

    >>> period_label("2021-03", "zh-CN"), period_label("2021-03", "en"), period_label("2021-Q1", "zh-TW")
    ('2021年3月', 'Mar 2021', '2021年第1季度')
    """
    parts = label.split("-")
    if len(parts) == 2 and parts[1].isdigit():
        year, month = int(parts[0]), int(parts[1])
        if lang == "en":
            return date(year, month, 1).strftime("%b %Y")
        return f"{year}年{month}月"
    if len(parts) == 2 and parts[1].startswith("Q"):
        return label if lang == "en" else pick(f"{parts[0]}年第{parts[1][1:]}季度", label, lang)
    if len(parts) == 2 and parts[1].startswith("W"):
        return label if lang == "en" else pick(f"{parts[0]}年第{int(parts[1][1:])}周", label, lang)
    if len(parts) == 3:
        d = date(int(parts[0]), int(parts[1]), int(parts[2]))
        return d.strftime("%d %b %Y") if lang == "en" else f"{d.year}年{d.month}月{d.day}日"
    return label if lang == "en" or not label.isdigit() else f"{label}年"


def day_label(day: date | None, lang: str) -> str:
    """A calendar day: ``2021年12月31日`` or ``31 Dec 2021``."""
    if day is None:
        return "—"
    return period_label(day.isoformat(), lang)
