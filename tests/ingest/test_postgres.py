"""A PostgreSQL table or query as a source, against a real PostgreSQL 15 server (pg_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner, Result

from crmlens.cli import app
from crmlens.errors import ConfigError, LoadError, SourceError
from crmlens.ingest import load_sources
from crmlens.ingest.readers import ExportReader
from crmlens.warehouse import Warehouse

from . import canonical_customers as cc
from .pg_server import PgServer, pg_server, unavailable_reason


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg_server() as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            _create_customers(conn)
        yield server


def _create_customers(conn: psycopg.Connection) -> None:
    """crm.客戶: the canonical rows with typed columns where the values allow."""
    types = ["text", "text", "text", "text", "text", "text", "boolean", "timestamp", "text"]
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(h), sql.SQL(t))
        for h, t in zip(cc.HEADERS, types, strict=True)
    )
    conn.execute("CREATE SCHEMA crm")
    conn.execute(
        sql.SQL("CREATE TABLE crm.{} (id serial, {})").format(sql.Identifier("客戶"), cols)
    )
    insert = sql.SQL("INSERT INTO crm.{} ({}) VALUES ({})").format(
        sql.Identifier("客戶"),
        sql.SQL(", ").join(sql.Identifier(h) for h in cc.HEADERS),
        sql.SQL(", ").join(sql.Placeholder() * len(cc.HEADERS)),
    )
    for row in cc.ROWS:
        values: list[object] = [v or None for v in row]
        values[6] = row[6] == "是"
        values[7] = datetime.strptime(row[7], "%Y-%m-%d %H:%M:%S")
        conn.execute(insert, values)


def _pg_spec(pg: PgServer, **source: str) -> cc.SourceSpec:
    return cc.spec("pg:crm.客戶", format="postgres", dsn=pg.dsn, **source)


def test_a_table_loads_the_same_warehouse_as_the_files(pg: PgServer, tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        report = load_sources(wh, tmp_path, [_pg_spec(pg, source_table='crm."客戶"')])
        assert report.balanced and report.source("pg:crm.客戶").rows_read == len(cc.ROWS)
        assert cc.contents(wh) == cc.EXPECTED
        assert cc.quarantine(wh) == cc.EXPECTED_QUARANTINE
        assert cc.quarantine_lines(wh) == [4, 5]  # row ordinals of the result
        sources = wh.raw.execute("SELECT DISTINCT source FROM quarantine").fetchall()
        assert sources == [("pg:crm.客戶",)]  # the label, never the connection string


def test_a_query_is_a_source_and_its_order_gives_the_row_numbers(
    pg: PgServer, tmp_path: Path
) -> None:
    query = 'SELECT * FROM crm."客戶" WHERE "姓名" <> \'劉德華\' ORDER BY id DESC;'
    with Warehouse(tmp_path / "w.duckdb") as wh:
        load_sources(wh, tmp_path, [_pg_spec(pg, query=query)])
        assert cc.contents(wh) == [r for r in cc.EXPECTED if r[0] != "C006"]
        assert cc.quarantine_lines(wh) == [2, 1]  # bad_date (C004), missing_required (no ID)


def test_values_keep_their_text_and_null_differs_from_empty(pg: PgServer, tmp_path: Path) -> None:
    query = (
        "SELECT 12.50::numeric AS amount, true AS flag, DATE '2021-01-02' AS day, "
        "TIMESTAMP '2021-01-02 03:04:05' AS at, '' AS empty, NULL::text AS missing, "
        "E'香港\\n分公司' AS wrapped, '他說\"好\",的' AS quoted"
    )
    spec = cc.SourceSpec(
        path="pg:values",
        format="postgres",
        dsn=pg.dsn,
        query=query,
        table="stores",
        columns=(cc.ColumnSpec("store_id", "amount"),),
    )
    rows = ExportReader(tmp_path, tmp_path).read(spec)
    assert rows.arrow is not None and rows.csv_path is None
    assert rows.arrow.to_pylist() == [
        {
            "amount": "12.50", "flag": "t", "day": "2021-01-02", "at": "2021-01-02 03:04:05",
            "empty": "", "missing": None, "wrapped": "香港\n分公司", "quoted": '他說"好",的',
            "__line": 1,
        }
    ]  # fmt: skip


def test_a_large_result_streams_in_batches(pg: PgServer, tmp_path: Path) -> None:
    query = "SELECT 'C' || g AS id, repeat('王', g % 7) AS name FROM generate_series(1, 150000) g"
    spec = cc.SourceSpec(
        path="pg:big",
        format="postgres",
        dsn=pg.dsn,
        query=query,
        table="stores",
        columns=(cc.ColumnSpec("store_id", "id"), cc.ColumnSpec("store_name", "name")),
    )
    table = ExportReader(tmp_path, tmp_path).read(spec).arrow
    assert table is not None and table.num_rows == 150_000
    assert len(table.to_batches()) > 1  # spooled batch by batch, memory-mapped back
    assert table.column("__line")[-1].as_py() == 150_000
    assert table.slice(149_999).to_pylist()[0]["name"] == "王" * (150_000 % 7)


def test_a_failing_query_names_the_source_and_loads_nothing(pg: PgServer, tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        with pytest.raises(LoadError, match=r"pg:crm\.客戶.*PostgreSQL: .*does not exist"):
            load_sources(wh, tmp_path, [_pg_spec(pg, source_table="crm.nope")])
        assert wh.row_count("customers") == 0


def test_the_session_is_read_only(pg: PgServer, tmp_path: Path) -> None:
    spec = _pg_spec(pg, query='DELETE FROM crm."客戶" RETURNING *')
    with pytest.raises(SourceError, match="PostgreSQL: "):
        ExportReader(tmp_path, tmp_path).read(spec)
    with psycopg.connect(pg.dsn) as conn:
        assert conn.execute('SELECT count(*) FROM crm."客戶"').fetchone() == (len(cc.ROWS),)


def test_an_unreachable_server_fails_fast(tmp_path: Path) -> None:
    spec = cc.spec(
        "pg:away",
        format="postgres",
        dsn=f"host={tmp_path} port=1 user=postgres dbname=postgres",
        source_table="crm.customers",
    )
    with pytest.raises(SourceError, match=r"pg:away: PostgreSQL: .*connection"):
        ExportReader(tmp_path, tmp_path).read(spec)


def _ingest(tmp_path: Path, source: str, *options: str) -> tuple[Path, Result]:
    wh = tmp_path / "w.duckdb"
    args = ["ingest", source, "--mapping", str(cc.write_mapping(tmp_path)), "-w", str(wh), "-q"]
    return wh, CliRunner().invoke(app, [*args, *options])


def test_crmlens_ingest_reads_a_table_by_uri(pg: PgServer, tmp_path: Path) -> None:
    uri = f"postgresql://postgres@/postgres?host={pg.socket_dir}&port={pg.port}"
    wh, result = _ingest(tmp_path, uri, "--table", 'crm."客戶"')
    assert result.exit_code == 0, result.output
    assert 'pg:crm."客戶"' in result.output and str(pg.socket_dir) not in result.output
    cc.check_ingested(wh, [4, 5], "客戶")  # row ordinals; the table names the rows' source


def test_crmlens_ingest_reads_a_query(pg: PgServer, tmp_path: Path) -> None:
    query = 'SELECT * FROM crm."客戶" ORDER BY id DESC'
    wh, result = _ingest(tmp_path, pg.dsn, "--query", query)
    assert result.exit_code == 0, result.output
    cc.check_ingested(wh, [3, 2], "query")


def test_crmlens_ingest_needs_a_table_or_a_query(tmp_path: Path) -> None:
    uri = "postgresql://shop:secret@/crm?host=/nowhere"
    _, result = _ingest(tmp_path, uri)
    assert isinstance(result.exception, ConfigError)
    assert "--table or the --query" in str(result.exception)
    assert "secret" not in str(result.exception)
