"""Every KPI's definition (docs/metrics.md) recomputed with plain pandas, row by row.

Deliberately written without crmlens: it reads the tiny company's data frames and follows the
written definitions, so a disagreement means the Ibis builders and the words disagree.
"""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pandas as pd

UNKNOWN = "未知"
DAY = pd.Timedelta(days=1)
CUSTOMER_COLUMNS = {
    "region": "region",
    "city": "city",
    "customer_type": "customer_type",
    "tier": "member_tier",
    "gender": "gender",
    "channel": "signup_channel_id",
}
STORE_COLUMNS = {"orders": "store_id", "customers": "home_store_id", "tickets": "store_id"}
STORE_COLUMNS |= {"surveys": "store_id"}


def _age_band(birth: pd.Series, end: date) -> pd.Series:
    def band(b: object) -> str:
        if b is None or pd.isna(b):
            return UNKNOWN
        b = pd.Timestamp(b)
        age = end.year - b.year - ((b.month, b.day) > (end.month, end.day))
        if age < 20:
            return "<20"
        if age >= 60:
            return "60+"
        return f"{age // 10 * 10}-{age // 10 * 10 + 9}"

    return birth.map(band)


def _none(value: float) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


class Oracle:
    """``oracle(kpi, start, end, **filters)``: the KPI over days start..end (inclusive)."""

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self.f = frames
        self.products = frames["products"].set_index("sku")["category"]
        self._cache: dict[tuple[object, ...], pd.DataFrame] = {}

    # -- rows a scope allows -----------------------------------------------------------------
    def _dims(self, frame: pd.DataFrame, fact: str, key: str | None, end: date) -> pd.DataFrame:
        """``frame`` with a column per dimension (missing → 未知)."""
        out = frame.copy()
        customers = self.f["customers"].set_index("customer_id")
        ids = out[key] if key else pd.Series(None, index=out.index)
        for dim, col in CUSTOMER_COLUMNS.items():
            out[dim] = ids.map(customers[col]).fillna(UNKNOWN)
        out["age_band"] = _age_band(ids.map(customers["birth_date"]), end)
        if fact in STORE_COLUMNS:
            out["store"] = out[STORE_COLUMNS[fact]].fillna(UNKNOWN)
        if fact == "orders":
            out["order_channel"] = out["order_channel"].fillna(UNKNOWN)
        if fact == "tickets":
            out["category"] = out["sku"].map(self.products).fillna(UNKNOWN)
        if fact == "spend":
            out["channel"] = out["channel_id"]
        return out

    def _split(self, orders: pd.DataFrame) -> pd.DataFrame:
        """Orders × category, amount split pro rata to the category's line amounts."""
        lines = self.f["order_lines"].assign(
            category=lambda f: f["sku"].map(self.products).fillna(UNKNOWN)
        )
        per = lines.groupby(["order_id", "category"], as_index=False)["amount"].sum()
        total = per.groupby("order_id")["amount"].transform("sum")
        k = per.groupby("order_id")["amount"].transform("size")
        per["weight"] = np.where(total != 0, per["amount"] / total.where(total != 0, 1), 1 / k)
        out = orders.merge(per[["order_id", "category", "weight"]], on="order_id", how="left")
        out["category"] = out["category"].fillna(UNKNOWN)
        out["amount"] = out["amount"] * out["weight"].fillna(1.0)
        return out.drop(columns="weight")

    def rows(self, fact: str, end: date, filters: dict[str, object]) -> pd.DataFrame:
        key = (fact, end, tuple(sorted((k, str(v)) for k, v in filters.items())))
        if key not in self._cache:
            self._cache[key] = self._rows(fact, end, filters)
        return self._cache[key]

    def _rows(self, fact: str, end: date, filters: dict[str, object]) -> pd.DataFrame:
        table, key = {
            "orders": ("orders", "customer_id"),
            "customers": ("customers", "customer_id"),
            "tickets": ("service_tickets", "customer_id"),
            "surveys": ("survey_responses", "customer_id"),
            "touches": ("campaign_touches", "customer_id"),
            "spend": ("channel_spend", None),
        }[fact]
        frame = self.f[table]
        if fact == "orders" and "category" in filters:
            frame = self._split(frame)
        frame = self._dims(frame, fact, key, end)
        for dim, allowed in filters.items():
            values = {allowed} if isinstance(allowed, str) else set(allowed)  # type: ignore[arg-type]
            frame = frame[frame[dim].isin(values)]
        return frame

    # -- KPIs ---------------------------------------------------------------------------------
    def __call__(self, name: str, start: date, end: date, **filters: object) -> float | None:
        lo, hi = pd.Timestamp(start), pd.Timestamp(end) + DAY
        match = re.match(r"^(.*?)(?:_(\d+)d)?$", name)
        assert match
        base, days = match.group(1), match.group(2)
        window = int(days) if days else {"retention": 30, "ltv": 365, "ltv_cac": 365}.get(base, 90)
        o = self.rows("orders", end, filters)
        done = o[~o["is_refund"]]
        known = done[done["customer_id"].notna()]

        def within(
            frame: pd.DataFrame, col: str, a: pd.Timestamp | None, b: pd.Timestamp
        ) -> pd.DataFrame:
            ts = pd.to_datetime(frame[col])
            keep = ts < b if a is None else (ts >= a) & (ts < b)
            return frame[keep]

        if base in ("revenue", "orders", "aov", "customers", "purchase_frequency"):
            revenue = float(within(o, "order_time", lo, hi)["amount"].sum())
            orders = within(done, "order_time", lo, hi)["order_id"].nunique()
            buyers = within(known, "order_time", lo, hi)
            return {
                "revenue": revenue,
                "orders": float(orders),
                "aov": revenue / orders if orders else None,
                "customers": float(buyers["customer_id"].nunique()),
                "purchase_frequency": buyers["order_id"].nunique() / buyers["customer_id"].nunique()
                if len(buyers)
                else None,
            }[base]
        if base == "repurchase_rate":
            buyers = within(known, "order_time", lo, hi)
            counts = buyers.groupby("customer_id")["order_id"].nunique()
            return _none((counts >= 2).mean()) if len(counts) else None
        if base == "active_customers":
            return float(
                within(known, "order_time", hi - window * DAY, hi)["customer_id"].nunique()
            )
        if base in ("churned_customers", "churn_rate"):
            was = set(within(known, "order_time", lo - window * DAY, lo)["customer_id"])
            now = set(within(known, "order_time", hi - window * DAY, hi)["customer_id"])
            churned = len(was - now)
            if base == "churned_customers":
                return float(churned)
            return churned / len(was) if was else None
        if base == "retention":
            first = known.groupby("customer_id")["order_time"].min().dt.normalize()
            cohort = first[(first >= lo) & (first < hi)]
            if cohort.empty:
                return None
            day = known["order_time"].dt.normalize()
            gap = (day - known["customer_id"].map(first)).dt.days
            back = set(known.loc[(gap >= 1) & (gap <= window), "customer_id"])
            return float(np.mean([c in back for c in cohort.index]))
        if base in ("new_customers", "members", "cac", "channel_conversion_rate", "ltv", "ltv_cac"):
            c = self.rows("customers", end, filters)
            new = within(c, "signup_date", lo, hi)
        if base == "new_customers":
            return float(len(new))
        if base == "members":
            return float(len(within(c, "signup_date", None, hi)))
        if base in ("cac", "channel_conversion_rate", "ltv", "ltv_cac"):
            spend = within(self.rows("spend", end, filters), "spend_date", lo, hi)
            pairs = new[["customer_id", "signup_date"]].merge(
                o[["customer_id", "order_time", "amount"]], on="customer_id", how="left"
            )
            since = pairs["order_time"] - pairs["signup_date"]
            inside = (since >= pd.Timedelta(0)) & (since < window * DAY)
            per = pairs["amount"].where(inside, 0.0).groupby(pairs["customer_id"]).sum()
            revenue = per.reindex(new["customer_id"], fill_value=0.0).tolist()
            return {
                "cac": spend["spend"].sum() / len(new) if len(new) else None,
                "channel_conversion_rate": len(new) / spend["clicks"].sum()
                if spend["clicks"].sum()
                else None,
                "ltv": float(np.mean(revenue)) if revenue else None,
                "ltv_cac": sum(revenue) / spend["spend"].sum() if spend["spend"].sum() else None,
            }[base]
        if base.startswith("email_"):
            touches = within(self.rows("touches", end, filters), "sent_at", lo, hi)
            column = {"open": "opened_at", "click": "clicked_at", "conversion": "converted_at"}
            kind = base.removeprefix("email_").removesuffix("_rate")
            flag = touches["bounced"] if kind == "bounce" else touches[column[kind]].notna()
            return float(flag.mean()) if len(flag) else None
        if base in ("nps", "csat"):
            r = within(self.rows("surveys", end, filters), "responded_at", lo, hi)
            nps = r["nps_score"].dropna().astype(int)
            if base == "csat":
                return _none(r["csat_score"].astype(float).mean())
            return float(((nps >= 9).mean() - (nps <= 6).mean()) * 100) if len(nps) else None
        if base == "sales_target_attainment":
            goal = self.target("revenue", start, end, filters)
            revenue = float(within(o, "order_time", lo, hi)["amount"].sum())
            return revenue / goal if goal else None
        t = within(self.rows("tickets", end, filters), "opened_at", lo, hi)
        complaints = float((t["ticket_type"] == "投诉").sum())
        closed = t[t["closed_at"].notna() & (t["closed_at"] >= t["opened_at"])]
        hours = (closed["closed_at"] - closed["opened_at"]).dt.total_seconds() / 3600
        if base in ("tickets", "complaints", "complaint_rate", "service_csat"):
            orders = within(done, "order_time", lo, hi)["order_id"].nunique()
            return {
                "tickets": float(len(t)),
                "complaints": complaints,
                "complaint_rate": complaints / orders if orders else None,
                "service_csat": _none(t["satisfaction"].astype(float).mean()),
            }[base]
        if base in ("resolution_hours", "resolution_hours_p90"):
            if hours.empty:
                return None
            return float(hours.mean() if base == "resolution_hours" else hours.quantile(0.9))
        raise KeyError(name)

    def target(
        self, metric: str, start: date, end: date, filters: dict[str, object]
    ) -> float | None:
        """Coarsest granularity of targets inside start..end that covers every day, summed."""
        t = self.f["targets"]
        t = t[t["metric"] == metric]
        if filters:
            ((dim, value),) = filters.items()
            t = t[(t["dimension"] == dim) & (t["dimension_value"] == value)]
        else:
            t = t[t["dimension"] == "all"]
        t = t[(t["period_start"] >= start) & (t["period_end"] <= end)]
        need = (end - start).days + 1
        kinds = [
            ("year" if len(p) == 4 else "quarter" if "Q" in p else "month") for p in t["period"]
        ]
        for kind in ("year", "quarter", "month"):
            pick = t.loc[np.array([k == kind for k in kinds], dtype=bool)]
            spans = zip(pick["period_start"], pick["period_end"], strict=True)
            covered = sum((e - s).days + 1 for s, e in spans)
            if len(pick) and covered == need:
                return float(pick["target_value"].sum())
        return None
