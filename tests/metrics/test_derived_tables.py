"""Derived tables: written on request, used only while they match the data, dropped by a load.

Their numbers are checked elsewhere (test_engine_parity.py computes every KPI from them and from
the canonical tables); these tests check when they are read at all. A 300-customer demo company
is generated once for the module and loaded into a fresh warehouse per test.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from crmlens.demo import DemoConfig, generate
from crmlens.errors import LoadError, WarehouseError
from crmlens.ingest import load_demo_export
from crmlens.metrics import Scope, compute_many, metrics, value
from crmlens.metrics.derived_tables import derived_tables
from crmlens.metrics.facts import (
    CUSTOMER_SCORES,
    FACTS,
    FIRST_ORDERS,
    LAYOUTS,
    ORDER_CATEGORIES,
    bought,
    derived,
    layout_name,
    scoped,
    table,
    usable_derived,
)
from crmlens.metrics.quality import TABLE_FIGURES, duplicate_keys, quality_report
from crmlens.schema import data_tables
from crmlens.warehouse import Warehouse

ORDERS = FACTS["orders"]
YEAR = Scope.parse("2021-01", "2021-12", filters=["city=烟台"])


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("derived") / "export"
    generate(DemoConfig(customers=300, seed=3, out_dir=out))
    return out


@pytest.fixture
def wh(export: Path, tmp_path: Path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    load_demo_export(warehouse, export)
    yield warehouse
    warehouse.close()


def test_written_tables_are_read_and_give_the_same_value(wh: Warehouse) -> None:
    before = value(wh, "active_customers", YEAR)
    assert derived(wh, ORDERS) is None and wh.derived_names() == frozenset()
    rows = wh.write_derived(derived_tables(wh))
    orders = table(wh, "orders")
    buyers = wh.execute(orders.filter(bought(orders)).customer_id.nunique())
    # no build yet: no scores
    counts = (
        ("derived__orders", wh.row_count("orders")),
        (FIRST_ORDERS, buyers),
        (CUSTOMER_SCORES, 0),
    )
    copies = {layout_name(name, layout): n for name, n in counts for layout in LAYOUTS}
    copies[CUSTOMER_SCORES] = 0
    assert (
        rows
        == {
            "derived__orders": wh.row_count("orders"),
            "derived__first_orders": buyers,
            ORDER_CATEGORIES: _order_categories(wh),
            TABLE_FIGURES: len(data_tables()),
        }
        | copies
    )
    assert set(usable_derived(wh)) == set(rows)
    assert value(wh, "active_customers", YEAR) == before > 0
    # in time order, so that a period's rows are together
    times = wh.execute(wh.derived_table("derived__orders").order_time)
    assert times.is_monotonic_increasing


def test_a_scope_filtering_a_place_or_a_segment_reads_the_copy_in_that_order(
    wh: Warehouse,
) -> None:
    """Each layout's copy holds the time-ordered table's rows, ordered by its dimensions' columns
    then time; a scope filtering a place reads the copy by place (also when it filters a tier
    too), one filtering only a customer segment the copy by segment, any other the time-ordered
    table — and the rows kept are the same every way."""
    tier = Scope.parse("2021-01", "2021-12", filters=["tier=白金"])
    canonical = wh.execute(scoped(wh, "orders", tier, dims=["city"]))
    wh.write_derived(derived_tables(wh))
    columns = {
        "by_place": ["c__region", "c__city", "store_id", "order_time"],
        "by_segment": ["c__customer_type", "c__member_tier", "order_time"],
    }
    plain = wh.execute(wh.derived_table("derived__orders")).sort_values(
        "order_id", ignore_index=True
    )
    for layout in LAYOUTS:
        name = layout_name("derived__orders", layout)
        copy = wh.execute(wh.derived_table(name))
        key = columns[layout.name]
        ordered = copy.sort_values(key, na_position="last", kind="stable")
        assert copy[key].equals(ordered[key].reset_index(drop=True)), name
        pd.testing.assert_frame_equal(copy.sort_values("order_id", ignore_index=True), plain)
    reads = {
        "city=烟台": "derived__orders__by_place",
        "store=S01": "derived__orders__by_place",
        "city=烟台;tier=白金": "derived__orders__by_place",
        "tier=白金": "derived__orders__by_segment",
        "customer_type=企业": "derived__orders__by_segment",
        "order_channel=app": "derived__orders",
        "": "derived__orders",
    }
    for where, name in reads.items():
        scope = Scope.parse("2021-01", "2021-12", filters=[f for f in where.split(";") if f])
        assert derived(wh, ORDERS, scope).get_name() == name, where
    rows = wh.execute(scoped(wh, "orders", tier, dims=["city"]))
    with wh.transaction() as con:  # as if written by a crmlens without the copy by segment
        con.execute('DROP TABLE "derived__orders__by_segment"')
    assert derived(wh, ORDERS, tier).get_name() == "derived__orders"
    again = wh.execute(scoped(wh, "orders", tier, dims=["city"]))
    key = ["order_id"]
    pd.testing.assert_frame_equal(
        rows.sort_values(key, ignore_index=True), again.sort_values(key, ignore_index=True)
    )
    neighbours = ["seq__next_ts", "seq__prev_ts"]
    pd.testing.assert_frame_equal(
        rows.drop(columns=neighbours).sort_values(key, ignore_index=True),
        canonical.sort_values(key, ignore_index=True),
    )
    assert len(rows) > 0


def _order_categories(wh: Warehouse) -> int:
    """Distinct (order, category) pairs of the lines of known orders, counted with pandas."""
    lines = wh.execute(table(wh, "order_lines").select("order_id", "sku"))
    products = wh.execute(table(wh, "products").select("sku", "category"))
    orders = set(wh.execute(table(wh, "orders").order_id))
    pairs = lines.merge(products, on="sku", how="left").fillna({"category": "未知"})
    pairs = pairs[pairs["order_id"].isin(orders)]
    return len(pairs.drop_duplicates(["order_id", "category"]))


def test_the_repurchase_rate_is_fused_with_the_order_measures_when_sequenced(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With each order's neighbours stored, the repurchase rate is one more aggregate over the
    orders: computed in the same query as revenue and buying customers, with the numbers the
    per-customer count over the canonical tables gives."""
    names = ["revenue", "customers", "repurchase_rate"]
    quarters = Scope.parse("2021-01", "2021-12", "quarter")
    periods = quarters.periods()
    plain = compute_many(wh, metrics(names), quarters, periods, ("tier",))
    wh.write_derived(derived_tables(wh))
    ran: list[object] = []
    for name in ("execute", "run_compiled"):  # the expressions, and compiled plans
        run = getattr(wh, name)
        monkeypatch.setattr(wh, name, lambda query, run=run: ran.append(query) or run(query))
    fused = compute_many(wh, metrics(names), quarters, periods, ("tier",))
    assert len(ran) == 1
    for name in names:
        pd.testing.assert_frame_equal(fused[name], plain[name], check_exact=False, rtol=1e-12)
    assert fused["repurchase_rate"]["value"].between(0, 1).all()


def test_category_shares_add_up_per_order_and_are_in_time_order(wh: Warehouse) -> None:
    """Each order's shares add up to one; rows in time order (a period's scan skips the rest);
    a breakdown by category reads them and gives what the lines give."""
    scope = Scope.parse("2021-04", "2021-06", filters=["store=S01"])
    before = value(wh, "revenue", scope.narrow(category=["饼干"]))
    wh.write_derived(derived_tables(wh))
    shares = wh.execute(wh.derived_table(ORDER_CATEGORIES))
    sums = shares.groupby("l__order")["l__weight"].sum()
    assert len(sums) > 100 and ((sums - 1).abs() < 1e-9).all()
    assert shares["l__ts"].is_monotonic_increasing
    assert ORDER_CATEGORIES in usable_derived(wh)
    assert value(wh, "revenue", scope.narrow(category=["饼干"])) == pytest.approx(before, rel=1e-12)


def test_a_load_drops_them_and_the_metrics_notice_at_once(wh: Warehouse, export: Path) -> None:
    wh.write_derived(derived_tables(wh))
    assert derived(wh, ORDERS) is not None
    load_demo_export(wh, export)  # the same files again: no change, but a load
    assert wh.derived_names() == frozenset()
    assert derived(wh, ORDERS) is None
    assert value(wh, "revenue", YEAR) > 0  # read from the canonical tables, no error


def test_a_failed_load_keeps_them(wh: Warehouse, export: Path, tmp_path: Path) -> None:
    wh.write_derived(derived_tables(wh))
    broken = tmp_path / "broken"
    shutil.copytree(export, broken)
    (broken / "shop" / "orders.csv").unlink()
    with pytest.raises(LoadError, match="missing file"):
        load_demo_export(wh, broken)
    assert set(usable_derived(wh)) == set(derived_tables(wh))


def test_one_with_other_columns_is_not_used(wh: Warehouse) -> None:
    """A derived table written by another crmlens version (other columns) is ignored."""
    orders = table(wh, "orders")
    wh.write_derived({"derived__orders": orders.order_by("order_time")})
    assert wh.derived_names() == {"derived__orders"}
    assert derived(wh, ORDERS) is None and usable_derived(wh) == {}
    assert value(wh, "revenue", YEAR) > 0


def test_only_derived_names_are_written(wh: Warehouse) -> None:
    with pytest.raises(WarehouseError, match="not a derived table"):
        wh.write_derived({"orders": table(wh, "orders")})
    with pytest.raises(WarehouseError, match="not a derived table"):
        wh.derived_table("orders")


def test_the_quality_report_reads_the_same_figures_from_them(wh: Warehouse) -> None:
    """Counted in the tables, or read from the derived table of figures: the same report, a
    duplicate key and a missing required value planted (the loader lets neither in)."""
    with wh.transaction() as con:
        con.execute("INSERT INTO stores SELECT * FROM stores ORDER BY store_id LIMIT 1")
        con.execute(
            "UPDATE orders SET store_id = NULL WHERE order_id = (SELECT min(order_id) FROM orders)"
        )
    day = date(2022, 1, 1)
    counted, duplicates = quality_report(wh, as_of=day), duplicate_keys(wh)
    wh.write_derived(derived_tables(wh))
    assert TABLE_FIGURES in usable_derived(wh)
    pd.testing.assert_frame_equal(quality_report(wh, as_of=day), counted)
    pd.testing.assert_frame_equal(duplicate_keys(wh), duplicates)
    by_table = counted.set_index("table")
    assert by_table.loc["stores", "duplicate_keys"] == 1
    assert by_table.loc["orders", "missing_pct"] > 0


def test_retention_counts_a_return_on_the_last_day_of_the_window_only(wh: Warehouse) -> None:
    """Two new customers, first orders on 2021-03-10: one is back on day 30 (counts for 30-day
    retention), one just after midnight on day 31 (does not). Read from the derived first orders
    and from the orders, the same retention."""
    with wh.transaction() as con:
        con.execute(
            "INSERT INTO customers (customer_id, customer_type, city) "
            "VALUES ('T0000001', '个人', '潍坊'), ('T0000002', '个人', '潍坊')"
        )
        con.execute(
            "INSERT INTO orders (order_id, customer_id, order_time, amount, is_refund) VALUES "
            "('T1', 'T0000001', TIMESTAMP '2021-03-10 10:00', 10, false), "
            "('T2', 'T0000001', TIMESTAMP '2021-04-09 23:59', 10, false), "
            "('T3', 'T0000002', TIMESTAMP '2021-03-10 10:00', 10, false), "
            "('T4', 'T0000002', TIMESTAMP '2021-04-10 00:01', 10, false)"
        )
    march = Scope.parse("2021-03").narrow(city="潍坊")
    counted = value(wh, "retention_30d", march)
    wh.write_derived(derived_tables(wh))
    assert FIRST_ORDERS in usable_derived(wh)
    assert value(wh, "retention_30d", march) == counted
