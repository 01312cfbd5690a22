"""A small hand-made company in a temporary warehouse, and an independent pandas oracle.

The company is seeded random data (120 customers, 16 months of orders, spend, tickets, surveys,
touches, targets) plus hand-placed edge cases: refunds (one crossing a month end), a leap-day order,
orders on both sides of the ISO week spanning 2020/2021, a month without any order (2020-06),
walk-in orders, a customer with a single order, a customer without a signup date, a ticket closed
"before" it was opened and open tickets. Rows go in through DuckDB directly (``wh.raw``), not the
loader, so the metrics are tested on exactly these rows.

:class:`Oracle` recomputes every KPI's definition from the same data frames with plain pandas.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crmlens.warehouse import Warehouse

DAY = pd.Timedelta(days=1)
FIRST, LAST = pd.Timestamp("2019-12-01"), pd.Timestamp("2021-03-31 23:59:59")
EMPTY_MONTH = "2020-06"
LEAP_DAY = pd.Timestamp("2020-02-29 12:00")


def datasets_dir() -> Path:
    """``$CRMLENS_DATASETS`` if set, else ``../shared/datasets`` next to the repository root."""
    env = os.environ.get("CRMLENS_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def insert_rows(wh: Warehouse, table: str, frame: pd.DataFrame) -> None:
    """Append ``frame``'s columns to a canonical table."""
    cols = ", ".join(frame.columns)
    wh.raw.register("__rows", frame)
    try:
        wh.raw.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM __rows")
    finally:
        wh.raw.unregister("__rows")


def _stamp(rng: np.random.Generator, n: int, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Series:
    seconds = rng.integers(0, int((hi - lo).total_seconds()), n)
    return pd.Series(lo + pd.to_timedelta(seconds, unit="s"))


def build_company(seed: int = 7) -> dict[str, pd.DataFrame]:
    """The tiny company's tables as pandas frames (canonical column names)."""
    rng = np.random.default_rng(seed)
    stores = pd.DataFrame(
        {
            "store_id": ["S00", "S01", "S02", "S03"],
            "city": ["烟台", "烟台", "青岛", "广州"],
            "region": ["华东", "华东", "华东", "华南"],
        }
    )
    n = 120
    region = np.where(rng.random(n) < 0.7, "华东", "华南")
    home = np.where(region == "华南", "S03", rng.choice(["S01", "S02"], n))
    home = np.where(rng.random(n) < 0.15, None, home)  # online sign-ups: no home store
    city = np.where(region == "华南", "广州", np.where(home == "S02", "青岛", "烟台"))
    birth = pd.Series(
        pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 18000, n), "D")
    )
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i:03d}" for i in range(n)],
            "customer_type": np.where(rng.random(n) < 0.2, "企业", "个人"),
            "member_tier": rng.choice(["白金", "黄金", "白银", "普通"], n),
            "gender": rng.choice(["男", "女", None], n, p=[0.4, 0.5, 0.1]),
            "birth_date": birth.where(rng.random(n) > 0.1).dt.date,
            "region": region,
            "city": city,
            "home_store_id": home,
            "signup_channel_id": rng.choice(["CH1", "CH2", "CH3"], n),
            "signup_date": _stamp(rng, n, pd.Timestamp("2019-06-01"), LAST),
        }
    )
    customers.loc[0, "birth_date"] = date(1980, 2, 29)
    customers.loc[n - 1, "signup_date"] = pd.NaT  # never new, never a member
    orders = _orders(rng, customers)
    lines = _lines(rng, orders)
    days = pd.date_range(FIRST, LAST.normalize())
    spend = pd.DataFrame(
        {
            "spend_date": np.repeat(days, 2).date,
            "channel_id": np.tile(["CH1", "CH2"], len(days)),
            "spend": rng.uniform(0, 40, 2 * len(days)).round(2),
            "clicks": rng.integers(0, 30, 2 * len(days)),
        }
    )
    return {
        "stores": stores,
        "customers": customers,
        "products": pd.DataFrame(
            {
                "sku": [f"P{i}" for i in range(6)],
                "category": ["零食", "零食", "乳品", "乳品", "蔬菜", "蔬菜"],
            }
        ),
        "orders": orders,
        "order_lines": lines,
        "channel_spend": spend,
        "service_tickets": _tickets(rng, customers),
        "survey_responses": _surveys(rng, customers),
        "campaign_touches": _touches(rng, customers),
        "targets": _targets(),
    }


def _orders(rng: np.random.Generator, customers: pd.DataFrame) -> pd.DataFrame:
    n = 1500
    who = rng.choice(customers["customer_id"].iloc[1:-1], n)  # C000 and the last are hand-placed
    frame = pd.DataFrame(
        {
            "customer_id": np.where(rng.random(n) < 0.15, None, who),
            "store_id": rng.choice(["S00", "S01", "S02", "S03"], n),
            "order_channel": rng.choice(["POS", "online", "app"], n),
            "order_time": _stamp(rng, n, FIRST, LAST),
            "amount": rng.gamma(2.0, 40.0, n).round(2),
        }
    )
    day = frame["order_time"].dt.normalize()
    frame = frame[
        (frame["order_time"].dt.strftime("%Y-%m") != EMPTY_MONTH) & (day != LEAP_DAY.normalize())
    ]
    hand = pd.DataFrame(
        {
            "customer_id": ["C000", "C000", "C000", "C000", "C000", None, "C001"],
            "store_id": ["S01"] * 7,
            "order_channel": ["POS"] * 7,
            "order_time": pd.to_datetime(
                [
                    LEAP_DAY,
                    "2020-12-31 23:59:59",
                    "2021-01-01 00:00:00",
                    "2021-01-03 23:00:00",
                    "2021-01-04 00:00:00",
                    "2021-01-31 20:00:00",
                    "2020-03-10 10:00:00",
                ]
            ),
            "amount": [100.0, 10.0, 20.0, 30.0, 40.0, 55.0, 66.0],
        }
    )
    frame = pd.concat([frame, hand], ignore_index=True)
    frame = frame[~((frame["customer_id"] == "C001") & (frame.index < len(frame) - 1))]
    frame = frame.sort_values("order_time", ignore_index=True)
    frame["order_id"] = [f"O{i:05d}" for i in range(len(frame))]
    frame["is_refund"] = False
    frame["original_order_id"] = None
    picked = frame.sample(frac=0.06, random_state=int(rng.integers(0, 2**31)))
    refunds = picked.assign(
        order_id=lambda f: "R" + f["order_id"].str[1:],
        original_order_id=picked["order_id"],
        order_time=picked["order_time"]
        + pd.to_timedelta(rng.integers(1, 20 * 86400, len(picked)), "s"),
        amount=-(picked["amount"] * rng.choice([1.0, 0.5], len(picked))).round(2),
        is_refund=True,
    )
    crossing = frame[frame["amount"] == 55.0].assign(
        order_id="RCROSS", original_order_id=lambda f: f["order_id"], is_refund=True, amount=-55.0,
        order_time=pd.Timestamp("2021-02-01 09:00"),
    )  # fmt: skip
    out = pd.concat([frame, refunds, crossing], ignore_index=True)
    # keep the empty month and the leap day free of refunds too, so their answers are known
    when = out["order_time"]
    quiet = (when.dt.strftime("%Y-%m") == EMPTY_MONTH) | (
        when.dt.normalize() == LEAP_DAY.normalize()
    )
    out = out[(when <= LAST) & ~(out["is_refund"] & quiet)]
    return out.assign(status=np.where(out["is_refund"], "refunded", "completed"))


def _lines(rng: np.random.Generator, orders: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for order_id, amount in zip(orders["order_id"], orders["amount"], strict=True):
        if order_id.endswith("37"):
            continue  # a few orders without lines: their amount stays whole, under 未知
        k = int(rng.integers(1, 4))
        weights = rng.dirichlet(np.ones(k))
        for i, w in enumerate(weights):
            rows.append((order_id, i + 1, f"P{rng.integers(0, 7)}", round(amount * 1.1 * w, 2)))
    return pd.DataFrame(rows, columns=["order_id", "line_no", "sku", "amount"])  # P6: not a product


def _tickets(rng: np.random.Generator, customers: pd.DataFrame) -> pd.DataFrame:
    n = 160
    opened = _stamp(rng, n, FIRST, LAST)
    hours = pd.to_timedelta(rng.gamma(1.5, 12.0, n), "h")
    closed = (opened + hours).where(rng.random(n) > 0.1)  # some still open
    closed.iloc[:3] = opened.iloc[:3] - pd.Timedelta(hours=2)  # closed "before" opened
    return pd.DataFrame(
        {
            "ticket_id": [f"T{i:04d}" for i in range(n)],
            "customer_id": rng.choice([*customers["customer_id"], None], n),
            "ticket_type": rng.choice(["咨询", "投诉", "售后", "建议"], n),
            "sku": rng.choice(["P0", "P2", "P4", None], n),
            "store_id": rng.choice(["S01", "S02", "S03"], n),
            "opened_at": opened,
            "closed_at": closed,
            "satisfaction": pd.Series(rng.integers(1, 6, n), dtype="Int64").where(
                rng.random(n) > 0.2
            ),
        }
    )


def _surveys(rng: np.random.Generator, customers: pd.DataFrame) -> pd.DataFrame:
    n = 90
    return pd.DataFrame(
        {
            "response_id": [f"Q{i:03d}" for i in range(n)],
            "customer_id": rng.choice(customers["customer_id"], n),
            "store_id": rng.choice(["S01", "S02", "S03"], n),
            "responded_at": _stamp(rng, n, FIRST, LAST),
            "nps_score": pd.Series(rng.integers(0, 11, n), dtype="Int64").where(
                rng.random(n) > 0.1
            ),
            "csat_score": pd.Series(rng.integers(1, 6, n), dtype="Int64").where(
                rng.random(n) > 0.1
            ),
        }
    )


def _touches(rng: np.random.Generator, customers: pd.DataFrame) -> pd.DataFrame:
    n = 500
    sent = _stamp(rng, n, FIRST, LAST)
    opened = rng.random(n) < 0.3
    clicked = opened & (rng.random(n) < 0.3)
    return pd.DataFrame(
        {
            "touch_id": [f"M{i:04d}" for i in range(n)],
            "customer_id": rng.choice(customers["customer_id"], n),
            "sent_at": sent,
            "opened_at": sent.where(opened) + pd.Timedelta(hours=1),
            "clicked_at": sent.where(clicked) + pd.Timedelta(hours=2),
            "converted_at": sent.where(clicked & (rng.random(n) < 0.3)) + pd.Timedelta(hours=3),
            "bounced": rng.random(n) < 0.05,
        }
    )


def _targets() -> pd.DataFrame:
    months = pd.period_range("2020-01", "2021-03", freq="M")
    rows = [("revenue", str(m), "all", "*", 3000.0 + 10 * i) for i, m in enumerate(months)]
    rows += [("revenue", "2021-Q1", "all", "*", 9999.0)]  # preferred over 2021-01..03
    rows += [("revenue", "2021-01", "city", "烟台", 1500.0)]
    rows += [("members", "2020-12", "city", c, v) for c, v in (("烟台", 50.0), ("青岛", 40.0))]
    rows += [("new_members", m, "city", "烟台", 3.0) for m in ("2021-01", "2021-02", "2021-03")]
    frame = pd.DataFrame(
        rows, columns=["metric", "period", "dimension", "dimension_value", "target_value"]
    )
    start = [pd.Period(p.replace("-Q", "Q")).start_time for p in frame["period"]]
    end = [pd.Period(p.replace("-Q", "Q")).end_time for p in frame["period"]]
    return frame.assign(
        period_start=pd.DatetimeIndex(start).date, period_end=pd.DatetimeIndex(end).date
    )


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The shared datasets folder; skips the test when it is absent."""
    path = datasets_dir()
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (set CRMLENS_DATASETS to override)")
    return path


@pytest.fixture(scope="session")
def insert() -> Callable[[Warehouse, str, pd.DataFrame], None]:
    """:func:`insert_rows`, for test modules (which cannot import this conftest)."""
    return insert_rows


@dataclass
class Tiny:
    """The tiny company: its warehouse and the frames it was made from."""

    wh: Warehouse
    frames: dict[str, pd.DataFrame]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    frames = build_company()
    wh = Warehouse(tmp_path_factory.mktemp("tiny") / "tiny.duckdb")
    for table, frame in frames.items():
        insert_rows(wh, table, frame)
    yield Tiny(wh, frames)
    wh.close()


@pytest.fixture(scope="session")
def oracle(tiny: Tiny) -> Callable[..., object]:
    """``oracle(name, start, end, **filters)`` → the KPI by plain pandas (see oracle_kpis.py)."""
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("metrics_oracle", Path(__file__).with_name("oracle_kpis.py"))
    assert spec and spec.loader
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Oracle(tiny.frames)
