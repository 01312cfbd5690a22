"""Turning pandas results into JSON-ready values: None for missing, ISO dates, Python numbers."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd


def plain(value: Any) -> Any:
    """``value`` as a JSON-ready Python value: NaN/NaT → None, numpy → Python, timestamps →
    ``datetime`` (midnight ones of a date column stay datetimes; pydantic types the field).

    >>> plain(np.int64(3)), plain(float("nan")), plain(pd.Timestamp("2021-01-02"))
    (3, None, datetime.datetime(2021, 1, 2, 0, 0))
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date | str | int | float | bool):
        return value
    return value


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts of :func:`plain` values."""
    columns = [str(c) for c in frame.columns]
    return [
        dict(zip(columns, (plain(v) for v in values), strict=True))
        for values in frame.itertuples(index=False, name=None)
    ]


def as_date(value: Any) -> date | None:
    """A date from a date, datetime or timestamp (None stays None)."""
    value = plain(value)
    if isinstance(value, datetime):
        return value.date()
    return value
