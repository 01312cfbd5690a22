"""crmlens' own bookkeeping: the load log and the quarantine."""

from __future__ import annotations

from crmlens.schema.types import column, declare

# fmt: off
SYSTEM_TABLES = (
    declare("load_log",
        "加载日志",
        "Load log",
        "One row per table per load: rows read = loaded + quarantined + merged duplicates.",
        ("load_id", "table_name"),
        column("load_id", "string", "批次号", "Load ID", "Load key.", required=True),
        column("table_name", "string", "表", "Table", "Canonical table loaded.", required=True),
        column("source", "string", "来源", "Source", "File or query read."),
        column("started_at", "timestamp", "开始时间", "Started", "Load start."),
        column("finished_at", "timestamp", "结束时间", "Finished", "Load end."),
        column("rows_read", "int", "读取行数", "Rows read", "Data rows in the source."),
        column("rows_loaded", "int", "入库行数", "Rows loaded", "Rows written (new or updated)."),
        column("rows_quarantined", "int", "隔离行数", "Rows quarantined", "Rows rejected, with reason."),
        column("rows_merged", "int", "合并重复", "Duplicates merged", "Duplicate rows merged."),
        column("status", "string", "状态", "Status", "ok or failed."),
        kind="system",
        time="started_at",
    ),
    declare("quarantine",
        "隔离区",
        "Quarantine",
        "A log of every rejected row and every cleared or inferred value, with the rule and the original; several entries may share a line.",
        ("load_id", "table_name", "source", "line_no", "rule"),
        column("load_id", "string", "批次号", "Load ID", "Load.", required=True),
        column("table_name", "string", "表", "Table", "Target table.", required=True),
        column("source", "string", "来源", "Source", "File.", required=True),
        column("line_no", "int", "行号", "Line", "Line in the file (header = 1).", required=True),
        column("column_name", "string", "列", "Column", "Source column at fault; empty for rules about the whole row."),
        column("rule", "string", "规则", "Rule", "Rule broken, e.g. bad_timestamp.", required=True),
        column("action", "string", "处理", "Action", "rejected (row not loaded), cleared (value set empty, row loaded) or inferred (value filled by a rule, row loaded)."),
        column("original_value", "string", "原始值", "Original value", "The value as read."),
        column("row_json", "string", "原始行", "Original row", "The whole row as JSON."),
        kind="system",
    ),
)
# fmt: on
