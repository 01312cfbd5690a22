"""Codes the dashboard must never show raw: lifecycle stages, quarantine rules and actions, load
statuses; and the "model results as of …" note on the cards built from the customer models.

The rule test finds every rule name the loader and the shipped mappings can write — the loader's
own tables, the demo export's mappings, and every rule written as a literal in ``crmlens.ingest``
and ``crmlens.warehouse.loading`` (found by reading their source) — so a new rule without a label in
both languages fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import pkgutil
import re
import typing
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

import crmlens.ingest
import crmlens.warehouse.loading
from crmlens.ingest.attributes import _OWNER_TABLES
from crmlens.ingest.demo_sources import DEMO_SOURCES
from crmlens.ingest.prepare import OUTLIER_RULES
from crmlens.metrics.cache import ResultCache
from crmlens.metrics.quality import quarantine_summary
from crmlens.models.lifecycle import STAGES
from crmlens.models.views import churn_risk_list, latest_build
from crmlens.warehouse import Warehouse
from crmlens.warehouse.loading.mapping import Infer, Reference, RowRule
from crmlens.warehouse.loading.plan import Check
from crmlens.warehouse.loading.values import BAD_VALUE_RULES
from crmlens.web.data import Data
from crmlens.web.i18n import (
    action_label,
    code_label,
    has_code_label,
    rule_label,
    stage_label,
    text,
    traditional,
)
from crmlens.web.pages import PageContext, model_as_of, render_page
from crmlens.web.state import View

_HAN = re.compile(r"[\u4e00-\u9fff]")
#: The classes that carry a quarantine rule and its action, by name as the source calls them.
_RULE_CLASSES = {"Check": Check, "RowRule": RowRule, "Infer": Infer, "Reference": Reference}


# -- finding every rule name -----------------------------------------------------------------
def _literal(node: ast.expr | None) -> str | None:
    """A string literal's value; an f-string's leading text plus ``*`` (``default_{x}`` →
    ``default_*``); None for anything computed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        head = node.values[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value + "*"
    return None


def _argument(call: ast.Call, cls: type, name: str) -> ast.expr | None:
    """The expression a call passes for dataclass field ``name`` (by position or keyword)."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    names = [f.name for f in dataclasses.fields(cls)]
    if name not in names:
        return None
    i = names.index(name)
    return call.args[i] if i < len(call.args) else None


def _modules() -> Iterator[Path]:
    for package in (crmlens.ingest, crmlens.warehouse.loading):
        for info in pkgutil.iter_modules(package.__path__):
            module = import_module(f"{package.__name__}.{info.name}")
            yield Path(module.__file__ or "")


def _literals_in_source() -> tuple[set[str], set[str]]:
    """Rule names and actions written as literals in the loader's and the ingest code."""
    rules: set[str] = set()
    actions: set[str] = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            cls = _RULE_CLASSES.get(name or "")
            if cls is None:
                continue
            if (rule := _literal(_argument(node, cls, "rule"))) is not None:
                rules.add(rule)
            if (action := _literal(_argument(node, cls, "action"))) is not None:
                actions.add(action)
    return rules, actions


def every_rule() -> set[str]:
    """Every rule name the loader and the shipped mappings can write (``default_*`` stands for
    the ``default_<column>`` rules)."""
    rules, _ = _literals_in_source()
    rules |= set(BAD_VALUE_RULES.values())
    rules |= {r.rule for group in OUTLIER_RULES.values() for r in group}
    rules |= {owner[2] for owner in _OWNER_TABLES.values()}
    for spec in DEMO_SOURCES:
        rules |= {r.rule for r in (*spec.rules, *spec.infer, *spec.references)}
    return rules


def every_action() -> set[str]:
    _, actions = _literals_in_source()
    return actions | set(typing.get_args(typing.get_type_hints(RowRule)["action"]))


def _example(rule: str) -> str:
    return rule[:-1] + "member_tier" if rule.endswith("*") else rule


def test_the_rule_search_finds_the_known_rules() -> None:
    """The search itself works (else the label test below would pass on nothing)."""
    rules = every_rule()
    known = {"missing_required", "bad_number", "invalid_phone", "orphan_line", "unknown_sku"}
    assert known | {"default_*", "session_under_10s", "unknown_customer"} <= rules
    assert {"rejected", "cleared", "inferred", "flagged"} <= every_action()


@pytest.mark.parametrize("rule", sorted(every_rule()))
def test_every_rule_the_loader_can_write_has_a_label(rule: str) -> None:
    code = _example(rule)
    assert has_code_label("rule", code), f"add rule.{rule} to web/i18n/catalogue.json"
    zh, en = rule_label(code, "zh-CN"), rule_label(code, "en")
    assert _HAN.search(zh) and not _HAN.search(en) and en != code, (rule, zh, en)
    assert rule_label(code, "zh-TW") == traditional(zh)


@pytest.mark.parametrize("action", sorted(every_action()))
def test_every_quarantine_action_has_a_label(action: str) -> None:
    assert has_code_label("rule_action", action), f"add rule_action.{action} to the catalogue"
    zh, en = action_label(action, "zh-CN"), action_label(action, "en")
    assert _HAN.search(zh) and not _HAN.search(en) and en != action


def test_unknown_codes_show_as_they_are() -> None:
    assert rule_label("brand_new_rule", "zh-CN") == "brand_new_rule"
    assert action_label("archived", "en") == "archived"
    assert code_label("load_status", "ok", "zh-CN") == "成功"
    assert rule_label(None, "en") == "—"
    assert rule_label("out_of_range", "zh-TW") == "數值超出有效範圍"


# -- lifecycle stages ------------------------------------------------------------------------
def test_stage_names_come_from_the_model() -> None:
    for code, (zh, en) in STAGES.items():
        assert stage_label(code, "zh-CN") == zh
        assert stage_label(code, "en") == en
        assert stage_label(code, "zh-TW") == traditional(zh)
    assert stage_label("revenue_growth", "zh-TW") == "收入增長期"
    assert stage_label("acquisition", "zh-TW") == "獲取期"
    assert stage_label("referral", "zh-TW") == "推薦期"
    assert stage_label("hibernating", "zh-CN") == "hibernating"  # unknown: as it is
    assert stage_label(None, "zh-CN") == "—"


# -- pages on the demo warehouse -------------------------------------------------------------
def _context(wh: Warehouse, search: str) -> PageContext:
    data = Data(wh, ResultCache(wh))
    view = View.parse(search)
    return PageContext(data, view, data.scope_of(view), view.lang, search)


def _components(node: Any) -> Iterator[Any]:
    """Every Dash component under ``node``, depth first."""
    if isinstance(node, list | tuple):
        for child in node:
            yield from _components(child)
        return
    if hasattr(node, "to_plotly_json"):
        yield node
        yield from _components(getattr(node, "children", None))


def _texts(node: Any) -> list[str]:
    out: list[str] = []
    for c in _components(node):
        children = getattr(c, "children", None)
        for child in children if isinstance(children, list) else [children]:
            if isinstance(child, str):
                out.append(child)
    return out


def _notes(page: list[Any]) -> list[Any]:
    return [c for c in _components(page) if "model-note" in (getattr(c, "className", None) or "")]


@pytest.mark.parametrize(
    ("name", "cards"), [("segments", 4), ("churn", 4), ("value", 3), ("overview", 0)]
)
def test_model_cards_say_they_ignore_the_date_range(
    demo_wh: Warehouse, name: str, cards: int
) -> None:
    ctx = _context(demo_wh, "?from=2021-01&to=2021-03")
    as_of = latest_build(demo_wh)["as_of"]
    assert model_as_of(ctx.data) == as_of
    notes = _notes(render_page(f"/{name}", ctx))
    assert len(notes) == cards, name
    day = f"{as_of.year}年{as_of.month}月{as_of.day}日"
    assert all(n.children == f"截至{day}的模型结果（不随日期筛选变化）" for n in notes)
    en = _notes(render_page(f"/{name}", _context(demo_wh, "?lang=en")))
    assert all("not affected by the date range" in n.children for n in en)


def test_lifecycle_stage_shows_its_name(demo_wh: Warehouse) -> None:
    ctx = _context(demo_wh, "")
    risky = ctx.data.get(churn_risk_list, ctx.scope, limit=1).iloc[0]
    code = risky["lifecycle_stage"]
    assert code in STAGES
    for lang in ("zh-CN", "zh-TW", "en"):
        search = f"?lang={lang}&id={risky['customer_id']}"
        record = _texts(render_page("/customer", _context(demo_wh, search)))
        assert stage_label(code, lang) in record and code not in record, lang
        assert text("field.lifecycle", lang) in record
        risk_list = _texts(render_page("/churn", _context(demo_wh, f"?lang={lang}")))
        assert stage_label(code, lang) in risk_list and code not in risk_list
    # the 360 scores card carries the customer's own as-of day
    page = render_page("/customer", _context(demo_wh, f"?id={risky['customer_id']}"))
    assert [n.to_plotly_json()["props"]["data-as-of"] for n in _notes(page)] == [
        latest_build(demo_wh)["as_of"].isoformat()
    ]


def test_quarantine_shows_names_with_the_code_beside(demo_wh: Warehouse) -> None:
    written = demo_wh.execute(demo_wh.table("quarantine").select("rule", "action").distinct())
    assert len(written), "the demo export has quarantined values"
    for rule in written["rule"]:
        assert has_code_label("rule", rule), rule
    for action in written["action"]:
        assert has_code_label("rule_action", action), action
    shown = quarantine_summary(demo_wh)
    for lang in ("zh-CN", "en"):
        texts = _texts(render_page("/quality", _context(demo_wh, f"?lang={lang}")))
        for rule, action in zip(shown["rule"], shown["action"], strict=True):
            assert rule_label(rule, lang) in texts and rule in texts  # the code in small text
            assert action_label(action, lang) in texts and action not in texts
