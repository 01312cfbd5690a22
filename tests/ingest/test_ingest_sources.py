"""`crmlens ingest` reads what `crmlens load` reads: Parquet, JSON lines, Excel, text in any
encoding (checked for garbling even when declared), header-less text; rows are spooled to disk.

The PostgreSQL sources of `crmlens ingest` are tested in test_postgres.py (they need its server).
"""

from __future__ import annotations

import doctest
import importlib
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner, Result

from crmlens.cli import app
from crmlens.errors import EncodingError, SourceError
from crmlens.ingest import ReadOptions, read_input
from crmlens.warehouse import Warehouse

from . import canonical_customers as cc

runner = CliRunner()


def ingest_cli(tmp_path: Path, source: str, *options: str) -> tuple[Path, Result]:
    """Run ``crmlens ingest SOURCE --mapping customers.toml OPTIONS`` into a new warehouse."""
    wh = tmp_path / "w.duckdb"
    args = ["ingest", source, "--mapping", str(cc.write_mapping(tmp_path)), "-w", str(wh), "-q"]
    return wh, runner.invoke(app, [*args, *options])


FILES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...], list[int]]] = {
    # writer, options, lines of the bad birth date (C004) and of the row without an ID
    "parquet": (lambda p: cc.write_parquet(p / "c.parquet"), (), [4, 5]),
    "jsonl": (lambda p: cc.write_jsonl(p / "c.jsonl", "gb18030"), (), [5, 6]),
    "big5 csv": (lambda p: cc.write_csv(p / "c.csv", "big5"), (), [6, 7]),
    "tsv": (lambda p: cc.write_csv(p / "c.tsv", "utf-8-sig", "\t"), (), [6, 7]),
    "excel": (
        lambda p: cc.write_xlsx(p / "c.xlsx"),
        ("--sheet", "客戶", "--header-row", "3"),
        [8, 9],
    ),
}


@pytest.mark.parametrize("name", list(FILES))
def test_every_file_format_ingests_the_same_warehouse(tmp_path: Path, name: str) -> None:
    write, options, lines = FILES[name]
    folder = tmp_path / "in"
    folder.mkdir()
    src = write(folder)
    wh, result = ingest_cli(tmp_path, str(src), *options)
    assert result.exit_code == 0, result.output
    cc.check_ingested(wh, lines, src.name)


def test_a_folder_of_parquet_files_is_one_source(tmp_path: Path) -> None:
    folder = tmp_path / "daily"
    folder.mkdir()
    table = cc.arrow_table()
    pa.parquet.write_table(table.slice(0, 3), str(folder / "2021-01-01.parquet"))
    pa.parquet.write_table(table.slice(3), str(folder / "2021-01-02.parquet"))
    wh, result = ingest_cli(tmp_path, str(folder))
    assert result.exit_code == 0, result.output
    assert "Read 2 file(s), 6 rows" in result.output
    cc.check_ingested(wh, [1, 2], "2021-01-02.parquet")  # lines count in their own file


def test_a_wrong_declared_encoding_is_refused_not_loaded_as_mojibake(tmp_path: Path) -> None:
    src = cc.write_csv(tmp_path / "c.csv", "big5")
    wh, result = ingest_cli(tmp_path, str(src), "--encoding", "gbk")
    assert isinstance(result.exception, EncodingError)
    assert "garbled text" in str(result.exception)
    assert not wh.exists()


def test_a_header_less_file_is_sniffed_and_loads_with_a_mapping(tmp_path: Path) -> None:
    src = tmp_path / "cdnow.txt"
    src.write_text(" 00001 19970101  1  11.77\n 00002 19970112  2  89.00\n\n 00003 19970102 1 x\n")
    dry = runner.invoke(app, ["ingest", str(src), "--kind", "orders", "--dry-run", "-q"])
    assert dry.exit_code == 0, dry.output
    assert "Read 1 file(s), 3 rows" in dry.output and "column_4" in dry.output
    mapping = tmp_path / "cdnow.toml"
    mapping.write_text(
        'kind = "orders"\n[source]\ndelimiter = "whitespace"\nheader_row = 0\n[columns]\n'
        'order_id = { generate = "row" }\ncustomer_id = "column_1"\norder_time = "column_2"\n'
        'amount = "column_4"\n',
        encoding="utf-8",
    )
    wh = tmp_path / "w.duckdb"
    result = runner.invoke(app, ["ingest", str(src), "--mapping", str(mapping), "-w", str(wh)])
    assert result.exit_code == 0, result.output
    with Warehouse(wh, read_only=True) as w:
        rows = w.raw.execute("SELECT order_id, customer_id, amount FROM orders ORDER BY 1")
        assert rows.fetchall() == [("cdnow-1", "00001", 11.77), ("cdnow-2", "00002", 89.0)]
        bad = w.raw.execute("SELECT line_no, rule, original_value FROM quarantine").fetchall()
        assert bad == [(4, "bad_number", "x")]  # the blank line 3 is skipped, not renumbered


def test_rows_are_spooled_to_disk_not_held_in_memory(tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    with src.open("w", encoding="utf-8") as out:
        out.write("会员卡号,姓名,城市\n")
        out.writelines(f"M{i:07d},王{i},烟台\n" for i in range(60_000))
    before = pa.total_allocated_bytes()
    raw = read_input(src, ReadOptions(), workdir=tmp_path)
    assert raw.rows == 60_000 and raw.arrow.column("__line")[-1].as_py() == 60_001
    assert pa.total_allocated_bytes() - before < 1 << 20  # memory-mapped, not in Arrow's pool
    assert list(tmp_path.glob("*.arrow"))


def test_files_of_a_folder_must_share_their_headers(tmp_path: Path) -> None:
    cc.write_csv(tmp_path / "a.csv", "utf-8")
    (tmp_path / "b.csv").write_text("客戶編號,姓名\nC9,王\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"b\.csv, row 1: expected the headers of a\.csv"):
        read_input(tmp_path, ReadOptions())


def test_ingest_resolves_identities_as_load_does(tmp_path: Path) -> None:
    """A ticket carrying only a phone is tied to the customer with that phone, as in `load`."""
    wh = tmp_path / "w.duckdb"
    members = tmp_path / "members.csv"
    members.write_text("会员卡号,手机号\nM1,13800138000\nM2,13900139000\n", encoding="utf-8")
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text('{"工单号": "T1", "联系电话": "138-0013-8000"}\n', encoding="utf-8")
    for src, kind in ((members, "customers"), (tickets, "service_tickets")):
        result = runner.invoke(app, ["ingest", str(src), "--kind", kind, "-w", str(wh), "-q"])
        assert result.exit_code == 0, result.output
    assert "identity: 1 matched by phone or e-mail" in result.output


@pytest.mark.parametrize(
    "module",
    [
        "__init__",
        "encoding",
        "files",
        "formats",
        "mapping_file",
        "postgres",
        "prepare",
        "readers",
        "sniff",
        "spec",
    ],
)
def test_doctests(module: str) -> None:
    name = "crmlens.ingest" + ("" if module == "__init__" else f".{module}")
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
