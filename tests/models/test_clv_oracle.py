"""Our BG/NBD, Gamma-Gamma and transaction summary against lifetimes, on CDNOW and Online Retail.

Fitted parameters must agree within 1e-4 (relative), predictions from the same parameters within
1e-6, summaries exactly (up to float rounding). The measured differences are far smaller
(parameters ~1e-6 or better, predictions ~1e-12); the bounds leave room for lifetimes' looser
optimiser tolerance.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from crmlens.models import BetaGeoModel, GammaGammaModel, summarise_transactions

pytestmark = pytest.mark.datasets

PARAM_RTOL = 1e-4
PREDICTION_RTOL = 1e-6


def max_rel_diff(ours: object, theirs: object) -> float:
    a = np.asarray(ours, dtype=float)
    b = np.asarray(theirs, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def assert_params_agree(ours: dict[str, float], theirs: pd.Series) -> None:
    for name, value in ours.items():
        assert max_rel_diff(value, theirs[name]) < PARAM_RTOL, (name, value, theirs[name])


def assert_predictions_agree(
    lifetimes: ModuleType, bg: BetaGeoModel, gg: GammaGammaModel, s: pd.DataFrame, unit: int
) -> None:
    """Same parameters in both libraries: expected purchases, P(alive) and CLV must match."""
    lbg = lifetimes.BetaGeoFitter()
    lbg.params_ = pd.Series(bg.params_)
    lbg.predict = lbg.conditional_expected_number_of_purchases_up_to_time  # as its fit() does
    lgg = lifetimes.GammaGammaFitter()
    lgg.params_ = pd.Series(gg.params_)
    x, t_x, T, m = s["x"], s["t_x"], s["T"], s["monetary"]
    for days in (1, 30, 90, 365):
        ours = bg.expected_purchases(days / unit, x, t_x, T)
        theirs = lbg.conditional_expected_number_of_purchases_up_to_time(days / unit, x, t_x, T)
        assert max_rel_diff(ours, theirs) < PREDICTION_RTOL
    theirs = lbg.expected_number_of_purchases_up_to_time(np.array([1.0, 10, 100]))
    assert max_rel_diff(bg.expected_purchases_new([1.0, 10, 100]), theirs) < PREDICTION_RTOL
    theirs = lbg.conditional_probability_alive(x, t_x, T)
    assert max_rel_diff(bg.probability_alive(x, t_x, T), theirs) < PREDICTION_RTOL
    theirs = lgg.conditional_expected_average_profit(x, m)
    assert max_rel_diff(gg.expected_average_value(x, m), theirs) < PREDICTION_RTOL
    # lifetimes' month is 30 days for freq="D" and 4.345 weeks (30.415 days) for freq="W"
    freq, days_per_month = {1: ("D", 30.0), 7: ("W", 30.415)}[unit]
    ours = gg.customer_lifetime_value(
        bg, x, t_x, T, m, time_unit_days=unit, days_per_month=days_per_month
    )
    theirs = lgg.customer_lifetime_value(lbg, x, t_x, T, m, freq=freq)
    assert max_rel_diff(ours, theirs) < PREDICTION_RTOL


# --- CDNOW ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow(datasets: Path) -> pd.DataFrame:
    frame = pd.read_csv(datasets / "cdnow" / "cdnow_customers_summary_with_transactions.csv")
    return frame.rename(columns={"zbar": "monetary"}).set_index("ID")


@pytest.mark.parametrize("penalizer", [0.0, 0.01])
def test_cdnow_fits_agree_with_lifetimes(
    lifetimes: ModuleType, cdnow: pd.DataFrame, penalizer: float
) -> None:
    x, t_x, T, m = cdnow["x"], cdnow["t_x"], cdnow["T"], cdnow["monetary"]
    bg = BetaGeoModel(penalizer_coef=penalizer).fit(x, t_x, T)
    lbg = lifetimes.BetaGeoFitter(penalizer_coef=penalizer).fit(x, t_x, T)
    assert_params_agree(bg.params_, lbg.params_)
    # lifetimes' standard errors come from autograd's exact Hessian, ours from differencing
    # the analytic gradient
    for name, se in bg.standard_errors_.items():
        assert se == pytest.approx(lbg.standard_errors_[name], rel=1e-4)
    buyers = x > 0
    gg = GammaGammaModel(penalizer_coef=penalizer).fit(x, m)
    lgg = lifetimes.GammaGammaFitter(penalizer_coef=penalizer).fit(x[buyers], m[buyers])
    assert_params_agree(gg.params_, lgg.params_)
    for name, se in gg.standard_errors_.items():
        assert se == pytest.approx(lgg.standard_errors_[name], rel=1e-4)


def test_cdnow_predictions_agree_with_lifetimes(lifetimes: ModuleType, cdnow: pd.DataFrame) -> None:
    bg = BetaGeoModel().fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    gg = GammaGammaModel().fit(cdnow["x"], cdnow["monetary"])
    assert_predictions_agree(lifetimes, bg, gg, cdnow, unit=7)


def test_cdnow_summary_agrees_with_lifetimes(lifetimes: ModuleType, datasets: Path) -> None:
    tx = pd.read_csv(datasets / "cdnow" / "CDNOW_master.txt", sep=r"\s+")
    tx["date"] = pd.to_datetime(tx["date"].astype(str), format="%Y%m%d")
    ours = summarise_transactions(
        tx["customer_id"], tx["date"], tx["dollar_value"], observation_end="1997-09-30"
    )
    theirs = lifetimes.utils.summary_data_from_transaction_data(
        tx,
        "customer_id",
        "date",
        "dollar_value",
        observation_period_end="1997-09-30",
        freq="D",
        freq_multiplier=7,
    )
    assert len(ours) == 23_570
    assert_summaries_agree(ours, theirs)


def assert_summaries_agree(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    assert sorted(ours.index) == sorted(theirs.index)
    theirs = theirs.loc[ours.index]
    for col, their_col in (("x", "frequency"), ("t_x", "recency"), ("T", "T")):
        assert np.array_equal(ours[col].to_numpy(), theirs[their_col].to_numpy()), col
    np.testing.assert_allclose(ours["monetary"], theirs["monetary_value"], rtol=1e-12)


# --- Online Retail ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def retail(datasets: Path) -> pd.DataFrame:
    """Purchases with a customer, positive quantity and not a cancellation (``C`` invoices)."""
    files = sorted((datasets / "online_retail" / "by-day").glob("*.csv"))
    if len(files) != 305:
        pytest.skip(f"expected 305 Online Retail day files, found {len(files)}")
    columns = ["InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"]
    frame = pd.concat(
        [pd.read_csv(f, usecols=columns, dtype={"InvoiceNo": str}) for f in files],
        ignore_index=True,
    )
    assert len(frame) == 541_909
    keep = (
        frame["CustomerID"].notna()
        & (frame["Quantity"] > 0)
        & ~frame["InvoiceNo"].str.startswith("C")
    )
    frame = frame[keep].copy()
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    frame["amount"] = frame["Quantity"] * frame["UnitPrice"]
    return frame


@pytest.fixture(scope="module")
def retail_summary(retail: pd.DataFrame) -> pd.DataFrame:
    return summarise_transactions(
        retail["CustomerID"],
        retail["InvoiceDate"],
        retail["amount"],
        observation_end="2011-12-09",
        time_unit_days=1,
    )


@pytest.mark.slow
@pytest.mark.parametrize("unit", [1, 7])
def test_online_retail_summary_agrees_with_lifetimes(
    lifetimes: ModuleType, retail: pd.DataFrame, retail_summary: pd.DataFrame, unit: int
) -> None:
    ours = (
        retail_summary
        if unit == 1
        else summarise_transactions(
            retail["CustomerID"],
            retail["InvoiceDate"],
            retail["amount"],
            observation_end="2011-12-09",
            time_unit_days=unit,
        )
    )
    theirs = lifetimes.utils.summary_data_from_transaction_data(
        retail,
        "CustomerID",
        "InvoiceDate",
        "amount",
        observation_period_end="2011-12-09",
        freq="D",
        freq_multiplier=unit,
    )
    assert len(ours) == 4_339
    assert_summaries_agree(ours, theirs)


@pytest.mark.slow
def test_online_retail_fits_and_predictions_agree_with_lifetimes(
    lifetimes: ModuleType, retail_summary: pd.DataFrame
) -> None:
    s = retail_summary
    bg = BetaGeoModel().fit(s["x"], s["t_x"], s["T"])
    lbg = lifetimes.BetaGeoFitter().fit(s["x"], s["t_x"], s["T"])
    assert_params_agree(bg.params_, lbg.params_)
    buyers = s[s["x"] > 0]
    assert (buyers["monetary"] > 0).all()
    gg = GammaGammaModel().fit(s["x"], s["monetary"])
    lgg = lifetimes.GammaGammaFitter().fit(buyers["x"], buyers["monetary"])
    assert_params_agree(gg.params_, lgg.params_)
    assert_predictions_agree(lifetimes, bg, gg, s, unit=1)
