"""`crmlens ingest` on real public data (../shared/datasets, see its SOURCES.md).

The mappings in tests/fixtures/mappings state the rules (guests, refunds, duplicates) in their
comments; these tests check that the published figures come out of the warehouse. Online Retail
(541,909 lines in 305 files) is loaded once for the module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crmlens.ingest import dry_run, ingest, profile, propose, read_input
from crmlens.ingest.load import LoadReport
from crmlens.ingest.mapping_file import IngestMapping, load_mapping
from crmlens.warehouse import Warehouse

pytestmark = pytest.mark.datasets
MAPPINGS = Path(__file__).parents[1] / "fixtures" / "mappings"


def _datasets() -> Path:
    env = os.environ.get("CRMLENS_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


@pytest.fixture(scope="module")
def datasets() -> Path:
    path = _datasets()
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (set CRMLENS_DATASETS to override)")
    return path


def _one(wh: Warehouse, sql: str) -> tuple:
    row = wh.raw.execute(sql).fetchone()
    assert row is not None
    return row


@dataclass
class Loaded:
    wh: Warehouse
    report: LoadReport
    mapping: IngestMapping


@pytest.fixture(scope="module")
def retail(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    folder = datasets / "online_retail" / "by-day"
    if len(list(folder.glob("*.csv"))) != 305:
        pytest.skip(f"expected 305 Online Retail day files in {folder}")
    mapping = load_mapping(MAPPINGS / "online_retail.toml")
    raw = read_input(folder / "*.csv", mapping.read, expected=mapping.headers)
    wh = Warehouse(tmp_path_factory.mktemp("retail") / "retail.duckdb")
    report = ingest(wh, raw, mapping)
    yield Loaded(wh, report, mapping)
    wh.close()


def test_online_retail_all_rows_accounted_for(retail: Loaded) -> None:
    lines = retail.report.source(
        next(s.source for s in retail.report.sources if s.table == "order_lines")
    )
    assert lines.rows_read == 541_909
    assert lines.rows_loaded == 541_909 and lines.rows_quarantined == lines.rows_merged == 0
    assert retail.report.balanced
    total, n = _one(retail.wh, "SELECT round(sum(amount), 2), count(*) FROM order_lines")
    assert (total, n) == (9_747_747.93, 541_909)


def test_online_retail_orders_refunds_and_guests(retail: Loaded) -> None:
    orders = next(s for s in retail.report.sources if s.table == "orders")
    # 25,900 invoices; the 2 negative "A" bad-debt adjustments are not refunds: quarantined errors
    assert orders.rows_read == 25_900
    assert orders.rejected_by_rule == {"negative_amount_not_refund": 2}
    refunds, linked, refund_total = _one(
        retail.wh,
        "SELECT count(*), count(original_order_id), round(sum(amount), 2) FROM orders "
        "WHERE is_refund",
    )
    assert refunds == 3_836  # every C invoice, and only those
    assert _one(
        retail.wh, "SELECT count(*) FROM orders WHERE is_refund <> starts_with(order_id, 'C')"
    ) == (0,)
    assert refund_total == -896_812.49
    assert 0.75 < linked / refunds < 0.9  # the rest were bought before the data starts
    # a linked refund points to an earlier order of the same customer
    bad_links = _one(
        retail.wh,
        "SELECT count(*) FROM orders r JOIN orders o ON o.order_id = r.original_order_id "
        "WHERE o.customer_id <> r.customer_id OR o.order_time > r.order_time OR o.is_refund",
    )
    assert bad_links == (0,)
    sales = _one(retail.wh, "SELECT round(sum(amount), 2) FROM orders WHERE NOT is_refund")
    assert sales == (10_666_684.54,)  # before refunds (without the 11,062.06 adjustments)
    guests, guest_lines = _one(
        retail.wh,
        "SELECT count(DISTINCT o.order_id), count(*) FROM orders o JOIN order_lines l "
        "USING (order_id) WHERE o.customer_id IS NULL",
    )
    # the 135,080 lines without CustomerID: guest orders' lines, plus the lines of the two
    # quarantined adjustments (whose lines load, but whose orders do not)
    unordered = _one(
        retail.wh,
        "SELECT count(*) FROM order_lines WHERE order_id NOT IN (SELECT order_id FROM orders)",
    )
    assert (guest_lines, unordered) == (135_078, (2,)) and guests == 3_708


def test_online_retail_customers_and_ids(retail: Loaded) -> None:
    customers = _one(retail.wh, "SELECT count(*), count(DISTINCT anon_id) FROM customers")
    assert customers == (4_372, 4_372)
    assert _one(retail.wh, "SELECT count(*) FROM orders WHERE customer_id LIKE '%.0'") == (0,)
    orphans = _one(
        retail.wh,
        "SELECT count(*) FROM orders WHERE customer_id NOT IN (SELECT customer_id FROM customers)",
    )
    assert orphans == (0,)
    assert _one(retail.wh, "SELECT min(order_time), max(order_time) FROM orders") == (
        _one(retail.wh, "SELECT TIMESTAMP '2010-12-01 08:26:00', TIMESTAMP '2011-12-09 12:50:00'")
    )


def test_online_retail_exact_duplicates_merge_when_asked(datasets: Path) -> None:
    """With exact_duplicates = "merge" an identical line of the same invoice is merged (counted)."""
    folder = datasets / "online_retail" / "by-day"
    mapping = load_mapping(MAPPINGS / "online_retail.toml")
    merged = IngestMapping(
        mapping.kind,
        tuple(c for c in mapping.columns if not c.target.startswith(("orders.", "customers."))),
        read=mapping.read,
        rules={"exact_duplicates": "merge"},
    )
    raw = read_input(folder / "2010-12-0*.csv", merged.read)
    result = dry_run(raw, merged).report.sources[0]
    assert result.table == "order_lines" and result.balanced
    rows = raw.arrow.drop_columns(["source_file", "__line"]).to_pylist()
    distinct = len({tuple(r.values()) for r in rows})
    assert result.rows_merged == raw.rows - distinct > 0


def test_cdnow_whitespace_and_compact_dates(datasets: Path, tmp_path: Path) -> None:
    mapping = load_mapping(MAPPINGS / "cdnow.toml")
    raw = read_input(
        datasets / "cdnow" / "CDNOW_master.txt", mapping.read, expected=mapping.headers
    )
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = ingest(wh, raw, mapping)
        (res,) = report.sources
        assert (res.rows_read, res.rows_loaded) == (69_659, 69_659)
        row = _one(
            wh,
            "SELECT count(DISTINCT customer_id), min(order_time)::DATE, max(order_time)::DATE "
            "FROM orders",
        )
        assert row == _one(wh, "SELECT 23570, DATE '1997-01-01', DATE '1998-06-30'")
        # leading zeros of the IDs are kept, the key is file and line
        first = "SELECT customer_id, amount FROM orders WHERE order_id = 'CDNOW_master-2'"
        assert _one(wh, first) == ("00001", 11.77)


def test_cdnow_suggestion_finds_orders(datasets: Path) -> None:
    from crmlens.ingest.mapping_file import ReadOptions

    raw = read_input(datasets / "cdnow" / "CDNOW_master.txt", ReadOptions(delimiter="whitespace"))
    suggestion = propose(raw, None)
    assert suggestion.kind == "orders" and suggestion.fits
    chosen = {c.target: c.header for c in suggestion.columns}
    assert chosen["order_time"] == "date" and chosen["amount"] == "dollar_value"


def test_telco_blank_total_charges_never_crash(datasets: Path, tmp_path: Path) -> None:
    mapping = load_mapping(MAPPINGS / "telco_churn.toml")
    path = datasets / "telco_churn" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
    raw = read_input(path, mapping.read)
    charges = next(p for p in profile(raw) if p.header == "TotalCharges")
    assert (charges.kind, charges.blank, charges.non_empty) == ("float", 11, 7_032)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        (res,) = ingest(wh, raw, mapping).sources
        assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (7_043, 7_043, 0)
        assert _one(wh, "SELECT count(*) FILTER (gender = 'Female') > 3000 FROM customers") == (
            True,
        )


def test_online_shoppers_fits_no_table_and_null_revenue_is_reported(datasets: Path) -> None:
    from crmlens.ingest.mapping_file import ReadOptions

    raw = read_input(datasets / "clickstream" / "online_shoppers_intention.csv", ReadOptions())
    assert raw.rows == 12_359
    assert not propose(raw, None).fits  # sessions without user or time: no canonical table
    revenue = next(p for p in profile(raw) if p.header == "Revenue")
    assert (revenue.kind, revenue.null_tokens, revenue.examples) == ("bool", 29, ("NULL",))


def test_cookie_cats_bom_crlf_experiment_units(datasets: Path, tmp_path: Path) -> None:
    mapping = load_mapping(MAPPINGS / "cookie_cats.toml")
    raw = read_input(
        datasets / "ab_test" / "cookie_cats.csv", mapping.read, expected=mapping.headers
    )
    assert raw.headers[0] == "userid"  # the byte-order mark is not part of the first header
    assert raw.arrow.column("retention_7").to_pylist()[0] == "FALSE"  # no trailing CR
    with Warehouse(tmp_path / "w.duckdb") as wh:
        (res,) = ingest(wh, raw, mapping).sources
        assert (res.rows_read, res.rows_loaded) == (90_189, 90_189)
        groups = wh.raw.execute(
            "SELECT variant, count(*) FROM experiment_units GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert groups == [("gate_30", 44_700), ("gate_40", 45_489)]
