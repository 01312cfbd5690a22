"""Monthly KPIs on the real Online Retail data (UCI, 2010-12..2011-12) against pandas.

The 541,909 invoice lines become one ``orders`` row per invoice (amount = Σ quantity × unit price;
``C`` invoices are refunds with negative amounts) and one ``customers`` row per CustomerID (region =
Country, signup = first invoice); invoices without a CustomerID are walk-ins. pandas recomputes the
KPIs from the lines themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from crmlens.metrics import Scope, timeseries, value
from crmlens.warehouse import Warehouse

pytestmark = pytest.mark.datasets


@dataclass
class Retail:
    wh: Warehouse
    lines: pd.DataFrame


@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory, datasets: Path, insert) -> Iterator[Retail]:
    folder = datasets / "online_retail" / "by-day"
    files = sorted(folder.glob("*.csv"))
    if len(files) != 305:
        pytest.skip(f"expected 305 Online Retail day files in {folder}, found {len(files)}")
    columns = ["InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
    lines = pd.concat(
        [pd.read_csv(f, usecols=columns, dtype={"InvoiceNo": str}) for f in files],
        ignore_index=True,
    )
    assert len(lines) == 541_909
    lines["InvoiceDate"] = pd.to_datetime(lines["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    lines["CustomerID"] = lines["CustomerID"].astype("Int64").astype("string")
    lines["amount"] = lines["Quantity"] * lines["UnitPrice"]
    refund = lines["InvoiceNo"].str.startswith("C")
    lines["refund"] = refund
    invoices = lines.groupby("InvoiceNo", as_index=False).agg(
        customer_id=("CustomerID", "first"),
        order_time=("InvoiceDate", "min"),
        amount=("amount", "sum"),
        is_refund=("refund", "first"),
    )
    invoices = invoices.rename(columns={"InvoiceNo": "order_id"}).assign(
        status=lambda f: f["is_refund"].map({True: "refunded", False: "completed"})
    )
    known = lines.dropna(subset=["CustomerID"])
    customers = known.groupby("CustomerID", as_index=False).agg(
        region=("Country", "first"), signup_date=("InvoiceDate", "min")
    )
    customers = customers.rename(columns={"CustomerID": "customer_id"}).assign(customer_type="个人")
    wh = Warehouse(tmp_path_factory.mktemp("retail") / "retail.duckdb")
    insert(wh, "orders", invoices)
    insert(wh, "customers", customers)
    yield Retail(wh, lines)
    wh.close()


MONTHS = Scope(date(2010, 12, 1), date(2011, 12, 31), "month")


def _oracle(lines: pd.DataFrame) -> pd.DataFrame:
    month = lines["InvoiceDate"].dt.strftime("%Y-%m")
    sales = lines[~lines["refund"]]
    sales_month = sales["InvoiceDate"].dt.strftime("%Y-%m")
    known = sales.dropna(subset=["CustomerID"])
    known_month = known["InvoiceDate"].dt.strftime("%Y-%m")
    per_customer = known.groupby([known_month, "CustomerID"])["InvoiceNo"].nunique()
    frame = pd.DataFrame(
        {
            "revenue": lines.groupby(month)["amount"].sum(),
            "orders": sales.groupby(sales_month)["InvoiceNo"].nunique(),
            "customers": known.groupby(known_month)["CustomerID"].nunique(),
            "repurchase_rate": (per_customer >= 2).groupby(level=0).mean(),
        }
    )
    frame["aov"] = frame["revenue"] / frame["orders"]
    return frame


def test_monthly_kpis_match_pandas(retail: Retail) -> None:
    names = ["revenue", "orders", "customers", "aov", "repurchase_rate"]
    series = timeseries(retail.wh, names, MONTHS)
    got = series.pivot(index="period", columns="metric", values="value")[names].astype(float)
    expected = _oracle(retail.lines).loc[got.index, names].astype(float)
    pd.testing.assert_frame_equal(got, expected, check_names=False, rtol=1e-9, atol=1e-6)
    # the famous shape of this data: November 2011 is the busiest month
    assert got["revenue"].idxmax() == "2011-11"


def test_a_country_filter_matches_pandas(retail: Retail) -> None:
    scope = Scope(date(2011, 1, 1), date(2011, 6, 30), filters={"region": "Germany"})
    lines = retail.lines
    country = lines.dropna(subset=["CustomerID"]).groupby("CustomerID")["Country"].first()
    germany = lines[lines["CustomerID"].map(country) == "Germany"]
    half = germany[
        (germany["InvoiceDate"] >= "2011-01-01") & (germany["InvoiceDate"] < "2011-07-01")
    ]
    assert value(retail.wh, "revenue", scope) == pytest.approx(half["amount"].sum(), rel=1e-9)
    buyers = half.loc[~half["refund"], "CustomerID"].nunique()
    assert value(retail.wh, "customers", scope) == buyers
