"""Read-only views of the customer models' tables for the dashboard and the API.

``crmlens build`` writes the model tables (:mod:`crmlens.schema.model_tables`); the functions here
only read them — no callback or request ever refits a model. They build Ibis expressions, run them
through the warehouse and return pandas DataFrames or plain dicts.

Every customer-level view takes a :class:`~crmlens.metrics.Scope`: its filters and row limits on
the customer's attributes (region, city, home store, customer type, signup channel, tier, gender,
age band on the scope's last day) select the customers, through
:func:`crmlens.metrics.facts.scoped` on the ``customers`` fact like every KPI. A filter on something
a customer does not have (order channel, category, ticket type) is a
:class:`~crmlens.metrics.NotApplicableError`, never silently ignored. The scope's dates do not
apply: the scores are those of the latest build, as of its ``as_of`` day.

Empty or missing model tables raise :class:`~crmlens.errors.NotBuiltError` ("run `crmlens build`").
Customer lists (churn risk, search, 360) are in :mod:`crmlens.models.customer360`, where phones
and e-mails are masked.
"""

from __future__ import annotations

import json
import re
from typing import Any

import ibis
import pandas as pd

from crmlens.errors import ConfigError
from crmlens.metrics.scope import Scope
from crmlens.models.customer360 import (
    churn_risk_count,
    churn_risk_list,
    customer_360,
    mask_email,
    mask_name,
    mask_phone,
    search_customers,
)
from crmlens.models.model_reads import (
    CUSTOMER_DIMENSIONS,
    checked,
    model_table,
    records,
    require_built,
    scored,
)
from crmlens.warehouse.engines import ReadableWarehouse

#: Segment scheme → its column in ``model_customer_scores``.
SCHEMES: dict[str, str] = {
    "cn8": "rfm_segment_cn",
    "en11": "rfm_segment_en",
    "lifecycle": "lifecycle_stage",
}
#: ``model_personas.dimension`` values.
PERSONA_KINDS: tuple[str, ...] = ("member_tier", "rfm_segment_cn", "cluster")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: The JSON columns of ``model_personas`` (value → share), returned as dicts.
PERSONA_MIXES: tuple[str, ...] = (
    "gender_mix",
    "age_mix",
    "top_regions",
    "top_cities",
    "top_departments",
    "top_categories",
    "channel_mix",
    "payment_mix",
    "hour_mix",
)
#: Model groupings :func:`clv_by` accepts besides the customer dimensions.
MODEL_GROUPINGS: dict[str, str] = {
    "segment_cn8": "rfm_segment_cn",
    "segment_en11": "rfm_segment_en",
    "lifecycle": "lifecycle_stage",
    "cluster": "cluster",
}


def _scheme_column(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ConfigError(
            f"unknown segment scheme {scheme!r}; expected one of: {', '.join(SCHEMES)}"
        )
    return SCHEMES[scheme]


# -- segments --------------------------------------------------------------------------------
def segments(wh: ReadableWarehouse, scheme: str) -> pd.DataFrame:
    """``model_segments`` of one scheme (cn8, en11, lifecycle), in display order."""
    _scheme_column(scheme)
    t = model_table(wh, "model_segments")
    expr = t.filter(t.scheme == scheme).order_by(t.position)
    return checked(wh, wh.execute(expr), "model_segments")


def segment_counts(wh: ReadableWarehouse, scope: Scope, scheme: str) -> pd.DataFrame:
    """Per segment of ``scheme``, among the customers ``scope`` allows: ``customers``, ``share``
    (of those in any segment of the scheme), ``revenue`` (their net revenue up to the build),
    ``revenue_share``, ``mean_clv_12m`` and ``mean_churn_risk``, with the segment's names,
    position and suggested action. Every segment is listed, empty ones with 0 customers; without
    filters the counts and revenue equal ``model_segments``'."""
    column = _scheme_column(scheme)
    s = scored(wh, scope)
    s = s.filter(s[column].notnull())
    groups = s.group_by(g__segment=s[column]).aggregate(
        g__customers=s.count(),
        g__revenue=s.monetary.sum(),
        g__clv=s.clv_12m.mean(),
        g__risk=s.churn_risk.mean(),
    )
    seg = model_table(wh, "model_segments")
    seg = seg.filter(seg.scheme == scheme)
    # the model table has columns of the same names (for all customers): take the scoped ones
    j = seg.left_join(groups, seg.segment == groups.g__segment)
    expr = j.select(
        j.segment,
        j.position,
        j.name_zh,
        j.name_en,
        customers=j.g__customers.fill_null(0),
        revenue=j.g__revenue.fill_null(0.0),
        mean_clv_12m=j.g__clv,
        mean_churn_risk=j.g__risk,
        action_zh=j.action_zh,
        action_en=j.action_en,
    ).order_by("position")
    frame = checked(wh, wh.execute(expr), "model_segments")
    total, revenue = frame["customers"].sum(), frame["revenue"].sum()
    frame.insert(5, "share", frame["customers"] / total if total else float("nan"))
    frame.insert(7, "revenue_share", frame["revenue"] / revenue if revenue else float("nan"))
    return frame.astype({"customers": "int64", "position": "int64"})


def rfm_grid(wh: ReadableWarehouse, scope: Scope) -> pd.DataFrame:
    """R score × F score (1-5 each, 5 best) among the buyers ``scope`` allows: ``customers``,
    ``share`` of the buyers, ``mean_monetary`` and ``revenue``; only cells with customers."""
    s = scored(wh, scope)
    s = s.filter(s.r_score.notnull(), s.f_score.notnull())
    expr = (
        s.group_by(["r_score", "f_score"])
        .aggregate(customers=s.count(), mean_monetary=s.monetary.mean(), revenue=s.monetary.sum())
        .order_by([ibis.desc("r_score"), ibis.desc("f_score")])
    )
    frame = checked(wh, wh.execute(expr), "model_customer_scores")
    total = frame["customers"].sum()
    frame.insert(3, "share", frame["customers"] / total if total else float("nan"))
    return frame.astype({"r_score": "int64", "f_score": "int64", "customers": "int64"})


# -- clusters and personas -------------------------------------------------------------------
def clusters(wh: ReadableWarehouse) -> pd.DataFrame:
    """``model_clusters``, by cluster number (0 = largest; -1 = DBSCAN noise)."""
    t = model_table(wh, "model_clusters")
    return checked(wh, wh.execute(t.order_by(t.cluster)), "model_clusters")


def cluster_points(wh: ReadableWarehouse) -> pd.DataFrame:
    """``model_cluster_points``: a sample of customers on two principal components."""
    t = model_table(wh, "model_cluster_points")
    return checked(wh, wh.execute(t.order_by(t.customer_id)), "model_cluster_points")


def personas(wh: ReadableWarehouse, kind: str | None = None) -> pd.DataFrame:
    """``model_personas`` (of one ``kind``: member_tier, rfm_segment_cn or cluster), largest
    groups first within each kind; the mix columns as dicts (value → share, largest first)."""
    t = model_table(wh, "model_personas")
    if kind is not None:
        if kind not in PERSONA_KINDS:
            raise ConfigError(
                f"unknown persona kind {kind!r}; expected one of: {', '.join(PERSONA_KINDS)}"
            )
        t = t.filter(t.dimension == kind)
    frame = checked(
        wh,
        wh.execute(t.order_by([t.dimension, ibis.desc(t.customers), t.group_name])),
        "model_personas",
    )
    for column in PERSONA_MIXES:
        frame[column] = [json.loads(v) if isinstance(v, str) and v else {} for v in frame[column]]
    return frame


# -- CLV -------------------------------------------------------------------------------------
def clv_distribution(wh: ReadableWarehouse, scope: Scope, bins: int = 30) -> pd.DataFrame:
    """Histogram of ``clv_12m`` among the customers ``scope`` allows who have one: ``bin``
    (0 … bins-1), ``lower``, ``upper`` (the last bin includes its upper edge), ``customers`` and
    ``clv_total``; every bin is listed. No rows when no customer in scope has a CLV."""
    if not 1 <= bins <= 200:
        raise ConfigError(f"bins must be between 1 and 200, got {bins}")
    s = scored(wh, scope)
    s = s.filter(s.clv_12m.notnull())
    # one query, the range beside every row: no numbers of this scope's data in the SQL, so
    # another scope's histogram reuses its compiled SQL (crmlens.warehouse.templates)
    s = s.cross_join(s.aggregate(h__lo=s.clv_12m.min(), h__hi=s.clv_12m.max()))
    step = (s.h__hi - s.h__lo) / bins
    step = ibis.ifelse(step == 0, 1.0, step)
    b = ((s.clv_12m - s.h__lo) / step).floor().cast("int64")
    s = s.mutate(h__bin=ibis.ifelse(b >= bins, bins - 1, b))
    counts = wh.execute(
        s.group_by("h__bin").aggregate(
            customers=s.count(), clv_total=s.clv_12m.sum(), lo=s.h__lo.min(), hi=s.h__hi.min()
        )
    ).set_index("h__bin")
    columns = ["bin", "lower", "upper", "customers", "clv_total"]
    if counts.empty:
        checked(wh, pd.DataFrame(), "model_customer_scores")
        return pd.DataFrame(columns=columns)
    lo, hi = float(counts["lo"].iloc[0]), float(counts["hi"].iloc[0])
    width = (hi - lo) / bins or 1.0
    frame = pd.DataFrame({"bin": range(bins)})
    frame["lower"] = lo + frame["bin"] * width
    frame["upper"] = lo + (frame["bin"] + 1) * width
    frame["customers"] = frame["bin"].map(counts["customers"]).fillna(0).astype("int64")
    frame["clv_total"] = frame["bin"].map(counts["clv_total"]).fillna(0.0).astype(float)
    return frame[columns]


def clv_by(wh: ReadableWarehouse, scope: Scope, dimension: str) -> pd.DataFrame:
    """CLV per value of a customer dimension (:data:`CUSTOMER_DIMENSIONS`) or model grouping
    (:data:`MODEL_GROUPINGS`), among the customers ``scope`` allows who have a CLV:
    ``customers``, ``mean_clv_12m``, ``median_clv_12m``, ``total_clv_12m`` and ``share`` of the
    total, largest total first. The first column is named ``dimension``."""
    if dimension in MODEL_GROUPINGS:
        s = scored(wh, scope)
        key = s[MODEL_GROUPINGS[dimension]].cast("string").fill_null("未知")
    elif dimension in CUSTOMER_DIMENSIONS:
        s = scored(wh, scope, [dimension])
        key = s[dimension]
    else:
        raise ConfigError(
            f"cannot group CLV by {dimension!r}; expected one of: "
            f"{', '.join([*CUSTOMER_DIMENSIONS, *MODEL_GROUPINGS])}"
        )
    s = s.filter(s.clv_12m.notnull()).mutate(g__key=key)
    expr = s.group_by(s.g__key).aggregate(
        customers=s.count(),
        mean_clv_12m=s.clv_12m.mean(),
        median_clv_12m=s.clv_12m.median(),
        total_clv_12m=s.clv_12m.sum(),
    )
    frame = checked(wh, wh.execute(expr), "model_customer_scores").rename(
        columns={"g__key": dimension}
    )
    total = frame["total_clv_12m"].sum()
    frame["share"] = frame["total_clv_12m"] / total if total else float("nan")
    frame = frame.sort_values(["total_clv_12m", dimension], ascending=[False, True])
    return frame.astype({"customers": "int64"}).reset_index(drop=True)


def clv_params(wh: ReadableWarehouse) -> dict[str, Any]:
    """The fitted CLV models: ``{"as_of", "models": {model: {"parameters": {name: {"value",
    "standard_error"}}, "log_likelihood", "customers"}}}``."""
    t = model_table(wh, "model_clv_params")
    frame = checked(wh, wh.execute(t.order_by([t.model, t.parameter])), "model_clv_params")
    models: dict[str, Any] = {}
    for row in records(frame):
        entry = models.setdefault(
            row["model"],
            {
                "parameters": {},
                "log_likelihood": row["log_likelihood"],
                "customers": row["customers"],
            },
        )
        entry["parameters"][row["parameter"]] = {
            "value": row["value"],
            "standard_error": row["standard_error"],
        }
    as_of = frame["as_of"].iloc[0]
    return {"as_of": None if pd.isna(as_of) else pd.Timestamp(as_of).date(), "models": models}


# -- churn -----------------------------------------------------------------------------------
def churn_drivers(
    wh: ReadableWarehouse, scope: Scope, *, min_risk: float | None = None
) -> pd.DataFrame:
    """How often each reason is given among the at-risk customers ``scope`` allows — those on the
    early-warning list, or with ``churn_risk >= min_risk`` when given: ``reason_zh``,
    ``reason_en``, ``customers`` and ``share`` of the at-risk customers, most frequent first.

    A reason's numbers are replaced by ``N`` ("购买次数少(1次)" → "购买次数少(N次)"), so customers
    with one or two orders share one driver.
    """
    s = scored(wh, scope)
    s = s.filter(s.early_warning) if min_risk is None else s.filter(s.churn_risk >= min_risk)
    # numbers out in the query (tens of thousands of reason texts become a few hundred), on each
    # distinct text rather than each customer's (at 1M customers 70k texts of 270k customers)
    texts = s.group_by(["churn_reasons_zh", "churn_reasons_en"]).aggregate(n=s.count())
    texts = texts.mutate(
        churn_reasons_zh=texts.churn_reasons_zh.re_replace(_NUMBER.pattern, "N"),
        churn_reasons_en=texts.churn_reasons_en.re_replace(_NUMBER.pattern, "N"),
    )
    combos = wh.execute(
        texts.group_by(["churn_reasons_zh", "churn_reasons_en"]).aggregate(customers=texts.n.sum())
    )
    columns = ["reason_zh", "reason_en", "customers", "share"]
    if combos.empty:
        checked(wh, combos, "model_customer_scores")
        return pd.DataFrame(columns=columns)
    at_risk = int(combos["customers"].sum())
    counts: dict[tuple[str, str], int] = {}
    for zh, en, n in combos.itertuples(index=False):
        pairs = zip(_split(zh, "；"), _split(en, ";"), strict=False)
        for pair in dict.fromkeys((_driver(a), _driver(b)) for a, b in pairs):
            counts[pair] = counts.get(pair, 0) + int(n)
    frame = pd.DataFrame(
        [(zh, en, n) for (zh, en), n in counts.items()], columns=columns[:3]
    ).sort_values(["customers", "reason_zh"], ascending=[False, True], ignore_index=True)
    frame["share"] = frame["customers"] / at_risk
    return frame


def _split(text: object, sep: str) -> list[str]:
    if not isinstance(text, str):
        return []
    return [p.strip() for p in text.split(sep) if p.strip()]


def _driver(reason: str) -> str:
    """The reason without its customer-specific numbers (``802天未购买`` → ``N天未购买``)."""
    return _NUMBER.sub("N", reason)


def churned_purchases(wh: ReadableWarehouse) -> pd.DataFrame:
    """``model_churned_purchases``: top categories by churned lines first, then by lift."""
    t = model_table(wh, "model_churned_purchases")
    expr = t.order_by(
        [
            t.rank_by_lines.isnull(),
            t.rank_by_lines,
            t.rank_by_lift.isnull(),
            t.rank_by_lift,
            ibis.desc(t.churned_lines),
            t.category,
        ]
    )
    return checked(wh, wh.execute(expr), "model_churned_purchases")


def churned_sku_counts(wh: ReadableWarehouse) -> pd.DataFrame:
    """``model_churned_sku_counts``: SKUs on sale per month end of the churned top categories."""
    t = model_table(wh, "model_churned_sku_counts")
    return checked(wh, wh.execute(t.order_by([t.category, t.month])), "model_churned_sku_counts")


# -- builds ----------------------------------------------------------------------------------
def latest_build(wh: ReadableWarehouse) -> dict[str, Any] | None:
    """The latest ``model_runs`` row (failed builds included) as a dict; None before any build."""
    t = model_table(wh, "model_runs")
    frame = wh.execute(t.order_by([ibis.desc(t.started_at), ibis.desc(t.build_id)]).limit(1))
    return records(frame, "model_runs")[0] if len(frame) else None


__all__ = [
    "CUSTOMER_DIMENSIONS",
    "MODEL_GROUPINGS",
    "PERSONA_KINDS",
    "SCHEMES",
    "churn_drivers",
    "churn_risk_count",
    "churn_risk_list",
    "churned_purchases",
    "churned_sku_counts",
    "cluster_points",
    "clusters",
    "clv_by",
    "clv_distribution",
    "clv_params",
    "customer_360",
    "latest_build",
    "mask_email",
    "mask_name",
    "mask_phone",
    "model_table",
    "personas",
    "require_built",
    "rfm_grid",
    "search_customers",
    "segment_counts",
    "segments",
]
