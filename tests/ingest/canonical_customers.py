"""One small canonical customers table, written in every format and encoding the readers take.

Traditional Chinese text (present in both GBK and Big5, so every encoding can hold it), a value
with a comma, a quote and a line break, an empty value, a bad date (cleared) and a row without an
ID (rejected). Each writer produces the same rows; loading any of them must give
:data:`EXPECTED` in the warehouse and the same quarantine.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter

from crmlens.ingest import load_sources
from crmlens.ingest.spec import ColumnSpec, SourceSpec
from crmlens.warehouse import Warehouse

HEADERS = (
    "客戶編號",
    "姓名",
    "性別",
    "出生日期",
    "城市",
    "會員等級",
    "營銷授權",
    "註冊時間",
    "公司名稱",
)
ROWS: tuple[tuple[str, ...], ...] = (
    ("C001", "陳美玲", "女", "1985-03-02", "臺北市", "白金", "是", "2021-03-05 10:21:00", ""),
    ("C002", "王志強", "男", "1979-11-20", "高雄市", "黃金", "否", "2021-04-01 09:00:00", '大同,"股份"'),
    ("C003", "林淑芬", "女", "1990-07-15", "台中市", "白銀", "是", "2021-05-17 18:30:00", "香港\n分公司"),
    ("C004", "張家豪", "男", "1985-13-45", "上海", "普通", "否", "2021-06-30 23:59:59", ""),
    ("", "黃雅婷", "女", "1995-12-31", "香港", "普通", "是", "2021-07-01 08:00:00", ""),
    ("C006", "劉德華", "男", "1961-09-27", "新竹縣", "白金", "是", "2021-08-08 08:08:08", "鴻海"),
)  # fmt: skip
#: What the warehouse holds after loading ROWS (C004's bad birth date cleared, the row without ID
#: rejected), ordered by customer_id.
EXPECTED = [
    ("C001", "陳美玲", "女", date(1985, 3, 2), "臺北市", "白金", True, datetime(2021, 3, 5, 10, 21), None),
    ("C002", "王志強", "男", date(1979, 11, 20), "高雄市", "黃金", False, datetime(2021, 4, 1, 9), '大同,"股份"'),
    ("C003", "林淑芬", "女", date(1990, 7, 15), "台中市", "白銀", True, datetime(2021, 5, 17, 18, 30), "香港\n分公司"),
    ("C004", "張家豪", "男", None, "上海", "普通", False, datetime(2021, 6, 30, 23, 59, 59), None),
    ("C006", "劉德華", "男", date(1961, 9, 27), "新竹縣", "白金", True, datetime(2021, 8, 8, 8, 8, 8), "鴻海"),
]  # fmt: skip
#: (rule, source column, action, original value) of the quarantine, ordered.
EXPECTED_QUARANTINE = [
    ("bad_date", "出生日期", "cleared", "1985-13-45"),
    ("missing_required", "客戶編號", "rejected", None),
]
TARGETS = (
    "customer_id", "name", "gender", "birth_date", "city", "member_tier", "consent_marketing",
    "signup_date", "company_name",
)  # fmt: skip


def spec(path: str, **reading: object) -> SourceSpec:
    """The customers source at ``path`` read with ``reading`` (format, encoding, …)."""
    columns = tuple(ColumnSpec(t, h) for t, h in zip(TARGETS, HEADERS, strict=True))
    return SourceSpec(path=path, table="customers", columns=columns, **reading)  # type: ignore[arg-type]


def csv_text(delimiter: str = ",", title_lines: int = 0) -> str:
    """The table as CSV text with CRLF line ends (a quoted value keeps its own line break)."""
    out = io.StringIO()
    for i in range(title_lines):
        out.write(f"客戶清單 第{i + 1}頁\r\n")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(HEADERS)
    writer.writerows(ROWS)
    return out.getvalue()


def write_csv(path: Path, encoding: str, delimiter: str = ",", title_lines: int = 0) -> Path:
    path.write_bytes(csv_text(delimiter, title_lines).encode(encoding))
    return path


def write_xlsx(path: Path, *, title: bool = True) -> Path:
    """A workbook with a decoy first sheet; sheet 客戶 has a title row, a blank row, then the table
    (headers on row 3), real date and date-time cells, and a blank row inside the data."""
    book = xlsxwriter.Workbook(str(path))
    book.add_worksheet("說明").write(0, 0, "本檔案由系統匯出")
    sheet = book.add_worksheet("客戶")
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    top = 2 if title else 0
    if title:
        sheet.write(0, 0, "客戶清單")
    sheet.write_row(top, 0, HEADERS)
    r = top + 1
    for row in ROWS:
        if row[0] == "C004":
            r += 1  # a blank row inside the data is skipped
        for c, value in enumerate(row):
            if c == 3 and value != "1985-13-45":
                sheet.write_datetime(r, c, datetime.strptime(value, "%Y-%m-%d"), day)
            elif c == 7:
                sheet.write_datetime(r, c, datetime.strptime(value, "%Y-%m-%d %H:%M:%S"), stamp)
            elif value:
                sheet.write_string(r, c, value)
        r += 1
    book.close()
    return path


def arrow_table() -> pa.Table:
    """The table with typed columns where the values allow: timestamps, booleans."""
    cols = {
        h: [v or None for v in col] for h, col in zip(HEADERS, zip(*ROWS, strict=True), strict=True)
    }
    stamps = [datetime.strptime(v, "%Y-%m-%d %H:%M:%S") for v in cols["註冊時間"]]
    data: dict[str, pa.Array] = {h: pa.array(v, pa.string()) for h, v in cols.items()}
    data["註冊時間"] = pa.array(stamps, pa.timestamp("us"))
    data["營銷授權"] = pa.array([v == "是" for v in cols["營銷授權"]], pa.bool_())
    return pa.table(data)


def write_parquet(path: Path) -> Path:
    pq.write_table(arrow_table(), str(path), row_group_size=2)  # several row groups
    return path


def write_jsonl(path: Path, encoding: str = "utf-8") -> Path:
    """One object per line with a blank line after the first; booleans as JSON booleans, a
    missing key for an empty value."""
    lines = []
    for row in ROWS:
        obj: dict[str, object] = {h: v for h, v in zip(HEADERS, row, strict=True) if v}
        obj["營銷授權"] = row[6] == "是"
        lines.append(json.dumps(obj, ensure_ascii=False))
    lines.insert(1, "")
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def load(tmp: Path, source: Path, source_spec: SourceSpec) -> Warehouse:
    """Load ``source`` (in folder ``source.parent``) into a new warehouse under ``tmp``; return it
    open (the caller closes it)."""
    wh = Warehouse(tmp / f"{source.name}.duckdb")
    report = load_sources(wh, source.parent, [source_spec])
    assert report.balanced
    return wh


def contents(wh: Warehouse) -> list[tuple[object, ...]]:
    cols = ", ".join(TARGETS)
    return wh.raw.execute(f"SELECT {cols} FROM customers ORDER BY customer_id").fetchall()


def quarantine(wh: Warehouse) -> list[tuple[object, ...]]:
    return wh.raw.execute(
        "SELECT rule, column_name, action, original_value FROM quarantine ORDER BY ALL"
    ).fetchall()


def write_mapping(folder: Path) -> Path:
    """The ``crmlens ingest`` mapping of the table, as a user would write it."""
    lines = ['kind = "customers"', "[columns]"]
    lines += [f'{t} = "{h}"' for t, h in zip(TARGETS, HEADERS, strict=True)]
    path = folder / "customers.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check_ingested(path: Path, lines: list[int], source_file: str) -> None:
    """The warehouse at ``path`` holds :data:`EXPECTED`; the quarantine names each bad row's own
    line and its file (``source_file``, which ``crmlens ingest`` adds to the row)."""
    with Warehouse(path, read_only=True) as wh:
        assert contents(wh) == EXPECTED
        assert quarantine(wh) == EXPECTED_QUARANTINE
        assert quarantine_lines(wh) == lines
        rows = wh.raw.execute("SELECT row_json FROM quarantine ORDER BY rule").fetchall()
        assert {json.loads(r[0])["source_file"] for r in rows} == {source_file}


def quarantine_lines(wh: Warehouse) -> list[int]:
    return [r[0] for r in wh.raw.execute("SELECT line_no FROM quarantine ORDER BY rule").fetchall()]
