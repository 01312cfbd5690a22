import re
from pathlib import Path

import duckdb
import pytest

from crmlens.errors import ConfigError, WarehouseError
from crmlens.schema import SCHEMA_VERSION, TABLES
from crmlens.warehouse import MIGRATIONS, Migration, Warehouse, migrate
from crmlens.warehouse.connection import STORAGE_VERSION
from crmlens.warehouse.migrations import sync_tables


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }


def test_new_warehouse_has_every_table_and_the_current_version(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert wh.schema_version() == SCHEMA_VERSION
        assert set(TABLES) <= _tables(wh.raw)
        for name, tbl in TABLES.items():
            assert list(wh.table(name).schema().names) == list(tbl.column_names)
        assert all(row["rows"] == 0 for row in wh.describe())


def _storage_version(wh: Warehouse) -> str:
    row = wh.raw.execute(
        "SELECT tags FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    assert row is not None
    return str(row[0]["storage_version"])


def test_a_new_warehouse_is_written_in_the_format_of_the_oldest_duckdb_crmlens_runs_on(
    tmp_path: Path,
) -> None:
    """Not DuckDB's default format (0.10.2): the newer one is cheaper to write and to read, and
    every DuckDB that crmlens installs with (``duckdb>=`` in pyproject.toml) reads it."""
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    oldest = re.search(r'"duckdb>=([\d.]+)', pyproject)
    assert oldest is not None
    parts = [*oldest[1].split("."), "0", "0"][:3]
    assert f"v{'.'.join(parts)}" == STORAGE_VERSION
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert _storage_version(wh) == f"{STORAGE_VERSION}+"
    with Warehouse(tmp_path / "w.duckdb", read_only=True) as wh:
        assert _storage_version(wh) == f"{STORAGE_VERSION}+"
        assert wh.schema_version() == SCHEMA_VERSION


def test_a_warehouse_made_in_duckdbs_default_format_keeps_it_and_still_loads(
    tmp_path: Path,
) -> None:
    duckdb.connect(str(tmp_path / "w.duckdb")).close()  # as an older crmlens made it
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert _storage_version(wh) == "v1.0.0+"
        with wh.transaction() as con:
            con.execute("INSERT INTO stores (store_id, store_name) VALUES ('S1', '一店')")
    with Warehouse(tmp_path / "w.duckdb", read_only=True) as wh:
        assert wh.row_count("stores") == 1


def test_reopening_applies_no_migration(tmp_path: Path) -> None:
    Warehouse(tmp_path / "w.duckdb").close()
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert migrate(con) == []
    con.close()


def test_forward_migration_adds_declared_changes_in_order(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    seen: list[int] = []

    def v1(c: duckdb.DuckDBPyConnection) -> None:
        seen.append(1)
        c.execute("CREATE TABLE legacy (id INTEGER, name VARCHAR)")

    def v2(c: duckdb.DuckDBPyConnection) -> None:
        seen.append(2)
        c.execute("ALTER TABLE legacy RENAME COLUMN name TO full_name")

    steps = (Migration(1, "legacy", v1), Migration(2, "rename", v2))
    assert [m.version for m in migrate(con, steps[:1], target=1)] == [1]
    con.execute("INSERT INTO legacy VALUES (1, 'a')")
    assert [m.version for m in migrate(con, steps, target=2)] == [2]
    assert seen == [1, 2]
    assert con.execute("SELECT full_name FROM legacy").fetchall() == [("a",)]


def test_a_migration_drops_the_derived_tables_and_none_keeps_them(tmp_path: Path) -> None:
    """Derived tables hold what the canonical tables held when they were written; a migration may
    change that, so it drops them (``crmlens build`` writes them again)."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    migrate(con, MIGRATIONS)
    con.execute("CREATE TABLE derived__orders AS SELECT 1 AS x")
    assert migrate(con, MIGRATIONS) == []  # nothing pending: kept
    assert "derived__orders" in _tables(con)
    nxt = SCHEMA_VERSION + 1
    step = Migration(nxt, "noop", lambda c: None)
    assert migrate(con, (*MIGRATIONS, step), target=nxt) == [step]
    assert "derived__orders" not in _tables(con)


def test_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    migrate(con, MIGRATIONS)
    con.execute("INSERT INTO channels (channel_id, channel_name) VALUES ('C1', 'x')")

    def breaks(c: duckdb.DuckDBPyConnection) -> None:
        c.execute("DROP TABLE channels")
        c.execute("SELECT * FROM no_such_table")

    nxt = SCHEMA_VERSION + 1
    with pytest.raises(WarehouseError, match=rf"migration {nxt} \(breaks\) failed"):
        migrate(con, (*MIGRATIONS, Migration(nxt, "breaks", breaks)), target=nxt)
    assert con.execute("SELECT channel_id FROM channels").fetchall() == [("C1",)]
    assert con.execute("SELECT value FROM _crmlens_meta").fetchall() == [(str(SCHEMA_VERSION),)]


def test_a_file_from_a_newer_crmlens_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE _crmlens_meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(WarehouseError, match="schema version 999"):
        Warehouse(path)


def test_sync_tables_adds_missing_columns(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE channels (channel_id VARCHAR)")
    sync_tables(con)
    cols = [r[0] for r in con.execute("DESCRIBE channels").fetchall()]
    assert cols == list(TABLES["channels"].column_names)


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        with wh.transaction() as con:
            con.execute("INSERT INTO channels (channel_id) VALUES ('C1')")
        with pytest.raises(RuntimeError), wh.transaction() as con:
            con.execute("INSERT INTO channels (channel_id) VALUES ('C2')")
            con.execute("DELETE FROM stores")
            raise RuntimeError("boom")
        assert wh.execute(wh.table("channels").channel_id).tolist() == ["C1"]


def test_read_only_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="no warehouse there"):
        Warehouse(tmp_path / "missing.duckdb", read_only=True)
    plain = tmp_path / "plain.duckdb"
    duckdb.connect(str(plain)).close()
    with pytest.raises(WarehouseError, match="not a crmlens warehouse"):
        Warehouse(plain, read_only=True)
    Warehouse(tmp_path / "w.duckdb").close()
    with Warehouse(tmp_path / "w.duckdb", read_only=True) as wh:
        with pytest.raises(WarehouseError, match="read-only"), wh.transaction():
            pass
        with pytest.raises(ConfigError):
            wh.table("nope")


def test_default_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMLENS_WAREHOUSE", str(tmp_path / "env.duckdb"))
    with Warehouse() as wh:
        assert wh.path == tmp_path / "env.duckdb"
    assert (tmp_path / "env.duckdb").exists()


def test_read_only_open_of_an_older_version_says_how_to_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE _crmlens_meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(WarehouseError, match=r"schema version 1 is older.*crmlens load"):
        Warehouse(path, read_only=True)
    with Warehouse(path) as wh:  # a read-write open migrates it
        assert wh.schema_version() == SCHEMA_VERSION


def test_a_warehouse_held_by_another_process_is_named_with_its_pid(tmp_path: Path) -> None:
    """A running `crmlens serve` holds the file; a load then says so, and which process."""
    import subprocess
    import sys

    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from crmlens.warehouse import Warehouse; "
            f"wh = Warehouse({str(path)!r}, read_only=True); print('open', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseError, match=rf"in use by another process \(PID {holder.pid},"):
            Warehouse(path)
    finally:
        holder.communicate("", timeout=60)
    Warehouse(path).close()  # free again once it has gone
