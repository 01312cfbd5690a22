"""The baselines of bench_metrics.py: the same numbers by hand-written DuckDB SQL and by pandas.

Each case returns a long frame — key columns, then numbers — in the same shape as the crmlens side
(see ``bench_metrics.py``), so the three can be compared value by value. The SQL is what an analyst
who knows DuckDB would write for these definitions: one statement per case (two for the breakdown:
groups and totals), filters pushed to the scans, primary keys counted with ``count(*)``. The pandas
versions are vectorised (no Python loops over rows) and work on frames already in memory; reading
them from the warehouse is not timed.

Definitions (docs/metrics.md): a completed order is an ``orders`` row that is not a refund, a buyer
a completed order with a customer; revenue is every row's ``amount`` (refunds are negative rows);
missing dimension values read 未知.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

UNKNOWN = "未知"
DAY = pd.Timedelta(days=1)

#: The overview's periods: the month, the one before (环比) and the same month a year earlier (同比).
OVERVIEW_PERIODS = (
    (date(2021, 11, 1), date(2021, 12, 1)),
    (date(2021, 10, 1), date(2021, 11, 1)),
    (date(2020, 11, 1), date(2020, 12, 1)),
)
YEAR = (date(2021, 1, 1), date(2022, 1, 1))
COHORT_PERIODS = 12


@dataclass
class Frames:
    """The columns the three cases read, as pandas frames."""

    orders: pd.DataFrame
    customers: pd.DataFrame
    surveys: pd.DataFrame
    targets: pd.DataFrame

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection) -> Frames:
        return cls(
            orders=con.sql(
                "SELECT order_id, customer_id, order_time, amount, "
                "NOT coalesce(is_refund, false) AS done FROM orders"
            ).df(),
            customers=con.sql(
                "SELECT customer_id, signup_date, region, customer_type, member_tier FROM customers"
            ).df(),
            surveys=con.sql("SELECT responded_at, nps_score FROM survey_responses").df(),
            targets=con.sql("SELECT * FROM targets").df(),
        )


# -- hand-written SQL -----------------------------------------------------------------------
def _periods_sql() -> str:
    rows = ", ".join(
        f"({i}, TIMESTAMP '{lo}', TIMESTAMP '{hi}')" for i, (lo, hi) in enumerate(OVERVIEW_PERIODS)
    )
    return f"p(period_id, lo, hi) AS (VALUES {rows})"


def _target_sql(names: tuple[str, ...], lo: date, hi: date) -> str:
    """The ``sum`` target rule: the coarsest complete granularity inside the period."""
    metrics = ", ".join(f"'{n}'" for n in names)
    days = (hi - lo).days
    return f"""
    SELECT sum(best) FROM (
      SELECT dimension_value, arg_max(total, rank) AS best FROM (
        SELECT dimension_value,
               CASE WHEN length(period) = 4 THEN 3 WHEN period LIKE '%Q%' THEN 2 ELSE 1 END AS rank,
               sum(target_value) AS total,
               sum(date_diff('day', period_start, period_end) + 1) AS covered
        FROM targets
        WHERE metric IN ({metrics}) AND dimension = 'all'
          AND period_start >= DATE '{lo}' AND period_end <= DATE '{hi - timedelta(days=1)}'
        GROUP BY ALL)
      WHERE covered = {days} GROUP BY dimension_value)"""


def overview_sql(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """new_customers, aov, retention_30d and nps for the three periods, and the month's target."""
    lo, hi = OVERVIEW_PERIODS[0]
    query = f"""
    WITH {_periods_sql()},
    buyers AS (
      SELECT customer_id, order_time FROM orders
      WHERE NOT coalesce(is_refund, false) AND customer_id IS NOT NULL),
    first AS (SELECT customer_id, min(order_time) AS first_ts FROM buyers GROUP BY customer_id),
    cohort AS (
      SELECT p.period_id, f.customer_id, CAST(f.first_ts AS DATE) AS first_day
      FROM first f JOIN p ON f.first_ts >= p.lo AND f.first_ts < p.hi)
    SELECT 'new_customers' AS metric, p.period_id, count(*)::DOUBLE AS value
    FROM customers c JOIN p ON c.signup_date >= p.lo AND c.signup_date < p.hi GROUP BY ALL
    UNION ALL
    SELECT 'aov', p.period_id,
           sum(o.amount) / nullif(count(DISTINCT o.order_id)
                                  FILTER (WHERE NOT coalesce(o.is_refund, false)), 0)
    FROM orders o JOIN p ON o.order_time >= p.lo AND o.order_time < p.hi GROUP BY ALL
    UNION ALL
    SELECT 'retention_30d', c.period_id,
           count(DISTINCT b.customer_id) / count(DISTINCT c.customer_id)
    FROM cohort c LEFT JOIN buyers b ON b.customer_id = c.customer_id
      AND b.order_time >= c.first_day + 1 AND b.order_time < c.first_day + 31
    GROUP BY ALL
    UNION ALL
    SELECT 'nps', p.period_id,
           avg(CASE WHEN nps_score >= 9 THEN 100 WHEN nps_score <= 6 THEN -100 ELSE 0 END)
    FROM survey_responses s JOIN p ON s.responded_at >= p.lo AND s.responded_at < p.hi
    WHERE nps_score IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT 'new_customers_target', 0, ({_target_sql(("new_customers", "new_members"), lo, hi)})
    """
    return con.sql(query).df()


def breakdown_sql(con: duckdb.DuckDBPyConnection, dims: tuple[str, ...]) -> pd.DataFrame:
    """Revenue, buying customers and AOV per region × customer type × tier in 2021, with the
    shares of the year's totals.

    Two statements, the groups and the totals: faster than one with ``GROUPING SETS``, whose
    distinct counts DuckDB then evaluates per grouping set. ``orders.order_id`` is the primary key,
    so completed orders are ``count(*)``, not a distinct count.
    """
    columns = {"region": "region", "customer_type": "customer_type", "tier": "member_tier"}
    select = ", ".join(f"coalesce(c.{columns[d]}, '{UNKNOWN}') AS {d}" for d in dims)
    where = f"o.order_time >= TIMESTAMP '{YEAR[0]}' AND o.order_time < TIMESTAMP '{YEAR[1]}'"
    done = "NOT coalesce(o.is_refund, false)"
    groups = con.sql(f"""
    SELECT {select}, sum(o.amount) AS revenue,
           count(DISTINCT o.customer_id) FILTER (WHERE {done})::DOUBLE AS customers,
           sum(o.amount) / nullif(count(*) FILTER (WHERE {done}), 0) AS aov
    FROM orders o LEFT JOIN customers c ON o.customer_id = c.customer_id
    WHERE {where} GROUP BY ALL""").df()
    revenue, customers = con.sql(f"""
    SELECT sum(o.amount), count(DISTINCT o.customer_id) FILTER (WHERE {done})
    FROM orders o WHERE {where}""").fetchone()  # type: ignore[misc]
    groups["revenue_share"] = groups["revenue"] / revenue
    groups["customers_share"] = groups["customers"] / customers
    return groups


def cohort_sql(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """First-order monthly cohorts of 2021: customers active in each later month of 2021."""
    lo, hi = YEAR
    query = f"""
    WITH buyers AS (
      SELECT customer_id, order_time FROM orders
      WHERE NOT coalesce(is_refund, false) AND customer_id IS NOT NULL),
    first AS (
      SELECT customer_id, date_trunc('month', min(order_time)) AS cohort
      FROM buyers GROUP BY customer_id
      HAVING cohort >= TIMESTAMP '{lo}' AND cohort < TIMESTAMP '{hi}'),
    active AS (
      SELECT DISTINCT customer_id, date_trunc('month', order_time) AS month FROM buyers
      WHERE order_time >= TIMESTAMP '{lo}' AND order_time < TIMESTAMP '{hi}'),
    cells AS (
      SELECT f.cohort, date_diff('month', f.cohort, a.month) AS k, count(*) AS value
      FROM first f JOIN active a ON a.customer_id = f.customer_id AND a.month >= f.cohort
      GROUP BY ALL),
    sizes AS (SELECT cohort, count(*) AS n FROM first GROUP BY cohort),
    grid AS (
      SELECT s.cohort, s.n, r.k FROM sizes s, range({COHORT_PERIODS + 1}) r(k)
      WHERE s.cohort + to_months(r.k) < TIMESTAMP '{hi}')
    SELECT strftime(g.cohort, '%Y-%m') AS cohort, g.k AS period_index, g.n AS cohort_size,
           coalesce(c.value, 0)::DOUBLE AS value, coalesce(c.value, 0) / g.n AS rate
    FROM grid g LEFT JOIN cells c ON c.cohort = g.cohort AND c.k = g.k
    """
    return con.sql(query).df()


# -- pandas ---------------------------------------------------------------------------------
def _buyers(f: Frames) -> pd.DataFrame:
    o = f.orders
    return o.loc[o["done"] & o["customer_id"].notna(), ["customer_id", "order_time"]]


def _in(times: pd.Series, lo: date, hi: date) -> pd.Series:
    return (times >= pd.Timestamp(lo)) & (times < pd.Timestamp(hi))


def _target(t: pd.DataFrame, names: tuple[str, ...], lo: date, hi: date) -> float:
    t = t[
        t["metric"].isin(names)
        & (t["dimension"] == "all")
        & (pd.to_datetime(t["period_start"]) >= pd.Timestamp(lo))
        & (pd.to_datetime(t["period_end"]) < pd.Timestamp(hi))
    ]
    rank = np.where(t["period"].str.len() == 4, 3, np.where(t["period"].str.contains("Q"), 2, 1))
    days = (pd.to_datetime(t["period_end"]) - pd.to_datetime(t["period_start"])).dt.days + 1
    per = (
        t.assign(rank=rank, days=days)
        .groupby(["dimension_value", "rank"])
        .agg(total=("target_value", "sum"), covered=("days", "sum"))
        .reset_index()
    )
    per = per[per["covered"] == (hi - lo).days]
    best = per.sort_values("rank").groupby("dimension_value")["total"].last()
    return float(best.sum()) if len(best) else float("nan")


def overview_pandas(f: Frames) -> pd.DataFrame:
    rows = []
    b = _buyers(f)
    first = b.groupby("customer_id")["order_time"].min()
    for pid, (lo, hi) in enumerate(OVERVIEW_PERIODS):
        signed = _in(f.customers["signup_date"], lo, hi).sum()
        o = f.orders[_in(f.orders["order_time"], lo, hi)]
        completed = o.loc[o["done"], "order_id"].nunique()
        aov = o["amount"].sum() / completed if completed else float("nan")
        cohort = first[_in(first, lo, hi)].dt.normalize().rename("first_day")
        later = b.merge(cohort, left_on="customer_id", right_index=True)
        back = later[
            (later["order_time"] >= later["first_day"] + DAY)
            & (later["order_time"] < later["first_day"] + 31 * DAY)
        ]
        retention = back["customer_id"].nunique() / len(cohort) if len(cohort) else float("nan")
        s = f.surveys[_in(f.surveys["responded_at"], lo, hi) & f.surveys["nps_score"].notna()]
        score = np.where(s["nps_score"] >= 9, 100.0, np.where(s["nps_score"] <= 6, -100.0, 0.0))
        nps = float(score.mean()) if len(score) else float("nan")
        rows += [
            ("new_customers", pid, float(signed)),
            ("aov", pid, aov),
            ("retention_30d", pid, retention),
            ("nps", pid, nps),
        ]
    lo, hi = OVERVIEW_PERIODS[0]
    target = _target(f.targets, ("new_customers", "new_members"), lo, hi)
    rows.append(("new_customers_target", 0, target))
    return pd.DataFrame(rows, columns=["metric", "period_id", "value"])


def breakdown_pandas(f: Frames, dims: tuple[str, ...]) -> pd.DataFrame:
    columns = {"region": "region", "customer_type": "customer_type", "tier": "member_tier"}
    o = f.orders[_in(f.orders["order_time"], *YEAR)]
    c = f.customers[["customer_id", *(columns[d] for d in dims)]]
    o = o.merge(c, on="customer_id", how="left").rename(columns={v: k for k, v in columns.items()})
    o[list(dims)] = o[list(dims)].fillna(UNKNOWN)
    done = o[o["done"]]
    g = o.groupby(list(dims))["amount"].sum().rename("revenue").to_frame()
    g["customers"] = done.groupby(list(dims))["customer_id"].nunique()
    g["customers"] = g["customers"].fillna(0.0).astype(float)
    orders = done.groupby(list(dims)).size().reindex(g.index)  # order_id is the primary key
    g["aov"] = g["revenue"] / orders.where(orders > 0)
    g["revenue_share"] = g["revenue"] / o["amount"].sum()
    g["customers_share"] = g["customers"] / done["customer_id"].nunique()
    return g.reset_index()


def _month(times: pd.Series) -> pd.Series:
    """Months since year 0, so month arithmetic is integer arithmetic."""
    return times.dt.year * 12 + times.dt.month - 1


def cohort_pandas(f: Frames) -> pd.DataFrame:
    b = _buyers(f)
    first = _month(b.groupby("customer_id")["order_time"].min())
    lo = YEAR[0].year * 12 + YEAR[0].month - 1
    hi = lo + 11  # the year's last month
    first = first[(first >= lo) & (first <= hi)].rename("cohort")
    year = b[_in(b["order_time"], *YEAR)]
    active = pd.DataFrame({"customer_id": year["customer_id"], "month": _month(year["order_time"])})
    active = active.drop_duplicates().merge(first, left_on="customer_id", right_index=True)
    active["k"] = active["month"] - active["cohort"]
    cells = active[active["k"] >= 0].groupby(["cohort", "k"]).size()
    sizes = first.value_counts()
    grid = pd.DataFrame(
        [(c, k) for c in sorted(sizes.index) for k in range(COHORT_PERIODS + 1) if c + k <= hi],
        columns=["cohort", "period_index"],
    )
    grid["cohort_size"] = grid["cohort"].map(sizes)
    keys = pd.MultiIndex.from_frame(grid[["cohort", "period_index"]], names=["cohort", "k"])
    grid["value"] = cells.reindex(keys).fillna(0).to_numpy(dtype=float)
    grid["rate"] = grid["value"] / grid["cohort_size"]
    grid["cohort"] = [f"{c // 12}-{c % 12 + 1:02d}" for c in grid["cohort"]]
    return grid
