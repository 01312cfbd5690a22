"""Shaping the models' results into the declared model tables (used by :mod:`crmlens.models.build`).

Pure pandas: every function takes fitted results and returns rows with exactly the columns that
:mod:`crmlens.schema` declares for its table.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from crmlens.models.churn_purchases import ChurnedPurchases
from crmlens.models.lifecycle import STAGES
from crmlens.models.personas import Persona
from crmlens.models.rfm import segments
from crmlens.schema import table as schema_table

_RFM_COLUMNS = (
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "rfm_code",
)


def scores_table(
    day: date,
    stages: pd.DataFrame,
    features: pd.DataFrame,
    cn8: pd.DataFrame,
    en11: pd.DataFrame,
    clusters: pd.Series,
    clv: pd.DataFrame,
    churn: pd.DataFrame,
) -> pd.DataFrame:
    """``model_customer_scores``: the lifecycle population with every model's columns."""
    rfm = cn8[["customer_id", *_RFM_COLUMNS, "segment"]].rename(
        columns={"segment": "rfm_segment_cn"}
    )
    rfm = rfm.merge(
        en11[["customer_id", "segment"]].rename(columns={"segment": "rfm_segment_en"}),
        on="customer_id",
    )
    out = stages[["customer_id", "stage"]].rename(columns={"stage": "lifecycle_stage"})
    out = out.merge(rfm, on="customer_id", how="left")
    out = out.merge(features[["customer_id", "aov"]], on="customer_id", how="left")
    out = out.merge(clusters.rename("cluster").reset_index(), on="customer_id", how="left")
    out = out.merge(clv, on="customer_id", how="left").merge(churn, on="customer_id", how="left")
    out["frequency"] = out["frequency"].fillna(0)
    out["monetary"] = out["monetary"].fillna(0.0)
    out["cluster"] = out["cluster"].astype("Int64")
    out["as_of"] = day
    columns = schema_table("model_customer_scores").column_names
    return out.reindex(columns=list(columns)).sort_values("customer_id", ignore_index=True)


_SUMMARY_MEANS = {
    "mean_recency_days": "recency_days",
    "mean_frequency": "frequency",
    "mean_monetary": "monetary",
    "mean_clv_12m": "clv_12m",
    "mean_churn_risk": "churn_risk",
}


def summary(scores: pd.DataFrame, column: str, order: pd.Index) -> pd.DataFrame:
    """Customers, revenue and means per value of ``column`` (rows: ``order``), with shares."""
    members = scores[scores[column].notna()]
    numbers = members[list(dict.fromkeys(_SUMMARY_MEANS.values()))].astype(float)
    grouped = numbers.groupby(members[column])
    out = pd.DataFrame({"customers": grouped.size(), "revenue": grouped["monetary"].sum()})
    for name, source in _SUMMARY_MEANS.items():
        out[name] = grouped[source].mean()
    out = out.reindex(order)
    out["customers"] = out["customers"].fillna(0).astype(np.int64)
    out["revenue"] = out["revenue"].fillna(0.0)
    out["share"] = out["customers"] / max(len(members), 1)
    total = numbers["monetary"].sum()
    out["revenue_share"] = out["revenue"] / total if total else np.nan
    return out


def segments_table(day: date, scores: pd.DataFrame) -> pd.DataFrame:
    """``model_segments``: both RFM schemes and the lifecycle stages."""
    stage_names = pd.DataFrame(
        {"name_zh": [v[0] for v in STAGES.values()], "name_en": [v[1] for v in STAGES.values()]},
        index=pd.Index(list(STAGES), name="segment"),
    )
    parts = []
    for scheme, column, names in (
        ("cn8", "rfm_segment_cn", segments("cn8")),
        ("en11", "rfm_segment_en", segments("en11")),
        ("lifecycle", "lifecycle_stage", stage_names.assign(action_zh=None, action_en=None)),
    ):
        part = summary(scores, column, names.index).join(names)
        part = part.rename_axis("segment").reset_index()
        parts.append(part.assign(scheme=scheme, position=np.arange(1, len(part) + 1), as_of=day))
    return pd.concat(parts, ignore_index=True)


def clusters_table(day: date, scores: pd.DataFrame, profile: pd.DataFrame) -> pd.DataFrame:
    """``model_clusters``: the RFM averages of every cluster, whatever features it was fitted on."""
    out = summary(scores, "cluster", profile.index).drop(columns="revenue")
    out = out.join(profile[["label_zh", "label_en"]]).rename_axis("cluster").reset_index()
    return out.assign(as_of=day)


def points_table(projection: pd.DataFrame, limit: int, random_state: int) -> pd.DataFrame:
    """``model_cluster_points``: a seeded sample of the 2-D projection, at most ``limit`` rows."""
    if len(projection) > limit:
        rng = np.random.default_rng(random_state)
        projection = projection.iloc[np.sort(rng.choice(len(projection), limit, replace=False))]
    return projection.rename(columns={"pc1": "x", "pc2": "y"}).reset_index(drop=True)


def _mix(shares: dict[Any, float]) -> str:
    return json.dumps({str(k): round(float(v), 4) for k, v in shares.items()}, ensure_ascii=False)


def persona_row(dimension: str, day: date, p: Persona) -> dict[str, Any]:
    window = p.age_window
    return {
        "dimension": dimension,
        "group_name": p.group,
        "as_of": day,
        "customers": p.customers,
        "buyers": p.buyers,
        "member_share": p.member_share,
        "revenue": p.revenue,
        "revenue_share": p.revenue_share,
        "gender_mix": _mix(p.gender),
        "age_mix": _mix(p.age_bands),
        "age_window": f"{window[0]}-{window[1]}" if window else None,
        "age_window_share": window[2] if window else None,
        "top_regions": _mix(p.regions),
        "top_cities": _mix(p.cities),
        "top_departments": _mix(p.departments),
        "top_categories": _mix(p.categories),
        "channel_mix": _mix(p.channels),
        "payment_mix": _mix(p.payments),
        "hour_mix": _mix(p.hours),
        "description_zh": p.description_zh,
        "description_en": p.description_en,
    }


def churned_tables(
    day: date, bought: ChurnedPurchases | None, headline: dict[str, Any]
) -> dict[str, pd.DataFrame]:
    """``model_churned_purchases`` and ``model_churned_sku_counts`` (empty when skipped)."""
    names = ("model_churned_purchases", "model_churned_sku_counts")
    if bought is None:
        return {n: pd.DataFrame(columns=list(schema_table(n).column_names)) for n in names}
    headline |= {
        "churned_customers": bought.churned_customers,
        "churned_top_by_lines": bought.top_by_lines,
        "churned_top_by_lift": bought.top_by_lift,
    }
    trend = bought.sku_trend.rename(
        columns={"change": "sku_change", "slope": "sku_slope", "trend": "sku_trend"}
    )
    categories = bought.categories.merge(trend, on="category", how="left")
    for column, top in (
        ("rank_by_lines", bought.top_by_lines),
        ("rank_by_lift", bought.top_by_lift),
    ):
        categories[column] = categories["category"].map({c: i + 1 for i, c in enumerate(top)})
    counts = bought.sku_counts.rename_axis(index="month", columns="category").stack()
    counts = counts.rename("skus").reset_index()
    counts["month"] = counts["month"].astype(str)
    return {names[0]: categories.assign(as_of=day), names[1]: counts}
