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


def test_telco_customers_and_attributes_blank_total_charges_by_rule(
    datasets: Path, tmp_path: Path
) -> None:
    """The 11 blank TotalCharges are exactly the tenure-0 customers: defaulted to 0 by the
    mapping's rule, each recorded as inferred with its line; every column is kept."""
    mapping = load_mapping(MAPPINGS / "telco_churn.toml")
    path = datasets / "telco_churn" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
    raw = read_input(path, mapping.read, expected=mapping.headers)
    charges = next(p for p in profile(raw) if p.header == "TotalCharges")
    assert (charges.kind, charges.blank, charges.non_empty) == ("float", 11, 7_032)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = ingest(wh, raw, mapping)
        assert report.balanced
        customers, *attributes = report.sources
        assert (customers.table, customers.rows_read, customers.rows_loaded) == (
            "customers",
            7_043,
            7_043,
        )
        # 19 attributes; total_charges in two sources: where its default may apply, and the rest
        assert len(attributes) == 20 and len(mapping.attributes) == 19
        total, rest = (r for r in attributes if ".total_charges" in r.source)
        for res in attributes:
            assert res.table == "customer_attributes" and res.values_cleared == 0
            expected = 11 if res is total else 7_032 if res is rest else 7_043
            assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (expected, expected, 0)
        assert total.source.endswith("(tenure_months = 0)") and rest.source.endswith("(otherwise)")
        assert (total.values_inferred, total.cleared_by_rule) == (11, {"default_total_charges": 11})
        assert rest.values_inferred == 0
        # each inferred total: its line, the header, the original text, a tenure-0 customer
        inferred = wh.raw.execute(
            "SELECT q.line_no, q.column_name, q.action, q.original_value, q.id, "
            "t.value_number AS tenure, a.value_number AS total FROM (SELECT *, "
            "json_extract_string(row_json, '$.customerID') AS id FROM quarantine "
            "WHERE rule = 'default_total_charges') q "
            "JOIN customer_attributes t ON t.customer_id = q.id AND t.attribute = 'tenure_months' "
            "JOIN customer_attributes a ON a.customer_id = q.id AND a.attribute = 'total_charges' "
            "ORDER BY q.line_no"
        ).fetchall()
        assert len(inferred) == 11 and inferred[0][0] == 490  # line 490 of the file
        assert {r[1:3] for r in inferred} == {("TotalCharges", "inferred")}
        assert {r[3] for r in inferred} == {" "}  # the single space, as read
        assert {(r[5], r[6]) for r in inferred} == {(0.0, 0.0)}
        assert _one(
            wh,
            "SELECT count(*) FROM customer_attributes WHERE attribute = 'tenure_months' "
            "AND value_number = 0",
        ) == (11,)  # the tenure-0 customers are exactly those
        # the published churn split, from the churn attribute
        churn = wh.raw.execute(
            "SELECT value_bool, count(*) FROM customer_attributes WHERE attribute = 'churn' "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert churn == [(False, 5_174), (True, 1_869)]
        kinds = dict(
            wh.raw.execute(
                "SELECT attribute, any_value(value_kind) FROM customer_attributes GROUP BY 1"
            ).fetchall()
        )
        assert (kinds["contract"], kinds["monthly_charges"], kinds["senior_citizen"]) == (
            "string",
            "money",
            "bool",
        )
        assert _one(
            wh,
            "SELECT round(sum(value_number), 2) FROM customer_attributes "
            "WHERE attribute = 'monthly_charges'",
        ) == (456_116.6,)
        assert _one(wh, "SELECT count(*) FILTER (gender = 'Female') > 3000 FROM customers") == (
            True,
        )


def test_online_shoppers_sessions_null_revenue_quarantined(datasets: Path, tmp_path: Path) -> None:
    """12,359 sessions without user or time: the 29 NULL Revenue rows are quarantined, 12,330
    load, and every row is accounted for (sessions and their attributes)."""
    from crmlens.ingest.mapping_file import ReadOptions

    path = datasets / "clickstream" / "online_shoppers_intention.csv"
    unmapped = read_input(path, ReadOptions())
    suggestion = propose(unmapped, None)
    # web sessions, but the file has no session ID: loading needs a mapping stating that rule
    assert suggestion.kind == "web_sessions" and not suggestion.fits
    revenue = next(p for p in profile(unmapped) if p.header == "Revenue")
    assert (revenue.kind, revenue.null_tokens, revenue.examples) == ("bool", 29, ("NULL",))
    mapping = load_mapping(MAPPINGS / "online_shoppers.toml")
    raw = read_input(path, mapping.read, expected=mapping.headers)
    assert raw.rows == 12_359
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = ingest(wh, raw, mapping)
        assert report.balanced
        sessions, *attributes = report.sources
        assert (sessions.table, sessions.rows_read, sessions.rows_loaded) == (
            "web_sessions",
            12_359,
            12_330,
        )
        assert (sessions.rows_quarantined, sessions.rows_merged) == (29, 0)
        assert sessions.rejected_by_rule == {"bad_bool": 29}
        assert len(attributes) == 10
        for res in attributes:
            assert res.table == "session_attributes"
            assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (12_359, 12_330, 29)
            assert res.rejected_by_rule == {"unknown_session": 29}
        records = wh.raw.execute(
            "SELECT line_no, column_name, original_value, source FROM quarantine "
            "WHERE table_name = 'web_sessions' ORDER BY line_no"
        ).fetchall()
        assert len(records) == 29 and records[0][0] == 747
        assert {r[1:3] for r in records} == {("Revenue", "NULL")}
        assert {r[3] for r in records} == {str(path)}
        # no attribute without its session
        assert _one(
            wh,
            "SELECT count(*) FROM session_attributes WHERE session_id NOT IN "
            "(SELECT session_id FROM web_sessions)",
        ) == (0,)
        # the published class balance of the 12,330 canonical rows: 1,908 sessions with revenue
        assert _one(wh, "SELECT count(*) FILTER (converted), count(*) FROM web_sessions") == (
            1_908,
            12_330,
        )
        assert _one(
            wh,
            "SELECT value_number FROM session_attributes "
            "WHERE session_id = 'online_shoppers_intention-2' AND attribute = 'product_pages'",
        ) == (2.0,)


def test_cookie_cats_experiment_units_and_outcomes(datasets: Path, tmp_path: Path) -> None:
    mapping = load_mapping(MAPPINGS / "cookie_cats.toml")
    raw = read_input(
        datasets / "ab_test" / "cookie_cats.csv", mapping.read, expected=mapping.headers
    )
    assert raw.headers[0] == "userid"  # the byte-order mark is not part of the first header
    assert raw.arrow.column("retention_7").to_pylist()[0] == "FALSE"  # no trailing CR
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = ingest(wh, raw, mapping)
        assert report.balanced
        assert [(s.table, s.rows_read, s.rows_loaded) for s in report.sources] == [
            ("experiments", 1, 1),
            ("experiment_units", 90_189, 90_189),
            *[("customer_attributes", 90_189, 90_189)] * 3,
        ]
        assert _one(wh, "SELECT experiment_id, kind FROM experiments") == ("cookie_cats", "ab_test")
        groups = wh.raw.execute(
            "SELECT variant, count(*) FROM experiment_units GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert groups == [("gate_30", 44_700), ("gate_40", 45_489)]
        assert _one(
            wh, "SELECT count(*) FROM experiment_units WHERE experiment_id NOT IN "
            "(SELECT experiment_id FROM experiments)"
        ) == (0,)  # fmt: skip
        # the published retention rates per gate, from the units and their outcomes
        rates = wh.raw.execute(
            "SELECT u.variant, a.attribute, round(100 * avg(a.value_bool::INT), 2) "
            "FROM experiment_units u JOIN customer_attributes a ON a.customer_id = u.unit_id "
            "WHERE a.attribute LIKE 'cookie_cats_retention_%' GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        assert rates == [
            ("gate_30", "cookie_cats_retention_1", 44.82),
            ("gate_30", "cookie_cats_retention_7", 19.02),
            ("gate_40", "cookie_cats_retention_1", 44.23),
            ("gate_40", "cookie_cats_retention_7", 18.2),
        ]
        rounds = _one(
            wh,
            "SELECT sum(value_number)::BIGINT, max(value_number)::BIGINT FROM customer_attributes "
            "WHERE attribute = 'cookie_cats_rounds'",
        )
        assert rounds == (4_678_325, 49_854)
