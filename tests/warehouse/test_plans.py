"""Query plans: a key's third sight runs without building, with the results a build gives."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest
from ibis.expr.types import Table

from crmlens.warehouse import Warehouse

ROWS = pd.DataFrame(
    {
        "city": ["烟台", "青岛", "O'Brien", "烟台", "济南", "Yantai", "yantai"],
        "day": pd.to_datetime(
            [
                "2021-01-05",
                "2021-02-01",
                "2021-02-03",
                "2021-03-01",
                "2021-03-09",
                "2021-01-02",
                "2021-02-02",
            ]
        ),
        "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
    }
)
#: Months as an in-memory table, as the metrics layer joins its periods.
MONTHS = pd.DataFrame(
    {
        "period_id": [0, 1, 2],
        "lo": pd.to_datetime(["2021-01-01", "2021-02-01", "2021-03-01"]),
        "hi": pd.to_datetime(["2021-02-01", "2021-03-01", "2021-04-01"]),
    }
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "w.duckdb"
    with Warehouse(file) as wh:
        wh.raw.register("rows", ROWS)
        wh.raw.execute("CREATE TABLE scratch AS SELECT * FROM rows")
        wh.raw.unregister("rows")
    return file


@pytest.fixture
def wh(path: Path) -> Iterator[Warehouse]:
    with Warehouse(path) as opened:
        yield opened


class Builds:
    """A build function (revenue per month of the given cities), counting its calls."""

    def __init__(self, wh: Warehouse, *, lower: bool = False) -> None:
        self.wh = wh
        self.lower = lower
        self.calls: list[tuple[str, ...]] = []

    def expr(self, values: Sequence[str]) -> Table:
        t = self.wh.backend.table("scratch")
        months = ibis.memtable(MONTHS)  # a new in-memory table (and name) at every build
        cities = [v.lower() for v in values] if self.lower else list(values)
        rows = t.filter(t.city.isin(cities))
        joined = rows.join(months, [rows.day >= months.lo, rows.day < months.hi])
        return (
            joined.group_by("period_id")
            .aggregate(revenue=joined.amount.sum(), orders=joined.count())
            .order_by("period_id")
        )

    def __call__(self, values: Sequence[str]) -> tuple[list[Table], str]:
        self.calls.append(tuple(values))
        return [self.expr(values), self.expr(values[:1])], "how to read them"


def _same(got: list[pd.DataFrame], builds: Builds, values: Sequence[str]) -> None:
    expected = [builds.wh.execute(builds.expr(values)), builds.wh.execute(builds.expr(values[:1]))]
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_the_third_sight_of_a_key_runs_its_plan_without_building(wh: Warehouse) -> None:
    builds = Builds(wh)
    sights = [["烟台"], ["青岛"], ["O'Brien"], ["济南"], ["烟台"]]
    for values in sights:
        frames, extra = wh.plans.run(("revenue", 1), values, builds)
        assert extra == "how to read them"
        _same(frames, builds, values)
    # the first sight with its values, the second with sentinels; none after
    assert builds.calls[0] == ("烟台",)
    assert len(builds.calls) == 2 and builds.calls[1] != ("青岛",)
    assert (wh.plans.hits, wh.plans.misses) == (3, 2)
    assert wh.execute(builds.expr(["O'Brien"]))["revenue"].tolist() == [30.0]


def test_a_key_takes_its_number_of_values_from_the_caller(wh: Warehouse) -> None:
    """Two cities are another key than one: each gets its own plan."""
    builds = Builds(wh)
    for values in (["烟台"], ["青岛", "烟台"], ["济南"], ["济南", "青岛"], ["O'Brien"]):
        key = ("revenue", len(values))
        frames, _ = wh.plans.run(key, values, builds)
        _same(frames, builds, values)
    frames, _ = wh.plans.run(("revenue", 2), ["O'Brien", "济南"], builds)
    _same(frames, builds, ["O'Brien", "济南"])
    assert wh.plans.hits == 2


def test_sql_that_depends_on_a_value_otherwise_is_built_every_time(wh: Warehouse) -> None:
    """A build that writes a value lowercased: its SQL holds the sentinel as it is, but filled with
    the first sight's value it is not the first sight's SQL, so the key has no plan."""
    builds = Builds(wh, lower=True)
    for values in (["Yantai"], ["QINGDAO"], ["YANTAI"], ["yantai"]):
        frames, _ = wh.plans.run(("lowered",), values, builds)
        _same(frames, builds, values)
    assert wh.plans.hits == 0
    assert len(builds.calls) == 5  # each sight, and the sentinels' at the second


def test_a_plan_runs_on_another_thread_of_a_read_only_warehouse(path: Path) -> None:
    """The server reads on a cursor per thread: a plan's in-memory tables are registered on the
    cursor of the thread that runs it."""
    with Warehouse(path, read_only=True) as wh:
        builds = Builds(wh)
        for values in (["烟台"], ["青岛"], ["济南"]):
            wh.plans.run(("revenue",), values, builds)
        got: dict[str, Any] = {}

        def other() -> None:
            try:
                got["frames"] = wh.plans.run(("revenue",), ["O'Brien"], builds)[0]
            except Exception as exc:  # raised again on the test's thread
                got["error"] = exc

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=60)
        assert "error" not in got, got.get("error")
        _same(got["frames"], builds, ["O'Brien"])
        assert wh.plans.hits == 2 and len(builds.calls) == 2


def test_plans_are_dropped_least_recently_used_first(wh: Warehouse) -> None:
    wh.plans.maxsize = 2
    builds = Builds(wh)
    for key in ("a", "b", "c"):
        wh.plans.run(key, ["烟台"], builds)
    assert len(wh.plans) == 2
    wh.plans.clear()
    assert len(wh.plans) == 0


def test_the_stand_in_build_is_compiled_without_templates(wh: Warehouse) -> None:
    """The second sight's SQL is cut by the plan itself: a template of it would go unused, so
    it is compiled in full, and the templates see only the first sight's queries."""
    templates = wh.backend.compile.__self__
    builds = Builds(wh)
    for values in (["烟台"], ["青岛"], ["济南"]):
        wh.plans.run(("revenue",), values, builds)
    assert templates.hits + templates.misses == 2  # the first sight's two queries
