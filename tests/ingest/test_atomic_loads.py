"""Loads are idempotent, incremental and atomic (D6), down to a load killed with SIGKILL.

What ``load_log`` records for a repeated load (decided here, documented in docs/quality.md): a
load rewrites every row it reads that passes the checks, so a second load of the same export
records the same ``rows_loaded`` as the first ("equal upserts": rows written, new or updated),
and the rows' ``load_id`` / ``loaded_at`` name the second load. The data columns do not change.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from crmlens.ingest import load_demo_export
from crmlens.ingest.reconcile import reconcile
from crmlens.schema import TABLES, data_tables
from crmlens.warehouse import Warehouse
from crmlens.warehouse.migrations import META_TABLE, quote

from .conftest import make_export

AUDIT = ("load_id", "loaded_at")
#: The killed load is stopped once this many sources are done (customers and orders are written).
KILL_AFTER_SOURCES = 6
#: Bounded waits (seconds) for the subprocess: to reach the kill point, and to finish at all.
START_TIMEOUT = 90


def contents(wh: Warehouse, *, audit: bool) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows sorted (data tables without the audit columns unless ``audit``)."""
    out = {}
    for tbl in TABLES.values():
        cols = [c for c in tbl.column_names if audit or tbl.kind != "data" or c not in AUDIT]
        sql = f"SELECT {', '.join(quote(c) for c in cols)} FROM {quote(tbl.name)} ORDER BY ALL"
        out[tbl.name] = wh.raw.execute(sql).fetchall()
    out[META_TABLE] = wh.raw.execute(f"SELECT * FROM {META_TABLE} ORDER BY ALL").fetchall()
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated demo export of 5,000 customers (~170k rows): a load of a second or two."""
    demo = pytest.importorskip("crmlens.demo")
    out = tmp_path_factory.mktemp("generated") / "demo"
    demo.generate(demo.DemoConfig(customers=5_000, seed=11, out_dir=out))
    return out


def keep_copies(wh: Warehouse, names: list[str]) -> None:
    """Copy the tables' current rows (data tables without the audit columns) to temp tables."""
    for name in names:
        tbl = TABLES.get(name)
        cols = (
            "*"
            if tbl is None
            else ", ".join(
                quote(c) for c in tbl.column_names if tbl.kind != "data" or c not in AUDIT
            )
        )
        wh.raw.execute(
            f"CREATE TEMP TABLE {quote('before_' + name)} AS SELECT {cols} FROM {quote(name)}"
        )


def differing_rows(wh: Warehouse, name: str) -> int:
    """Rows in the table or in its copy but not both, duplicates counted (0: same contents)."""
    cols = ", ".join(
        quote(c)
        for c in wh.raw.execute(f"SELECT * FROM {quote('before_' + name)} LIMIT 0")
        .fetchdf()
        .columns
    )
    now, then = f"SELECT {cols} FROM {quote(name)}", f"SELECT * FROM {quote('before_' + name)}"
    sql = f"SELECT (SELECT count(*) FROM ({now} EXCEPT ALL {then})) + (SELECT count(*) FROM ({then} EXCEPT ALL {now}))"
    return int(wh.raw.execute(sql).fetchone()[0])


def test_loading_the_same_export_twice_changes_no_data(generated: Path, tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        first = load_demo_export(wh, generated)
        names = [t.name for t in data_tables()] + [META_TABLE]
        names += [n for n in ("identity_map",) if n in TABLES]  # rebuilt after every load
        keep_copies(wh, names)
        assert wh.row_count("app_events") > 50_000
        second = load_demo_export(wh, generated)
        # every table holds exactly the rows it held (a multiset comparison, in DuckDB)
        assert {name: differing_rows(wh, name) for name in names} == dict.fromkeys(names, 0)
        # the log: one more load, with the same accounting (every row written again)
        assert [(s.rows_read, s.rows_loaded, s.rows_quarantined, s.rows_merged) for s in second.sources] == [
            (s.rows_read, s.rows_loaded, s.rows_quarantined, s.rows_merged) for s in first.sources
        ]  # fmt: skip
        assert second.balanced
        ids = wh.raw.execute("SELECT DISTINCT load_id FROM load_log ORDER BY 1").fetchall()
        assert sorted(i for (i,) in ids) == sorted([first.load_id, second.load_id])
        for tbl in data_tables():
            got = wh.raw.execute(f"SELECT DISTINCT load_id FROM {quote(tbl.name)}").fetchall()
            assert got in ([], [(second.load_id,)]), tbl.name


def test_a_newer_export_upserts_by_key_and_keeps_the_rest(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export")
    with Warehouse(tmp_path / "w.duckdb") as wh:
        load_demo_export(wh, export)
        orders = export / "shop" / "orders.csv"
        lines = orders.read_text(encoding="utf-8").splitlines()
        # O0001 changes its amount, O0003 is gone from the newer export, O0009 is new
        lines[1] = lines[1].replace(",90.00,CNY", ",95.00,CNY")
        lines = [line for line in lines if not line.startswith("O0003,")]
        lines.append(
            "O0009,M0000002,S02,POS,2021-04-01 09:30:00,现金,8.00,0.00,8.00,CNY,completed,"
        )
        orders.write_text("\n".join(lines) + "\n", encoding="utf-8")
        report = load_demo_export(wh, export)
        got = dict(wh.raw.execute("SELECT order_id, amount FROM orders").fetchall())
        assert got == {"O0001": 95.0, "O0002": 50.0, "O0003": 20.0, "O0004": -30.0,
                       "O0008": 12.0, "O0009": 8.0}  # fmt: skip
        src = report.source("shop/orders.csv")
        assert (src.rows_read, src.rows_loaded, src.rows_quarantined, src.rows_merged) == (
            9, 5, 3, 1,
        )  # fmt: skip
        assert report.balanced
        # the warehouse reconciles with the newer export
        assert reconcile(wh, export, fraction=1.0).ok


def _start_load(warehouse: Path, export: Path) -> subprocess.Popen[str]:
    """``load_demo_export`` in a child process that prints ``progress <done>`` per source."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from crmlens.ingest import load_demo_export\n"
        "from crmlens.warehouse import Warehouse\n"
        "def progress(step, done, total):\n"
        "    print('progress', done, flush=True)\n"
        "with Warehouse(Path(sys.argv[1])) as wh:\n"
        "    load_demo_export(wh, Path(sys.argv[2]), progress=progress)\n"
        "print('committed', flush=True)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, str(warehouse), str(export)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(proc: subprocess.Popen[str], wanted: str, timeout: float) -> list[str]:
    """The child's stdout lines up to and including ``wanted`` (bounded by ``timeout``)."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            line = proc.stdout.readline()
            if not line:  # the child ended before reaching the point
                break
            seen.append(line.strip())
            if seen[-1] == wanted:
                return seen
    proc.kill()
    proc.wait(timeout=30)
    pytest.fail(f"the load never printed {wanted!r}: {seen}; stderr: {proc.stderr.read()[-2000:]}")


def test_a_load_killed_midway_leaves_the_warehouse_unchanged_and_usable(
    generated: Path, tmp_path: Path
) -> None:
    path = tmp_path / "w.duckdb"
    small = make_export(tmp_path / "small")
    with Warehouse(path) as wh:
        load_demo_export(wh, small)
        before = contents(wh, audit=True)
    proc = _start_load(path, generated)
    try:
        seen = _wait_for(proc, f"progress {KILL_AFTER_SOURCES}", START_TIMEOUT)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert "committed" not in seen  # killed inside the load's transaction
    with Warehouse(path) as wh:
        assert contents(wh, audit=True) == before
        # usable: the next load commits and is logged after the first one
        (small / "crm" / "stores.csv").write_text(
            "store_id,store_name,region,province,city,store_type,opened_date,area_sqm\n"
            "S09,新店,华东,山东,烟台,社区店,2021-01-01,100\n",
            encoding="utf-8",
        )
        report = load_demo_export(wh, small)
        assert report.balanced
        assert wh.raw.execute("SELECT count(DISTINCT load_id) FROM load_log").fetchone() == (2,)
        assert wh.raw.execute(
            "SELECT store_name FROM stores WHERE store_id = 'S09'"
        ).fetchone() == ("新店",)
