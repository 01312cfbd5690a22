"""Benchmark crmlens' RFM (features in the warehouse via Ibis + scoring) against plain pandas.

    python bench/bench_rfm.py --customers 1000000

Uses the demo export cached by ``bench/run.py`` under ``bench/.cache/c<customers>-s<seed>``
(generated here when absent, about 5 minutes at 1M) and a warehouse loaded from it, cached beside
it as ``c<customers>-s<seed>.duckdb`` (loaded here when absent).

* crmlens: ``customer_features`` run by DuckDB on the loaded warehouse, then ``RFMModel`` scoring
  (quintiles, both segment schemes).
* pandas: what an analyst would write: read ``shop/orders.csv`` (pyarrow engine, only the five
  columns needed), apply the loader's rules to the orders (drop duplicate rows, parse the two time
  formats, drop rows without a time and negative amounts that refund no order), net refunds into
  the orders they name, group by customer, then ``qcut`` the ranks.

Both run as of the same day; the scores, RFM codes and both segmentations must be identical. Prints
seconds per part and the speed-ups, and writes them to bench/results/rfm.json. Timings are the best
of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench_metrics import export_dir, warehouse_file
from crmlens.models.features import customer_features
from crmlens.models.rfm import CN8_KEYS, EN11_GRID, RFMModel
from crmlens.warehouse import Warehouse

HERE = Path(__file__).resolve().parent
BINS = 5


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall-clock seconds of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


# -- crmlens ----------------------------------------------------------------------------------
def crmlens_features(wh: Warehouse, as_of: date) -> pd.DataFrame:
    return wh.execute(customer_features(wh.table, as_of=as_of))


def crmlens_scores(features: pd.DataFrame) -> pd.DataFrame:
    cn8 = RFMModel(scheme="cn8").fit(features).scores_
    en11 = RFMModel(scheme="en11").fit(features).scores_
    return cn8.assign(segment_en11=en11["segment"].to_numpy()).rename(
        columns={"segment": "segment_cn8"}
    )


# -- pandas -----------------------------------------------------------------------------------
def pandas_read(orders_csv: Path) -> pd.DataFrame:
    return pd.read_csv(
        orders_csv,
        engine="pyarrow",
        usecols=["order_id", "member_card_no", "order_time", "paid_amount", "original_order_id"],
        dtype={
            "order_id": "string",
            "member_card_no": "string",
            "order_time": "string",
            "paid_amount": "float64",
            "original_order_id": "string",
        },
    )


def pandas_features(raw: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Per customer recency_days, frequency and monetary, by the rules of models/features.py."""
    orders = raw.drop_duplicates("order_id", keep="last")
    text = orders["order_time"]
    # the two formats the tills export: ISO with seconds, and the old tills' 2021/3/5 14:23
    slash = text.str.contains("/", regex=False).fillna(False).to_numpy(dtype=bool)
    stamps = pd.Series(pd.NaT, index=orders.index, dtype="datetime64[us]")
    stamps[~slash] = pd.to_datetime(text[~slash], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    stamps[slash] = pd.to_datetime(text[slash], format="%Y/%m/%d %H:%M", errors="coerce")
    amount = orders["paid_amount"]
    original = orders["original_order_id"]
    # rows the loader rejects: no time, or a negative amount that refunds no order
    keep = stamps.notna() & ~((amount < 0) & original.isna())
    end = pd.Timestamp(as_of + timedelta(days=1))
    keep &= stamps < end
    orders = orders[keep].assign(order_time=stamps[keep])
    refund = (orders["paid_amount"] < 0) & orders["original_order_id"].notna()
    customer = orders["member_card_no"].str.strip()
    known = customer.notna() & (customer != "")
    purchases = orders[~refund & known]
    refunds = orders[refund]

    per_order = refunds.groupby("original_order_id")["paid_amount"].sum()
    purchases = purchases.assign(
        net=purchases["paid_amount"] + purchases["order_id"].map(per_order).fillna(0.0)
    )
    # order ids are unique after the de-duplication, so the group size is the order count
    features = purchases.groupby("member_card_no").agg(
        monetary=("net", "sum"), frequency=("order_id", "size"), last=("order_time", "max")
    )
    # a hash lookup: Series.isin on Arrow strings loops in Python (18 s for 3M ids in pandas 3)
    linked = pd.Index(purchases["order_id"]).get_indexer(refunds["original_order_id"]) >= 0
    orphan = refunds[~linked]
    orphan_customer = orphan["member_card_no"].str.strip()
    orphan = orphan[orphan_customer.notna() & (orphan_customer != "")]
    unlinked = orphan.groupby("member_card_no")["paid_amount"].sum()
    features["monetary"] += unlinked.reindex(features.index).fillna(0.0)
    day = pd.Timestamp(as_of)
    features["recency_days"] = (day - features.pop("last").dt.normalize()).dt.days
    return features.rename_axis("customer_id").reset_index()


def pandas_scores(features: pd.DataFrame) -> pd.DataFrame:
    """Quintiles of the ranks (ties by customer id), then the 8 groups and the 11 segments."""
    frame = features.sort_values("customer_id", ignore_index=True)
    for column, score in (("recency_days", "r"), ("frequency", "f"), ("monetary", "m")):
        ranks = frame[column].rank(method="first")
        quintile = pd.qcut(ranks, BINS, labels=False).to_numpy() + 1
        frame[f"{score}_score"] = BINS + 1 - quintile if score == "r" else quintile
    means = frame[["recency_days", "frequency", "monetary"]].mean()
    high = zip(
        frame["recency_days"] < means["recency_days"],
        frame["frequency"] > means["frequency"],
        frame["monetary"] > means["monetary"],
        strict=True,
    )
    frame["segment_cn8"] = [CN8_KEYS[key] for key in high]
    grid = np.asarray(EN11_GRID, dtype=object)
    frame["segment_en11"] = grid[frame["r_score"] - 1, frame["f_score"] - 1]
    return frame


def compare(ours: pd.DataFrame, theirs: pd.DataFrame) -> dict[str, int]:
    """Rows that differ per column (0 everywhere means identical)."""
    merged = ours.merge(theirs, on="customer_id", how="outer", suffixes=("", "_pd"), indicator=True)
    out = {"only_one_side": int((merged["_merge"] != "both").sum())}
    both = merged[merged["_merge"] == "both"]
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score"):
        out[column] = int((both[column].astype(int) != both[f"{column}_pd"].astype(int)).sum())
    out["monetary"] = int((~np.isclose(both["monetary"], both["monetary_pd"], atol=1e-6)).sum())
    for column in ("segment_cn8", "segment_en11"):
        out[column] = int((both[column] != both[f"{column}_pd"]).sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2021, 12, 31))
    parser.add_argument("--repeat", type=int, default=3, help="runs per part; fastest kept")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "rfm.json")
    args = parser.parse_args()

    data = export_dir(args.cache, args.customers, args.seed)
    warehouse, _ = warehouse_file(args.cache, args.customers, args.seed)
    seconds: dict[str, float] = {}
    with Warehouse(warehouse, read_only=True) as wh:
        orders = wh.row_count("orders")
        seconds["crmlens_features"], features = timed(
            lambda: crmlens_features(wh, args.as_of), args.repeat
        )
    seconds["crmlens_scoring"], ours = timed(lambda: crmlens_scores(features), args.repeat)
    seconds["pandas_read_csv"], raw = timed(
        lambda: pandas_read(data / "shop" / "orders.csv"), args.repeat
    )
    seconds["pandas_features"], theirs = timed(
        lambda: pandas_features(raw, args.as_of), args.repeat
    )
    seconds["pandas_scoring"], theirs = timed(lambda: pandas_scores(theirs), args.repeat)
    seconds["crmlens_total"] = seconds["crmlens_features"] + seconds["crmlens_scoring"]
    seconds["pandas_compute"] = seconds["pandas_features"] + seconds["pandas_scoring"]
    seconds["pandas_total"] = seconds["pandas_read_csv"] + seconds["pandas_compute"]
    differences = compare(ours, theirs)
    identical = not any(differences.values())

    result = {
        "customers": args.customers,
        "seed": args.seed,
        "as_of": args.as_of.isoformat(),
        "repeat": args.repeat,
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "orders_in_warehouse": orders,
        "orders_csv_rows": len(raw),
        "scored_customers": len(ours),
        "seconds": seconds,
        "speedup_vs_pandas_total": seconds["pandas_total"] / seconds["crmlens_total"],
        "speedup_vs_pandas_compute": seconds["pandas_compute"] / seconds["crmlens_total"],
        "identical": identical,
        "differences": differences,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"RFM on {len(ours):,} customers, {orders:,} orders, as of {args.as_of}")
    for name, value in seconds.items():
        print(f"  {name:<18} {value:8.2f} s")
    print(
        f"speed-up: {result['speedup_vs_pandas_total']:.1f}x vs pandas incl. read_csv, "
        f"{result['speedup_vs_pandas_compute']:.1f}x vs pandas compute only"
    )
    print(f"identical scores and segments: {identical} {differences}")
    print(f"wrote {args.out}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
