"""RFM on UCI Online Retail: the Ibis feature path and the model against a plain pandas RFM.

The invoices are loaded into a temporary warehouse's ``orders`` table (customers with a CustomerID,
non-cancelled invoices, one order per invoice), so :func:`customer_features` runs through Ibis and
DuckDB; the reference is computed with pandas straight from the line items, as tutorials do it.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmlens.errors import ConfigError, InsufficientDataError, NotFittedError
from crmlens.models.features import customer_features
from crmlens.models.rfm import ABSENT, RFMModel, migration, segments, transition_matrix
from crmlens.warehouse import Warehouse

AS_OF = date(2011, 12, 10)
MID = date(2011, 6, 30)


# -- the data ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lines(datasets: Path) -> pd.DataFrame:
    """Line items of customers with an id on non-cancelled invoices, with their line amount."""
    files = sorted((datasets / "online_retail" / "by-day").glob("*.csv"))
    if len(files) != 305:
        pytest.skip(f"expected 305 Online Retail day files, found {len(files)}")
    raw = pd.concat(
        [pd.read_csv(f, dtype={"InvoiceNo": str, "StockCode": str}) for f in files],
        ignore_index=True,
    )
    kept = raw[raw["CustomerID"].notna() & ~raw["InvoiceNo"].str.startswith("C")].copy()
    kept["customer_id"] = kept["CustomerID"].astype(int).astype(str)
    kept["time"] = pd.to_datetime(kept["InvoiceDate"])
    kept["line_amount"] = kept["Quantity"] * kept["UnitPrice"]
    return kept


@pytest.fixture(scope="module")
def warehouse(lines: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    orders = lines.groupby("InvoiceNo", as_index=False).agg(
        customer_id=("customer_id", "first"),
        order_time=("time", "min"),
        amount=("line_amount", "sum"),
    )
    wh = Warehouse(tmp_path_factory.mktemp("retail") / "w.duckdb")
    wh.raw.register("invoices", orders)
    wh.raw.execute(
        "INSERT INTO orders (order_id, customer_id, order_time, amount, is_refund) "
        "SELECT InvoiceNo, customer_id, order_time, amount, false FROM invoices"
    )
    yield wh
    wh.close()


def reference_features(lines: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Plain pandas R, F, M per customer (recency in calendar days)."""
    upto = lines[lines["time"] < pd.Timestamp(as_of) + pd.Timedelta(days=1)]
    out = upto.groupby("customer_id").agg(
        last=("time", "max"), frequency=("InvoiceNo", "nunique"), monetary=("line_amount", "sum")
    )
    out["recency_days"] = (pd.Timestamp(as_of) - out["last"].dt.normalize()).dt.days
    return out.drop(columns="last").sort_index()


@pytest.fixture(scope="module")
def features(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.execute(customer_features(warehouse.table, as_of=AS_OF))


@pytest.fixture(scope="module")
def reference(lines: pd.DataFrame) -> pd.DataFrame:
    return reference_features(lines, AS_OF)


# -- an independent RFM -------------------------------------------------------------------------
def reference_scores(ref: pd.DataFrame, bins: int = 5) -> pd.DataFrame:
    """The textbook ``qcut(rank(method="first"))`` scores, rows in customer-id order."""
    ref = ref.sort_index()
    labels = list(range(1, bins + 1))
    return pd.DataFrame(
        {
            "r": pd.qcut(ref["recency_days"].rank(method="first"), bins, labels=labels[::-1]),
            "f": pd.qcut(ref["frequency"].rank(method="first"), bins, labels=labels),
            "m": pd.qcut(ref["monetary"].rank(method="first"), bins, labels=labels),
        }
    ).astype(int)


# The common R/F regex map with Lost split off the Hibernating corner (R = 1 and F = 1).
REGEX_MAP = {
    r"11": "Lost",
    r"[1-2][1-2]": "Hibernating",
    r"[1-2][3-4]": "At Risk",
    r"[1-2]5": "Can't Lose Them",
    r"3[1-2]": "About to Sleep",
    r"33": "Need Attention",
    r"[3-4][4-5]": "Loyal Customers",
    r"41": "Promising",
    r"51": "New Customers",
    r"[4-5][2-3]": "Potential Loyalist",
    r"5[4-5]": "Champions",
}


def regex_segment(rf: str) -> str:
    return next(name for pattern, name in REGEX_MAP.items() if re.fullmatch(pattern, rf))


def scored(model: RFMModel) -> pd.DataFrame:
    return model.scores_.set_index("customer_id").sort_index()


# -- features -----------------------------------------------------------------------------------
def test_features_match_pandas(features: pd.DataFrame, reference: pd.DataFrame) -> None:
    got = features.set_index("customer_id").sort_index()
    assert len(got) == len(reference) == 4339
    assert got.index.equals(reference.index)
    assert (got["recency_days"] == reference["recency_days"]).all()
    assert (got["frequency"] == reference["frequency"]).all()
    np.testing.assert_allclose(got["monetary"], reference["monetary"], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(got["aov"], got["monetary"] / got["frequency"])


# -- scores and segments ------------------------------------------------------------------------
def test_quantile_scores_and_en11_match_reference(
    features: pd.DataFrame, reference: pd.DataFrame
) -> None:
    got = scored(RFMModel(scheme="en11").fit(features))
    want = reference_scores(reference)
    for ours, theirs in (("r_score", "r"), ("f_score", "f"), ("m_score", "m")):
        assert (got[ours].to_numpy() == want[theirs].to_numpy()).all(), ours
    rf = want["r"].astype(str) + want["f"].astype(str)
    assert (got["segment"] == rf.map(regex_segment)).all()
    assert set(got["segment"]) == set(segments("en11").index)  # all 11 appear on real data
    counts = got["r_score"].value_counts()
    assert counts.max() - counts.min() <= 1  # rank-based bins are balanced despite ties


def test_cn8_groups_split_at_the_mean(features: pd.DataFrame, reference: pd.DataFrame) -> None:
    got = scored(RFMModel().fit(features))
    r_high = reference["recency_days"] < reference["recency_days"].mean()
    f_high = reference["frequency"] > reference["frequency"].mean()
    m_high = reference["monetary"] > reference["monetary"].mean()
    importance = np.where(m_high, "重要", "一般")
    kind = np.select(
        [r_high & f_high, r_high & ~f_high, ~r_high & f_high], ["价值", "发展", "保持"], "挽留"
    )
    want = pd.Series(importance, index=reference.index) + kind + "客户"
    assert (got["segment"] == want).all()
    assert set(got["segment"]) == set(segments("cn8").index)


def test_levels_and_thresholds(features: pd.DataFrame, reference: pd.DataFrame) -> None:
    levels = scored(RFMModel(scoring="levels").fit(features))
    f = reference["frequency"]
    lo, hi = f.quantile(1 / 3), f.quantile(2 / 3)
    assert (levels["f_score"] == np.where(f <= lo, 1, np.where(f <= hi, 2, 3))).all()
    # equal values always share a level
    assert levels.groupby("frequency")["f_score"].nunique().max() == 1

    cuts = {
        "recency_days": [30, 90, 180, 365],
        "frequency": [1, 2, 5, 10],
        "monetary": [100, 500, 1000, 5000],
    }
    manual = scored(RFMModel(scoring="thresholds", thresholds=cuts, scheme="en11").fit(features))
    r = reference["recency_days"]
    want_r = 5 - np.select([r <= 30, r <= 90, r <= 180, r <= 365], [0, 1, 2, 3], 4)
    assert (manual["r_score"] == want_r).all()
    m = reference["monetary"]
    assert (manual["m_score"] == 1 + (m > 100) + (m > 500) + (m > 1000) + (m > 5000)).all()


def test_summary_adds_up(features: pd.DataFrame) -> None:
    model = RFMModel(scheme="en11").fit(features)
    summary = model.summary_
    assert list(summary.index) == list(segments("en11").index)
    assert summary["customers"].sum() == len(features)
    assert summary["share"].sum() == pytest.approx(1.0)
    assert summary["revenue_share"].sum() == pytest.approx(1.0)
    assert summary.loc["Champions", "mean_r_score"] >= 4
    assert {"action_zh", "action_en", "name_zh", "name_en"} <= set(summary.columns)
    ranges = model.score_ranges_
    assert ranges.groupby("dimension")["customers"].sum().eq(len(features)).all()


def test_migration_between_two_dates(
    warehouse: Warehouse, lines: pd.DataFrame, features: pd.DataFrame
) -> None:
    early = warehouse.execute(customer_features(warehouse.table, as_of=MID))
    before = RFMModel().fit(early).scores_
    after = RFMModel().fit(features).scores_
    matrix = migration(before, after)
    order = [*segments("cn8").index, ABSENT]
    assert list(matrix.index) == list(matrix.columns) == order
    assert matrix.to_numpy().sum() == len(features)  # nobody disappears from a cumulative view
    assert matrix.loc[ABSENT].sum() == len(features) - len(early)  # first bought after MID
    assert matrix[ABSENT].sum() == 0
    want = pd.crosstab(
        before.set_index("customer_id")["segment"], after.set_index("customer_id")["segment"]
    )
    for b in want.index:
        for a in want.columns:
            assert matrix.loc[b, a] == want.loc[b, a]
    shares = migration(before, after, normalize=True)
    assert np.allclose(shares.drop(index=ABSENT).sum(axis=1), 1.0)


# -- small cases (no dataset) -------------------------------------------------------------------
def tiny(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:02d}" for i in range(n)],
            "recency_days": np.arange(n) * 10,
            "frequency": [1] * (n // 2) + list(range(2, 2 + n - n // 2)),
            "monetary": np.linspace(10, 100, n),
        }
    )


def test_ties_break_by_customer_id() -> None:
    frame = tiny()
    shuffled = frame.sample(frac=1.0, random_state=3)
    a = RFMModel().fit(frame).scores_
    b = RFMModel().fit(shuffled).scores_
    pd.testing.assert_frame_equal(a, b)
    ones = a[a["frequency"] == 1]  # five customers share frequency 1: the smaller ids score lower
    assert ones["f_score"].is_monotonic_increasing
    assert ones["f_score"].tolist() == [1, 1, 2, 2, 3]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"scheme": "en11", "bins": 3}, "five score levels"),
        ({"scheme": "en11", "scoring": "levels"}, "five score levels"),
        ({"scoring": "thresholds"}, "thresholds"),
        ({"scoring": "thresholds", "thresholds": {"recency_days": [3, 1]}}, "thresholds"),
        (
            {
                "scoring": "thresholds",
                "thresholds": {"recency_days": [3, 1], "frequency": 2, "monetary": [1.0]},
            },
            "strictly ascending",
        ),
        ({"scoring": "bogus"}, "scoring must be"),
        ({"scheme": "rfm3"}, "scheme must be"),
        ({"bins": 1}, "bins must be"),
    ],
)
def test_bad_configuration(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RFMModel(**params).fit(tiny())


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match="missing"):
        RFMModel().fit(tiny().drop(columns="monetary"))
    with pytest.raises(InsufficientDataError):
        RFMModel().fit(tiny(1))
    with pytest.raises(NotFittedError):
        RFMModel().segment_of(["c01"])
    model = RFMModel().fit(tiny())
    assert model.segment_of(["c00", "nobody"]).isna().tolist() == [False, True]


def test_transition_matrix_states() -> None:
    a = pd.Series({"x1": "p", "x2": "q"})
    b = pd.Series({"x1": "q", "x3": "p"})
    matrix = transition_matrix(a, b, states=["p", "q", "r"])
    assert matrix.loc["p", "q"] == 1 and matrix.loc["q", ABSENT] == 1
    assert matrix.loc[ABSENT, "p"] == 1 and matrix.loc["r"].sum() == 0
    with pytest.raises(ConfigError, match="not in the given states"):
        transition_matrix(a, b, states=["p"])
