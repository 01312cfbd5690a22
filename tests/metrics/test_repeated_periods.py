"""Periods asked twice (a year's 环比 and 同比 are the same year) are computed once and answered
for each: the same numbers as asking for each period on its own."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from crmlens.metrics import REGISTRY, Scope, compute, compute_many
from crmlens.metrics.periods import Period

SCOPE = Scope(date(2020, 1, 1), date(2020, 12, 31))
Y2019 = Period("2019", date(2019, 1, 1), date(2019, 12, 31))
Y2020 = Period("2020", date(2020, 1, 1), date(2020, 12, 31))
Q1 = Period("2020-Q1", date(2020, 1, 1), date(2020, 3, 31))


@pytest.mark.parametrize("by", [(), ("region",)])
def test_repeated_periods_get_the_answer_each_gets_alone(tiny: Any, by: tuple[str, ...]) -> None:
    asked = [Y2020, Y2019, Period("2019 again", Y2019.start, Y2019.end), Q1, Y2020]
    chosen = [m for m in REGISTRY.values() if all(d in m.dimensions for d in by)]
    together = compute_many(tiny.wh, chosen, SCOPE, asked, by)
    assert set(together) == {m.name for m in chosen}
    for m in chosen:
        got = together[m.name]
        for i, p in enumerate(asked):
            alone = compute(tiny.wh, m, SCOPE, [p], by)
            mine = got[got["period_id"] == i].drop(columns="period_id").reset_index(drop=True)
            expected = alone.drop(columns="period_id").reset_index(drop=True)
            # a parallel sum may differ in its last bit between two runs of the same query
            assert mine.drop(columns="value").equals(expected.drop(columns="value"))
            for a, b in zip(mine["value"], expected["value"], strict=True):
                assert a == b or a == pytest.approx(b, rel=1e-12), (m.name, p.label)


def test_repeated_periods_are_queried_once(tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = compute_many.__globals__["Query"]

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, wh: Any, scope: Scope, periods: Any, *args: Any) -> None:
            seen.append(len(periods))
            super().__init__(wh, scope, periods, *args)

    monkeypatch.setitem(compute_many.__globals__, "Query", Counting)
    frame = compute_many(tiny.wh, [REGISTRY["revenue"]], SCOPE, [Y2020, Y2019, Y2019])["revenue"]
    assert seen == [2]
    assert frame["period_id"].tolist() == [0, 1, 2]
    assert frame["value"].iloc[1] == frame["value"].iloc[2]
