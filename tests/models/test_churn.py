"""Churn: features without leakage, reasons and early-warning rules, and the model on real data.

The real-data tests load Online Retail and CDNOW into a temporary warehouse's ``orders`` table, so
the Ibis feature path is exercised end to end, and check that the model validated on a later cutoff
beats recency alone. Run with ``pytest -s`` to see the AUCs.
"""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import crmlens.models.churn_features as churn_features_module
from crmlens.errors import ConfigError, InsufficientDataError, NotFittedError
from crmlens.models import (
    ChurnModel,
    churn_feature_table,
    churn_labels,
    churned_purchases,
    warning_rules,
)
from crmlens.models.churn import top_decile_lift
from crmlens.models.churn_features import describe_feature
from crmlens.warehouse import Warehouse

T = date(2024, 6, 30)


def insert(wh: Warehouse, table: str, rows: list[dict[str, object]] | pd.DataFrame) -> None:
    """Insert ``rows`` (a frame, or dicts of column → value) into a table by column name."""
    frame = pd.DataFrame(rows)
    wh.raw.register("incoming", frame)
    wh.raw.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
    wh.raw.unregister("incoming")


def order(oid: str, cid: str, when: str, amount: float, **extra: object) -> dict[str, object]:
    row = {"order_id": oid, "customer_id": cid, "order_time": pd.Timestamp(when)}
    return row | {"amount": amount, "gross_amount": amount, "discount_amount": 0.0} | extra


# --- a small hand-made warehouse with every source -----------------------------------------
PAST = {
    "customers": [
        {"customer_id": "c1", "anon_id": "a1", "member_tier": "白金", "customer_type": "个人",
         "signup_date": pd.Timestamp("2023-01-01")},
        {"customer_id": "c2", "anon_id": "a2", "member_tier": "普通", "customer_type": "企业",
         "signup_date": pd.Timestamp("2024-08-01")},
    ],
    "products": [
        {"sku": "s1", "category": "巧克力", "listed_date": date(2023, 1, 1)},
        {"sku": "s2", "category": "杯面", "listed_date": date(2024, 2, 10)},
        {"sku": "s3", "category": "绿叶菜"},  # listing date unknown: on sale throughout
        {"sku": "s4", "category": "巧克力", "listed_date": date(2023, 6, 1),
         "delisted_date": date(2024, 4, 30)},
    ],
    "orders": [
        order("o1", "c1", "2024-01-10 10:00", 90.0, gross_amount=100.0, discount_amount=10.0),
        order("o2", "c1", "2024-03-01 10:00", 50.0),
        order("o3", "c1", "2024-05-01 10:00", 60.0),
        order("o4", "c1", "2024-06-20 10:00", 40.0),
        order("r1", "c1", "2024-05-05 10:00", -30.0, is_refund=True, original_order_id="o3"),
        order("o5", "c2", "2024-06-30 23:00", 20.0),
        order("w1", None, "2024-06-29 12:00", 99.0),  # walk-in, no customer
    ],
    "order_lines": [
        {"order_id": "o1", "line_no": 1, "sku": "s1", "quantity": 2.0},
        {"order_id": "o1", "line_no": 2, "sku": "s2", "quantity": 1.0},
        {"order_id": "o3", "line_no": 1, "sku": "s3", "quantity": 1.0},
        {"order_id": "o4", "line_no": 1, "sku": "s1", "quantity": -1.0},
        {"order_id": "o5", "line_no": 1, "sku": "s2", "quantity": 1.0},
    ],
    "service_tickets": [
        {"ticket_id": "t0", "customer_id": "c1", "ticket_type": "投诉", "satisfaction": 4,
         "opened_at": pd.Timestamp("2024-01-05"), "closed_at": pd.Timestamp("2024-01-06")},
        {"ticket_id": "t1", "customer_id": "c1", "ticket_type": "投诉", "satisfaction": 2,
         "opened_at": pd.Timestamp("2024-06-10"), "closed_at": pd.Timestamp("2024-06-12")},
        # rated after closing, which is after the cutoff: its 5 is not known yet
        {"ticket_id": "t2", "customer_id": "c1", "ticket_type": "咨询", "satisfaction": 5,
         "opened_at": pd.Timestamp("2024-06-25"), "closed_at": pd.Timestamp("2024-07-03")},
    ],
    "survey_responses": [
        {"response_id": "v1", "customer_id": "c1", "nps_score": 9,
         "responded_at": pd.Timestamp("2024-02-01")},
        {"response_id": "v2", "customer_id": "c1", "nps_score": 3,
         "responded_at": pd.Timestamp("2024-06-01")},
    ],
    "campaign_touches": [
        {"touch_id": "m0", "customer_id": "c1", "sent_at": pd.Timestamp("2024-01-01"),
         "opened_at": pd.Timestamp("2024-01-01 08:00")},
        {"touch_id": "m1", "customer_id": "c1", "sent_at": pd.Timestamp("2024-05-01"),
         "opened_at": pd.Timestamp("2024-05-02"), "clicked_at": pd.Timestamp("2024-05-02 01:00")},
        {"touch_id": "m2", "customer_id": "c1", "sent_at": pd.Timestamp("2024-06-25"),
         "opened_at": pd.Timestamp("2024-07-02")},
    ],
    "app_events": [
        {"event_id": "e1", "app": "shop_app", "user_id": "a1", "session_id": "s1",
         "event_time": pd.Timestamp("2024-06-05 10:00")},
        {"event_id": "e2", "app": "shop_app", "user_id": "a1", "session_id": "s1",
         "event_time": pd.Timestamp("2024-06-05 10:01")},
        {"event_id": "e3", "app": "shop_app", "user_id": "a1", "session_id": "s2",
         "event_time": pd.Timestamp("2024-06-28 09:00")},
        {"event_id": "e4", "app": "shop_app", "user_id": "a1", "session_id": "s0",
         "event_time": pd.Timestamp("2024-05-01 09:00")},
        {"event_id": "e5", "app": "crm", "user_id": "a1", "session_id": "x1",
         "event_time": pd.Timestamp("2024-06-20 09:00")},
    ],
}  # fmt: skip

FUTURE = {
    "orders": [
        order("o6", "c1", "2024-08-15 10:00", 70.0),
        order("r2", "c1", "2024-07-05 10:00", -40.0, is_refund=True, original_order_id="o4"),
        order("o7", "c2", "2024-10-15 10:00", 10.0),  # after the 90-day horizon
    ],
    "order_lines": [{"order_id": "o6", "line_no": 1, "sku": "s3", "quantity": 1.0}],
    "service_tickets": [
        {"ticket_id": "t3", "customer_id": "c1", "ticket_type": "投诉", "satisfaction": 1,
         "opened_at": pd.Timestamp("2024-07-01"), "closed_at": pd.Timestamp("2024-07-02")},
    ],
    "survey_responses": [
        {"response_id": "v3", "customer_id": "c1", "nps_score": 10,
         "responded_at": pd.Timestamp("2024-07-10")},
    ],
    "campaign_touches": [
        {"touch_id": "m3", "customer_id": "c1", "sent_at": pd.Timestamp("2024-07-01"),
         "opened_at": pd.Timestamp("2024-07-01 09:00"), "clicked_at": pd.Timestamp("2024-07-01")},
    ],
    "app_events": [
        {"event_id": "e6", "app": "shop_app", "user_id": "a1", "session_id": "s3",
         "event_time": pd.Timestamp("2024-07-02 10:00")},
    ],
}  # fmt: skip


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Warehouse]:
    with Warehouse(tmp_path / "small.duckdb") as wh:
        for table, rows in PAST.items():
            insert(wh, table, rows)
        yield wh


def test_features_have_the_hand_computed_values(small: Warehouse) -> None:
    f = small.execute(churn_feature_table(small.table, as_of=T)).set_index("customer_id")
    assert list(f.index) == ["c1", "c2"]  # the walk-in order has no customer
    c1 = f.loc["c1"]
    tenure = (T - date(2024, 1, 10)).days
    expected = {
        "recency_days": 10, "frequency": 4, "monetary": 210.0, "aov": 52.5,
        "tenure_days": tenure, "member_days": (T - date(2023, 1, 1)).days,
        "orders_30d": 1, "orders_90d": 2, "orders_prev_90d": 2, "orders_change_90d": 0,
        "spend_30d": 40.0, "spend_90d": 70.0, "spend_prev_90d": 140.0, "spend_change_90d": -70.0,
        "mean_gap_days": (tenure - 10) / 3, "last_gap_days": 50, "overdue_ratio": 10 / ((tenure - 10) / 3),
        "distinct_categories": 3, "discount_share": 10 / 250, "refund_share": 30 / 240,
        "tickets_90d": 2, "complaints_90d": 1, "last_satisfaction": 2, "last_nps": 3,
        "touches_90d": 2, "opens_90d": 1, "clicks_90d": 1, "app_sessions_30d": 2,
    }  # fmt: skip
    for name, value in expected.items():
        assert c1[name] == pytest.approx(value, abs=1e-6), name
    assert (c1["member_tier"], c1["customer_type"]) == ("白金", "个人")
    c2 = f.loc["c2"]
    assert c2["recency_days"] == 0  # an order late on the cutoff day counts
    assert np.isnan(c2["member_days"])  # signed up after the cutoff
    assert np.isnan(c2["mean_gap_days"]) and np.isnan(c2["last_satisfaction"])
    assert c2["tickets_90d"] == 0 and c2["app_sessions_30d"] == 0


def test_features_ignore_everything_after_the_cutoff(small: Warehouse) -> None:
    before = small.execute(churn_feature_table(small.table, as_of=T))
    for table, rows in FUTURE.items():
        insert(small, table, rows)
    after = small.execute(churn_feature_table(small.table, as_of=T))
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    # a datetime cutoff is an instant: the order at 23:00 on the cutoff day is outside 22:00
    instant = small.execute(churn_feature_table(small.table, as_of=datetime(2024, 6, 30, 22)))
    assert list(instant["customer_id"]) == ["c1"]


def test_labels_look_only_at_the_horizon(small: Warehouse) -> None:
    for table, rows in FUTURE.items():
        insert(small, table, rows)
    labels = small.execute(churn_labels(small.table, as_of=T, horizon_days=90))
    # c1 buys again on 2024-08-15; c2's next order (2024-10-15) is after T + 90 days
    assert labels.set_index("customer_id")["churned"].to_dict() == {"c1": 0, "c2": 1}
    longer = small.execute(churn_labels(small.table, as_of=T, horizon_days=120))
    assert longer.set_index("customer_id")["churned"].to_dict() == {"c1": 0, "c2": 0}
    with pytest.raises(ConfigError, match="horizon_days"):
        churn_labels(small.table, as_of=T, horizon_days=0)


def test_churned_purchases_on_hand_made_lines(small: Warehouse) -> None:
    # c1 (last order 10 days before T) is churned at 5 inactive days; c2 bought on T
    bought = churned_purchases(small, as_of=T, inactive_days=5, top=2, trend_months=3, min_lines=1)
    assert (bought.churned_customers, bought.active_customers) == (1, 1)
    cats = bought.categories.set_index("category")
    # c1's lines: 巧克力 and 杯面 (o1), 绿叶菜 (o3); the returned line of o4 does not count
    assert cats["churned_lines"].to_dict() == {"巧克力": 1, "杯面": 1, "绿叶菜": 1}
    assert cats.loc["杯面", "lift"] == pytest.approx((1 / 3) / 1)
    assert cats.loc["巧克力", "lift"] == np.inf  # only the churned bought it
    assert set(bought.top_by_lift) == {"巧克力", "绿叶菜"}
    # month ends 2024-03-31 … 2024-06-30; s4 is on sale through its delisting day 04-30
    counts = bought.sku_counts
    assert [str(m) for m in counts.index] == ["2024-03", "2024-04", "2024-05", "2024-06"]
    assert counts["巧克力"].tolist() == [2, 2, 1, 1]
    trend = bought.sku_trend.set_index("category")
    assert trend.loc["巧克力", "trend"] == "shrinking"
    assert trend.loc["巧克力", "slope"] == pytest.approx(-0.4)
    assert trend.loc["巧克力", "change"] == pytest.approx(-0.5)
    with pytest.raises(InsufficientDataError, match="both churned and active"):
        churned_purchases(small, as_of=date(2024, 12, 31))


def test_warning_rules_on_hand_made_features() -> None:
    features = pd.DataFrame(
        {
            "customer_id": ["quiet", "slowing", "complained", "fine", "new"],
            "recency_days": [95, 10, 5, 3, 2],
            "orders_90d": [0, 1, 3, 4, 1],
            "orders_prev_90d": [3, 4, 3, 4, 0],
            "complaints_90d": [0, 0, 1, 0, 0],
        }
    )
    rules = warning_rules(features).set_index("customer_id")
    assert rules.loc["quiet"].tolist() == [True, True, False]
    assert rules.loc["slowing"].tolist() == [False, True, False]  # 1 < 50 % of 4
    assert rules.loc["complained"].tolist() == [False, False, True]
    assert not rules.loc[["fine", "new"]].to_numpy().any()  # no previous orders: not "falling"
    assert warning_rules(features, inactive_days=5).loc[1:, "no_recent_order"].tolist() == [
        True, True, False, False
    ]  # fmt: skip


def test_reason_text() -> None:
    assert describe_feature("recency_days", 90, 20) == ("90天未购买", "no purchase in 90 days")
    assert describe_feature("orders_change_90d", -2, 0) == ("消费频次下降", "buying less often")
    assert describe_feature("member_tier", "普通", "白金") == (
        "会员等级: 普通",
        "member tier: 普通",
    )
    with pytest.raises(ConfigError, match="unknown churn feature"):
        describe_feature("shoe_size", 1, 2)


# --- a synthetic warehouse whose churners leave for known reasons --------------------------
def _synthetic(wh: Warehouse) -> None:
    """300 fortnightly buyers: 100 stay; 100 complain in June and leave; 100 stopped in March.

    Stayers and complainers are identical except for the complaint (both have one ticket in the
    last 90 days), so a complaint is the only thing that can explain the complainers' risk.
    """
    orders, tickets = [], []
    start = pd.Timestamp("2024-01-01 10:00")
    for i in range(300):
        group, cid = i // 100, f"k{i:03d}"
        last = {0: "2024-12-31", 1: "2024-06-30", 2: "2024-03-15"}[group]
        shift = pd.Timedelta(hours=i % 7)  # not all at the same minute
        for n, when in enumerate(pd.date_range(start, last, freq="14D")):
            orders.append(order(f"{cid}-{n}", cid, str(when + shift), 20.0 + i % 5))
        if group < 2:
            kind = "投诉" if group == 1 else "咨询"
            tickets.append({"ticket_id": f"t{cid}", "customer_id": cid, "ticket_type": kind,
                            "opened_at": pd.Timestamp("2024-06-15")})  # fmt: skip
    insert(wh, "orders", orders)
    insert(wh, "service_tickets", tickets)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Warehouse, ChurnModel]]:
    with Warehouse(tmp_path_factory.mktemp("churn") / "synthetic.duckdb") as wh:
        _synthetic(wh)
        yield wh, ChurnModel().fit(wh, train_as_of=T)


def test_complainers_are_told_it_is_the_complaint(synthetic: tuple[Warehouse, ChurnModel]) -> None:
    wh, model = synthetic
    why = model.reasons(wh, as_of=T)
    first = why[why["rank"] == 1].set_index("customer_id")
    complainers = [f"k{i:03d}" for i in range(100, 200)]
    assert (first.loc[complainers, "feature"] == "complaints_90d").all()
    assert set(first.loc[complainers, "reason_zh"]) == {"近期有投诉"}
    assert set(first.loc[complainers, "reason_en"]) == {"recent complaint"}
    assert (first.loc[complainers, "churn_risk"] > 0.9).all()
    # the stayers get no reason: nothing about them raises their risk
    assert not why["customer_id"].isin([f"k{i:03d}" for i in range(100)]).any()
    # the lapsed: a reason about their silence or their falling orders, never the complaint
    lapsed = first.loc[[f"k{i:03d}" for i in range(200, 300)]]
    assert lapsed["churn_risk"].gt(0.9).all()
    assert set(lapsed["feature"]) <= {
        "recency_days", "overdue_ratio", "orders_30d", "orders_90d", "orders_change_90d",
        "spend_30d", "spend_90d", "spend_change_90d",
    }  # fmt: skip
    row = lapsed.iloc[0]
    value, typical = row["value"], row["typical"]
    assert (row["reason_zh"], row["reason_en"]) == describe_feature(row["feature"], value, typical)


def test_early_warning_lists_exactly_the_customers_at_risk(
    synthetic: tuple[Warehouse, ChurnModel],
) -> None:
    wh, model = synthetic
    watch = model.early_warning(wh, as_of=T).set_index("customer_id")
    expected = {f"k{i:03d}" for i in range(100, 300)}
    assert set(watch.index) == expected
    complainers = watch.loc[[f"k{i:03d}" for i in range(100, 200)]]
    assert complainers["recent_complaint"].all() and not complainers["no_recent_order"].any()
    assert complainers["warnings"].eq("近期投诉 / recent complaint").all()
    assert complainers["reasons"].str.startswith("近期有投诉 / recent complaint").all()
    lapsed = watch.loc[[f"k{i:03d}" for i in range(200, 300)]]
    assert lapsed["no_recent_order"].all() and lapsed["falling_orders"].all()
    assert lapsed["warnings"].str.contains("近90天未下单 / no order in 90 days").all()
    assert watch["churn_risk"].is_monotonic_decreasing


def test_contract_and_errors(synthetic: tuple[Warehouse, ChurnModel]) -> None:
    wh, model = synthetic
    assert repr(ChurnModel(horizon_days=30)).startswith("ChurnModel(horizon_days=30, max_iter=300")
    with pytest.raises(NotFittedError):
        ChurnModel().predict_proba(wh, as_of=T)
    with pytest.raises(ConfigError, match="at least horizon_days"):
        ChurnModel().fit(wh, train_as_of=T, validation_as_of=T + timedelta(days=30))
    with pytest.raises(InsufficientDataError, match="need orders through"):
        ChurnModel().fit(wh, train_as_of=date(2024, 12, 1))
    risk = model.predict_proba(wh, as_of=T)
    assert len(risk) == 300 and risk["churn_risk"].between(0, 1).all()


def test_top_decile_lift_splits_ties_fairly() -> None:
    y = np.array([1, 0] * 10)
    assert top_decile_lift(y, np.zeros(20)) == pytest.approx(1.0)  # all tied: random order
    assert top_decile_lift(y, np.where(y == 1, 2.0, 1.0)) == pytest.approx(2.0)


# --- real data: the model must beat recency alone on a later cutoff -------------------------
def _load_online_retail(wh: Warehouse, folder: Path) -> None:
    """Non-cancelled invoices with a CustomerID, one order per invoice."""
    wh.raw.execute(
        f"""
        INSERT INTO orders (order_id, customer_id, order_time, gross_amount, discount_amount,
                            amount, is_refund)
        SELECT InvoiceNo, CAST(CAST(CAST(CustomerID AS DOUBLE) AS BIGINT) AS VARCHAR),
               MIN(CAST(InvoiceDate AS TIMESTAMP)), SUM(q * p), 0, SUM(q * p), false
        FROM (SELECT *, CAST(Quantity AS DOUBLE) AS q, CAST(UnitPrice AS DOUBLE) AS p
              FROM read_csv('{folder}/*.csv', all_varchar = true, header = true))
        WHERE coalesce(CustomerID, '') <> '' AND NOT starts_with(InvoiceNo, 'C')
        GROUP BY InvoiceNo, CustomerID
        """
    )


def _load_cdnow(wh: Warehouse, path: Path) -> None:
    """CDNOW master: customer id, yyyymmdd date, CDs, dollars; one order per row."""
    frame = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    insert(
        wh,
        "orders",
        pd.DataFrame(
            {
                "order_id": [f"cd{i}" for i in range(len(frame))],
                "customer_id": frame["customer_id"],
                "order_time": pd.to_datetime(frame["date"], format="%Y%m%d"),
                "amount": frame["dollar_value"].astype(float),
                "is_refund": False,
            }
        ),
    )


REAL = {
    "online_retail": (_load_online_retail, "online_retail/by-day", date(2011, 6, 1), date(2011, 9, 1)),
    "cdnow": (_load_cdnow, "cdnow/CDNOW_master.txt", date(1997, 9, 30), date(1997, 12, 31)),
}  # fmt: skip


@pytest.mark.datasets
@pytest.mark.parametrize("name", list(REAL))
def test_model_beats_recency_on_a_later_cutoff(name: str, datasets: Path, tmp_path: Path) -> None:
    load, relative, train_as_of, validation_as_of = REAL[name]
    source = datasets / relative
    if not source.exists():
        pytest.skip(f"{source} not found (set CRMLENS_DATASETS to override)")
    with Warehouse(tmp_path / f"{name}.duckdb") as wh:
        load(wh, source)
        model = ChurnModel(horizon_days=90).fit(
            wh, train_as_of=train_as_of, validation_as_of=validation_as_of
        )
    v = model.validation_
    assert v is not None
    v_model, v_base = v["model"], v["baseline"]
    summary = (
        f"{name}: train {train_as_of} ({model.train_['customers']} customers), validate "
        f"{validation_as_of} ({v['customers']} customers, churn rate {v['churn_rate']:.3f}): "
        f"AUC model {v_model['roc_auc']:.4f} vs recency {v_base['roc_auc']:.4f}; PR-AUC "
        f"{v_model['pr_auc']:.4f} vs {v_base['pr_auc']:.4f}; top-decile lift "
        f"{v_model['top_decile_lift']:.3f} vs {v_base['top_decile_lift']:.3f}; "
        f"Brier {v_model['brier']:.4f}"
    )
    print(summary)
    assert v_model["roc_auc"] > v_base["roc_auc"], summary
    assert v_model["pr_auc"] > v_base["pr_auc"], summary
    calibration = v["calibration"]
    assert len(calibration) == 10 and calibration["customers"].sum() == v["customers"]
    # calibrated enough that the riskiest decile churns far more than the safest
    assert calibration["churn_rate"].iloc[-1] > 2 * calibration["churn_rate"].iloc[0], summary


def test_docstring_examples() -> None:
    result = doctest.testmod(churn_features_module)
    assert result.attempted > 0 and result.failed == 0
