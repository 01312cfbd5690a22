"""The same metrics on Spark, and on DuckDB's derived tables, as on DuckDB's canonical tables.

The demo company (3,000 customers, seed 42) is generated and loaded into DuckDB by the real loader
(no build: no derived tables, so the metrics read the canonical tables). It is then read two other
ways, each a parameter of the ``engines`` fixture:

- ``spark``: copied into a local Spark session (local[2], no UI, bound to 127.0.0.1); skipped only
  when no Java runtime is installed;
- ``derived``: a copy of the DuckDB file with the derived tables written (as ``crmlens build``
  writes them), which the metrics then read instead of joining the customers.

Every KPI of the registry (a year by month, with 环比/同比 and targets), the seed-002 overview,
breakdowns with filters and top-N, a monthly cohort table and the lifecycle statuses are computed
both ways and must agree: counts exactly, money and ratios to 1e-9 relative (floats are added in
different orders).
"""

from __future__ import annotations

import doctest
import importlib
import math
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crmlens.errors import ConfigError, WarehouseError
from crmlens.metrics import (
    REGISTRY,
    SEED_OVERVIEW,
    Scope,
    breakdown,
    cohort_table,
    lifecycle,
    member_trend,
    overview,
    segment_table,
    timeseries,
)
from crmlens.metrics.derived_tables import derived_tables
from crmlens.metrics.facts import FACTS, derived, usable_derived
from crmlens.warehouse import Warehouse
from crmlens.warehouse.engines import IbisWarehouse, SparkWarehouse, copy_to_spark

pytestmark = [
    pytest.mark.slow,
    # PySpark 4.0's own toPandas() on pandas 3: a deprecation inside PySpark, not in our code
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

YEAR = Scope(date(2021, 1, 1), date(2021, 12, 31), "month")
REL = 1e-9
# float sums that cancel to zero on one engine may leave ~1e-12 on the other
ABS = 1e-9
#: What the metrics read: the facts' tables, and products, order lines and targets they join.
TABLES = sorted({f.table for f in FACTS.values()} | {"products", "order_lines", "targets"})


def java_available() -> bool:
    """Whether PySpark can start a JVM: ``$JAVA_HOME/bin/java`` or ``java`` on the PATH."""
    home = os.environ.get("JAVA_HOME")
    return bool(home and (Path(home) / "bin" / "java").exists()) or shutil.which("java") is not None


@dataclass
class Engines:
    #: The canonical tables on DuckDB: the reference.
    duck: Warehouse
    #: The other way of reading them: Spark, or DuckDB with the derived tables.
    other: SparkWarehouse | Warehouse


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """The demo company loaded into DuckDB, without derived tables."""
    from crmlens.demo import DemoConfig, generate
    from crmlens.ingest import load_demo_export

    tmp = tmp_path_factory.mktemp("parity")
    generate(DemoConfig(customers=3000, seed=42, out_dir=tmp / "export"))
    with Warehouse(tmp / "w.duckdb") as duck:
        load_demo_export(duck, tmp / "export")
        duck.checkpoint()
        assert derived(duck, FACTS["orders"]) is None
        yield duck


@pytest.fixture(scope="module", params=["derived", "spark"])
def engines(
    request: pytest.FixtureRequest, loaded: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engines]:
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "derived":
        shutil.copyfile(loaded.path, tmp / "copy.duckdb")
        with Warehouse(tmp / "copy.duckdb") as copy:
            copy.write_derived(derived_tables(copy))
            assert set(usable_derived(copy)) == set(derived_tables(copy)) == copy.derived_names()
            yield Engines(loaded, copy)
        return
    if not java_available():
        pytest.skip(
            "no Java runtime (Spark needs Java 17+): apt-get install openjdk-17-jre-headless"
        )
    from crmlens.warehouse.engines import local_spark_session

    session = local_spark_session(
        cores=2, driver_memory="1g", shuffle_partitions=2, warehouse_dir=tmp / "spark-warehouse"
    )
    try:
        yield Engines(loaded, copy_to_spark(loaded, session, TABLES))
    finally:
        session.stop()


# -- comparing ------------------------------------------------------------------------------
def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def assert_same(
    duck: pd.DataFrame,
    other: pd.DataFrame,
    *,
    keys: Iterable[str],
    exact: Iterable[str] = (),
    what: str = "",
) -> None:
    """Same columns and rows (matched on ``keys``); numbers in ``exact`` equal, other numbers equal
    to :data:`REL` relative, everything else equal; missing only where missing on both."""
    keys, exact = list(keys), set(exact)
    assert list(duck.columns) == list(other.columns), what
    assert len(duck) == len(other), (
        f"{what}: {len(duck)} rows on DuckDB, {len(other)} the other way"
    )
    assert len(duck) > 0, f"{what}: nothing to compare"
    duck = duck.sort_values(keys, ignore_index=True)
    other = other.sort_values(keys, ignore_index=True)
    for column in duck.columns:
        for i, (d, s) in enumerate(zip(duck[column], other[column], strict=True)):
            where = f"{what} {column} at {duck.loc[i, keys].to_dict()}: DuckDB {d!r}, other {s!r}"
            if _missing(d) or _missing(s):
                assert _missing(d) and _missing(s), where
            elif _number(d) and _number(s):
                if column in exact:
                    assert d == s, where
                else:
                    assert math.isclose(d, s, rel_tol=REL, abs_tol=ABS), where
            else:
                assert d == s, where


def both(engines: Engines, fn: Any, *args: Any, **kwargs: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``fn(wh, *args, **kwargs)`` on DuckDB's canonical tables and the other way."""
    return fn(engines.duck, *args, **kwargs), fn(engines.other, *args, **kwargs)


# -- the engine adapter, without Spark -------------------------------------------------------
def test_engines_doctests() -> None:
    result = doctest.testmod(importlib.import_module("crmlens.warehouse.engines"))
    assert result.attempted and not result.failed


def test_ibis_warehouse_names_what_is_missing() -> None:
    import ibis

    wh = IbisWarehouse(ibis.duckdb.connect())
    with pytest.raises(WarehouseError, match="canonical table 'orders' not found"):
        wh.table("orders")
    with pytest.raises(ConfigError, match="unknown table"):
        wh.table("no_such_table")
    assert wh.tables() == []


# -- the copy -------------------------------------------------------------------------------
def test_copy_keeps_rows_and_times(engines: Engines) -> None:
    """Row counts and the range of every time column: a time-zone shift in the copy would move
    the earliest and latest timestamps."""
    duck = [d for d in engines.duck.describe() if d["table"] in TABLES]
    other = [d for d in engines.other.describe() if d["table"] in TABLES]
    assert [d["table"] for d in other] == [d["table"] for d in duck]
    for d, s in zip(duck, other, strict=True):
        assert d["rows"] == s["rows"], d["table"]
        for bound in ("min", "max"):
            if d.get(bound) is not None:
                assert pd.Timestamp(d[bound]) == pd.Timestamp(s[bound]), (d["table"], bound)
    assert engines.other.row_count("orders") > 5000


# -- the KPI suite --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_kpi_by_month(engines: Engines, name: str) -> None:
    m = REGISTRY[name]
    duck, other = both(
        engines, timeseries, [name], YEAR, compare=True, targets=bool(m.target_names)
    )
    counts = ("value", "previous", "last_year") if m.unit == "count" and m.additive else ()
    assert_same(duck, other, keys=["period"], exact=counts, what=name)
    assert duck["value"].notna().any(), f"{name}: no value in any month, the check proves nothing"


@pytest.mark.parametrize(
    ("grain", "filters"),
    [("week", {}), ("quarter", {"tier": "白金"}), ("day", {"city": "烟台"})],
    ids=["week", "quarter_tier", "day_city"],
)
def test_customer_kpis_by_grain(engines: Engines, grain: str, filters: dict[str, str]) -> None:
    """The KPIs that count distinct customers, at grains whose periods are shorter and longer
    than their 90-day windows (the derived orders count them another way when periods are
    short), with 环比/同比."""
    names = [
        "customers",
        "purchase_frequency",
        "active_customers",
        "churned_customers",
        "churn_rate",
        "repurchase_rate",
        "retention_30d",
    ]
    start = date(2021, 10, 1) if grain == "day" else date(2021, 1, 1)
    scope = Scope(start, date(2021, 12, 31), grain).narrow(**filters)
    duck, other = both(engines, timeseries, names, scope, compare=True)
    counts = ("value", "previous", "last_year")
    for name in names:
        pick = duck["metric"] == name, other["metric"] == name
        exact = counts if REGISTRY[name].unit == "count" and REGISTRY[name].additive else ()
        assert_same(duck[pick[0]], other[pick[1]], keys=["period"], exact=exact, what=name)
    assert duck["value"].notna().sum() > len(names)


def test_seed_overview(engines: Engines) -> None:
    duck, other = both(engines, overview, SEED_OVERVIEW, Scope.parse("2021-11"))
    assert_same(duck, other, keys=["metric"], what="overview")
    assert duck["value"].notna().all()


@pytest.mark.parametrize(
    "filters",
    [
        {"city": "烟台"},
        {"tier": "白金", "customer_type": "个人"},
        {"age_band": "30-39"},
        {"store": "S01", "region": "华东"},
    ],
    ids=["city", "tier_type", "age", "store_region"],
)
def test_dashboard_overview_filtered(engines: Engines, filters: dict[str, str]) -> None:
    """The dashboard's KPI cards under customer filters (read from the joined customer columns
    of the derived orders) and a store filter (from the orders' own)."""
    scope = YEAR.narrow(**filters)
    duck, other = both(engines, overview, [n for n in REGISTRY if _filterable(n, scope)], scope)
    assert_same(duck, other, keys=["metric"], what=str(filters))
    assert duck["value"].notna().sum() > 10


def _filterable(name: str, scope: Scope) -> bool:
    return all(d in REGISTRY[name].dimensions for d in scope.constraints())


def test_segment_table(engines: Engines) -> None:
    """Seed 002's region × customer type table: buying customers, 客单价, repurchase, CSAT."""
    duck, other = both(engines, segment_table, Scope.parse("2021-11"))
    assert_same(duck, other, keys=["region", "customer_type"], exact=["customers"], what="segment")


def test_filtered_breakdown_with_top(engines: Engines) -> None:
    """Three dimensions (customers' attributes), a filter through the order lines' categories
    and top-N folding into 其他."""
    scope = Scope.parse("2021-Q3").narrow(order_channel=["POS", "app"])
    dims = ["city", "customer_type", "tier"]
    duck, other = both(engines, breakdown, ["revenue", "customers", "aov"], scope, dims, top=5)
    assert_same(duck, other, keys=dims, exact=["customers"], what="breakdown")
    assert "其他" in set(duck["city"])
    by_category = Scope.parse("2021-Q4").narrow(category=["饼干", "豆制品"])
    duck, other = both(engines, breakdown, ["revenue", "orders"], by_category, ["age_band"])
    assert_same(duck, other, keys=["age_band"], exact=["orders"], what="category breakdown")


@pytest.mark.parametrize(
    "filters",
    [
        {"store": ["S01"]},
        {"city": ["烟台", "青岛"], "tier": ["白金"]},
        {"customer_type": ["企业"]},
        {"tier": ["未知"]},
    ],
    ids=["store", "cities_tier", "type", "unknown_tier"],
)
def test_breakdown_by_category_of_a_place_or_segment(
    engines: Engines, filters: dict[str, list[str]]
) -> None:
    """The overview's bottom of the drill-down: a store's revenue and customers by category, and
    the same under place and customer filters (the orders then read from a layout's copy) and
    for the walk-in orders (of no tier)."""
    scope = Scope.parse("2021-03", "2021-08").narrow(**filters)
    dims = ["category"]
    duck, other = both(engines, breakdown, ["revenue", "customers"], scope, dims, top=6)
    assert_same(duck, other, keys=dims, exact=["customers"], what=f"{filters} by category")
    assert len(duck) == 7 and "其他" in set(duck["category"])


# -- cohorts and lifecycle ------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"mode": "on_or_after"},
        {"measure": "revenue"},
        {"cohort_by": "signup"},
    ],
    ids=["first_order", "on_or_after", "revenue", "signup"],
)
def test_monthly_cohort_table(engines: Engines, options: dict[str, str]) -> None:
    duck, other = both(engines, cohort_table, YEAR, **options)
    exact = ["cohort_size"] if options.get("measure") == "revenue" else ["cohort_size", "value"]
    assert_same(duck, other, keys=["cohort", "period_index"], exact=exact, what=str(options))
    assert (duck["cohort_size"] > 0).all()


@pytest.mark.parametrize(
    "scope",
    [
        YEAR,
        Scope.parse("2020-01", "2021-12", grain="quarter", filters=["city=烟台"]),
        Scope.parse("2021-10", "2021-12", grain="week", filters=["tier=白金,黄金"]),
        Scope.parse("2021-06", "2021-08", filters=["store=S01"]),
    ],
    ids=["months", "quarters_city", "weeks_tiers", "store"],
)
def test_lifecycle(engines: Engines, scope: Scope) -> None:
    """Counted from each order's neighbours on the derived orders when every filter is the
    customer's (a store filter keeps the distinct formulation): the same statuses either way."""
    duck, other = both(engines, lifecycle, scope)
    assert_same(duck, other, keys=["period", "status"], exact=["customers"], what="lifecycle")
    for status in ("new", "returning", "resurrecting", "dormant"):
        assert (duck.loc[duck["status"] == status, "customers"] != 0).any(), status


@pytest.mark.parametrize(
    "scope",
    [YEAR, Scope.parse("2021-10", "2021-12", grain="week", filters=["city=烟台"])],
    ids=["months", "weeks_city"],
)
def test_member_trend(engines: Engines, scope: Scope) -> None:
    """Loyal members count each customer's last order per window on the derived orders (no
    distinct): the same members either way, also for week-long periods' overlapping windows."""
    duck, other = both(engines, member_trend, scope)
    counts = ["new_members", "loyal_members", "churned_members", "members"]
    assert_same(duck, other, keys=["period"], exact=counts, what="member trend")
    assert (duck["loyal_members"] > 0).all()
