"""Customer lists and the single customer view (D4): churn-risk list, search, 360 record.

These show individual customers, so contact data is masked (D7): phones as ``138****1234``,
e-mails as ``z***@qq.com``, names as the first character and ``*``. A customer outside the scope's
filters or row limits is not listed and has no 360 record (``None``, as for an unknown ID).

>>> mask_phone("13812341234"), mask_email("zhang@qq.com"), mask_name("储玉")
('138****1234', 'z***@qq.com', '储*')
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import ibis
import pandas as pd
from ibis.expr.types import Table

from crmlens.errors import ConfigError
from crmlens.metrics.dimensions import age_band_label
from crmlens.metrics.facts import scoped
from crmlens.metrics.facts import table as cached_table
from crmlens.metrics.scope import Scope
from crmlens.models.model_reads import checked, model_table, records, scored
from crmlens.warehouse.engines import ReadableWarehouse

#: Rows of each history list in a 360 record (latest first).
HISTORY_ROWS = 50
#: The most rows a list returns at once.
MAX_LIMIT = 500
#: Customer master columns shown in lists (contact columns masked).
LIST_COLUMNS = ("name", "phone", "email", "customer_type", "member_tier", "region", "city")
#: Score columns shown in the churn-risk list.
RISK_COLUMNS = (
    "rfm_segment_cn",
    "rfm_segment_en",
    "lifecycle_stage",
    "recency_days",
    "frequency",
    "monetary",
    "clv_12m",
    "churn_risk",
    "churn_reasons_zh",
    "churn_reasons_en",
    "early_warning",
    "warning_no_recent_order",
    "warning_falling_orders",
    "warning_recent_complaint",
)
_ID_TEXT = re.compile(r"^[\w\-.]{1,64}$")


# -- masking ---------------------------------------------------------------------------------
def mask_phone(phone: str | None) -> str | None:
    """``138****1234``: the first 3 and last 4 digits; short numbers keep only the last 2."""
    if phone is None or pd.isna(phone) or not str(phone).strip():
        return None
    p = str(phone).strip()
    if len(p) >= 8:
        return f"{p[:3]}****{p[-4:]}"
    return "****" + p[-2:] if len(p) > 2 else "****"


def mask_email(email: str | None) -> str | None:
    """``z***@qq.com``: the first character of the local part and the domain."""
    if email is None or pd.isna(email) or not str(email).strip():
        return None
    local, at, domain = str(email).strip().partition("@")
    return f"{local[:1]}***@{domain}" if at else "***"


def mask_name(name: str | None) -> str | None:
    """``储*``: the first character (the surname) and one ``*`` per further character, at most 2."""
    if name is None or pd.isna(name) or not str(name).strip():
        return None
    n = str(name).strip()
    return n[0] + "*" * min(len(n) - 1, 2)


def _masked(frame: pd.DataFrame) -> pd.DataFrame:
    for column, mask in (("name", mask_name), ("phone", mask_phone), ("email", mask_email)):
        if column in frame.columns:
            frame[column] = [mask(v) for v in frame[column]]
    return frame


def _customers(wh: ReadableWarehouse, scope: Scope | None) -> Table:
    """The customers ``scope`` allows (all of them without one)."""
    if scope is None or not scope.constraints():
        return cached_table(wh, "customers")  # type: ignore[arg-type]
    return scoped(wh, "customers", scope)  # type: ignore[arg-type]


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise ConfigError(f"offset must be 0 or more, got {offset}")


# -- churn-risk list -------------------------------------------------------------------------
def _at_risk(
    wh: ReadableWarehouse, scope: Scope, min_risk: float, early_warning_only: bool
) -> Table:
    if not 0.0 <= min_risk <= 1.0:
        raise ConfigError(f"min_risk must be between 0 and 1, got {min_risk}")
    s = scored(wh, scope)
    s = s.filter(s.churn_risk.notnull(), s.churn_risk >= min_risk)
    return s.filter(s.early_warning) if early_warning_only else s


def churn_risk_list(
    wh: ReadableWarehouse,
    scope: Scope,
    *,
    limit: int = 50,
    offset: int = 0,
    min_risk: float = 0.0,
    early_warning_only: bool = False,
) -> pd.DataFrame:
    """Customers by churn risk, highest first (then by ID), ``limit`` rows from ``offset``:
    ``customer_id``, masked name, phone and e-mail, type, tier, region, city and
    :data:`RISK_COLUMNS` (reasons in zh and en, the early-warning flags)."""
    _check_page(limit, offset)
    s = _at_risk(wh, scope, min_risk, early_warning_only)
    page = s.order_by([ibis.desc(s.churn_risk), s.customer_id]).limit(limit, offset=offset)
    page = page.select("customer_id", *RISK_COLUMNS)
    c = cached_table(wh, "customers")  # type: ignore[arg-type]
    c = c.select(c__id=c.customer_id, **{col: c[col] for col in LIST_COLUMNS})
    j = page.left_join(c, page.customer_id == c.c__id)
    expr = j.select("customer_id", *LIST_COLUMNS, *RISK_COLUMNS).order_by(
        [ibis.desc("churn_risk"), "customer_id"]
    )
    return _masked(checked(wh, wh.execute(expr), "model_customer_scores"))


def churn_risk_count(
    wh: ReadableWarehouse, scope: Scope, *, min_risk: float = 0.0, early_warning_only: bool = False
) -> int:
    """How many customers :func:`churn_risk_list` pages through."""
    return int(wh.execute(_at_risk(wh, scope, min_risk, early_warning_only).count()))


# -- search ----------------------------------------------------------------------------------
def search_customers(
    wh: ReadableWarehouse, query: str, *, limit: int = 20, scope: Scope | None = None
) -> pd.DataFrame:
    """Customers whose ID starts with ``query`` (any case), whose phone is ``query`` (all digits,
    7 or more) or ends with it (4 digits), or whose name contains it; exact ID first, then by ID.

    Columns: ``customer_id``, masked name, phone and e-mail, type, tier, region, city,
    ``signup_date`` and, when built, ``rfm_segment_cn``, ``lifecycle_stage``, ``clv_12m`` and
    ``churn_risk``. The query is a value compared in the database, never part of the SQL text.
    """
    _check_page(limit, 0)
    q = (query or "").strip()
    if not q or len(q) > 64:
        raise ConfigError(f"search text must be 1 to 64 characters, got {len(q)}")
    c = _customers(wh, scope)
    found = c.customer_id.upper().startswith(q.upper())
    if q.isdigit() and len(q) == 4:
        found |= c.phone.endswith(q)
    elif q.isdigit() and len(q) >= 7:
        found |= c.phone == q
    if not q.isdigit():
        found |= c.name.contains(q)
    hits = c.filter(found)
    hits = hits.order_by([(hits.customer_id.upper() != q.upper()), hits.customer_id]).limit(limit)
    hits = hits.select("customer_id", *LIST_COLUMNS, "signup_date")
    s = model_table(wh, "model_customer_scores")
    s = s.select(
        s__id=s.customer_id,
        rfm_segment_cn=s.rfm_segment_cn,
        lifecycle_stage=s.lifecycle_stage,
        clv_12m=s.clv_12m,
        churn_risk=s.churn_risk,
    )
    j = hits.left_join(s, hits.customer_id == s.s__id).drop("s__id")
    frame = wh.execute(j)
    exact = frame["customer_id"].str.upper() != q.upper()
    frame = frame.assign(_rest=exact).sort_values(["_rest", "customer_id"]).drop(columns="_rest")
    return _masked(frame.reset_index(drop=True))


# -- the single customer view ----------------------------------------------------------------
def customer_360(
    wh: ReadableWarehouse, customer_id: str, scope: Scope | None = None
) -> dict[str, Any] | None:
    """Everything about one customer, or None when unknown or outside ``scope``'s filters and
    row limits. Keys:

    - ``profile``: the master record, contact data masked, with ``age_band`` (on ``scope.end``,
      else today) instead of the birth date;
    - ``scores``: the latest build's ``model_customer_scores`` row (None before a build or for a
      customer it did not score);
    - ``orders``: totals (``orders``, ``refunds``, ``revenue``, first and last order) and
      ``latest``: the latest :data:`HISTORY_ROWS` orders with their line count;
    - ``tickets``, ``surveys``: the latest :data:`HISTORY_ROWS` each;
    - ``events``: ``total`` app events (under the customer's anonymous ID) and the ``latest``;
    - ``touches``: campaign messages sent, opened, clicked, converted, bounced, first/last sent.

    The visibility of the customer is what the scope decides; the history shown is the
    customer's whole history.
    """
    cid = (customer_id or "").strip()
    if not _ID_TEXT.match(cid):
        return None
    c = _customers(wh, scope)
    found = wh.execute(c.filter(c.customer_id == cid).limit(1))
    if found.empty:
        return None
    row = records(found.drop(columns=[x for x in ("ts",) if x in found.columns]))[0]
    return {
        "profile": _profile(row, scope.end if scope else date.today()),
        "scores": _scores(wh, cid),
        "orders": _orders(wh, cid),
        "tickets": _latest(wh, "service_tickets", cid, "opened_at", drop=("contact_phone",)),
        "surveys": _latest(wh, "survey_responses", cid, "responded_at"),
        "events": _events(wh, row.get("anon_id")),
        "touches": _touches(wh, cid),
    }


_HIDDEN = ("load_id", "loaded_at", "birth_date", "name", "phone", "email")


def _profile(row: dict[str, Any], day: date) -> dict[str, Any]:
    born = row.get("birth_date")
    band = None
    if born is not None:
        born = pd.Timestamp(born).date()
        age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
        band = age_band_label(age)
    out = {k: v for k, v in row.items() if k not in _HIDDEN}
    return out | {
        "name": mask_name(row.get("name")),
        "phone": mask_phone(row.get("phone")),
        "email": mask_email(row.get("email")),
        "age_band": band,
    }


def _scores(wh: ReadableWarehouse, cid: str) -> dict[str, Any] | None:
    s = model_table(wh, "model_customer_scores")
    frame = wh.execute(s.filter(s.customer_id == cid))
    return records(frame, "model_customer_scores")[0] if len(frame) else None


def _orders(wh: ReadableWarehouse, cid: str) -> dict[str, Any]:
    o = cached_table(wh, "orders")  # type: ignore[arg-type]
    mine = o.filter(o.customer_id == cid)
    totals = wh.execute(
        mine.aggregate(
            orders=(~mine.is_refund.fill_null(False)).sum(),
            refunds=mine.is_refund.fill_null(False).sum(),
            revenue=mine.amount.sum(),
            first_order=mine.order_time.min(),
            last_order=mine.order_time.max(),
        )
    )
    latest = mine.order_by([ibis.desc(mine.order_time), mine.order_id]).limit(HISTORY_ROWS)
    latest = latest.select(
        "order_id",
        "order_time",
        "store_id",
        "order_channel",
        "payment_method",
        "amount",
        "status",
        "is_refund",
    )
    lines = cached_table(wh, "order_lines")  # type: ignore[arg-type]
    counted = lines.semi_join(latest, lines.order_id == latest.order_id)
    counts = counted.group_by(l__order=counted.order_id).aggregate(lines=counted.count())
    j = latest.left_join(counts, latest.order_id == counts.l__order).drop("l__order")
    j = j.mutate(lines=j.lines.fill_null(0)).order_by([ibis.desc("order_time"), "order_id"])
    summary = records(totals)[0]
    summary = {
        k: (0 if v is None and k in ("orders", "refunds") else v) for k, v in summary.items()
    }
    return summary | {"latest": records(wh.execute(j))}


def _latest(
    wh: ReadableWarehouse, name: str, cid: str, time: str, drop: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    t = cached_table(wh, name)  # type: ignore[arg-type]
    keep = [c for c in t.columns if c not in (*drop, "load_id", "loaded_at")]
    expr = t.filter(t.customer_id == cid).order_by(ibis.desc(t[time])).limit(HISTORY_ROWS)
    return records(wh.execute(expr.select(*keep)))


def _events(wh: ReadableWarehouse, anon_id: str | None) -> dict[str, Any]:
    if not anon_id:
        return {"total": 0, "latest": []}
    e = cached_table(wh, "app_events")  # type: ignore[arg-type]
    mine = e.filter(e.user_id == anon_id)
    keep = ["event_time", "app", "event_name", "page", "device", "duration_seconds", "success"]
    latest = mine.order_by([ibis.desc(mine.event_time), mine.event_id]).limit(HISTORY_ROWS)
    return {
        "total": int(wh.execute(mine.count())),
        "latest": records(wh.execute(latest.select(*keep))),
    }


def _touches(wh: ReadableWarehouse, cid: str) -> dict[str, Any]:
    t = cached_table(wh, "campaign_touches")  # type: ignore[arg-type]
    mine = t.filter(t.customer_id == cid)
    frame = wh.execute(
        mine.aggregate(
            sent=mine.count(),
            opened=mine.opened_at.notnull().sum(),
            clicked=mine.clicked_at.notnull().sum(),
            converted=mine.converted_at.notnull().sum(),
            bounced=mine.bounced.fill_null(False).sum(),
            first_sent=mine.sent_at.min(),
            last_sent=mine.sent_at.max(),
        )
    )
    out = records(frame)[0]
    return {
        k: (0 if v is None and k not in ("first_sent", "last_sent") else v) for k, v in out.items()
    }


__all__ = [
    "churn_risk_count",
    "churn_risk_list",
    "customer_360",
    "mask_email",
    "mask_name",
    "mask_phone",
    "search_customers",
]
