"""Suggest how a file's headers map onto a canonical table: synonyms plus value sniffing.

A header matches a canonical column by name (the column's name, its Chinese and English schema
labels, and the synonyms in ``synonyms.toml``), and the sampled values must look like the column's
type (dates, numbers, money, phones, e-mails, booleans). Each choice carries a confidence in [0, 1]
and the reason for it, so that ``crmlens ingest --dry-run`` can show why.

>>> s = suggest_mapping(["会员卡号", "下单时间", "实付金额", "订单号"],
...                     [["M01", "2021/3/5 10:00", "¥1,280.00", "O1"]], "orders")
>>> [(c.target, c.header) for c in s.columns]
[('order_id', '订单号'), ('customer_id', '会员卡号'), ('order_time', '下单时间'), ('amount', '实付金额')]
>>> sniff_values(["2021年3月5日", "2021-03-06"]).kind
'date'
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from crmlens.errors import ConfigError
from crmlens.ingest.mapping_file import RELATED, ColumnRule, IngestMapping, ReadOptions
from crmlens.schema import data_tables, table
from crmlens.schema.types import Table

SYNONYMS_FILE = Path(__file__).with_name("synonyms.toml")
#: Values that mean "no value" in exports, besides the empty string.
NULL_TOKENS = frozenset({"null", "none", "nan", "na", "n/a", "#n/a", "-", "--", "无", "空"})
_MOBILE = re.compile(r"^(?:\+?86|0086)?[\s-]?1\d{2}[\s-]?\d{4}[\s-]?\d{4}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_YMD = re.compile(r"^(19|20)\d{2}[-/.年](0?[1-9]|1[0-2])[-/.月](0?[1-9]|[12]\d|3[01])日?")
_COMPACT = re.compile(r"^(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")
_XY_YEAR = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")
_TIME = re.compile(r"\d{1,2}:\d{2}")
_SERIAL = re.compile(r"^[2-7]\d{4}(\.\d+)?$")  # Excel serial days: 1954-10 .. 2173-10
_BOOL = frozenset({"true", "false", "yes", "no", "y", "n", "t", "f", "是", "否"})
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_FLOAT_ID = re.compile(r"^\d+\.0+$")
_MONEY = re.compile(
    r"^[+-]?[¥￥$€£]?\s*[+-]?\d{1,3}(,\d{3})*(\.\d+)?\s*(元|RMB|CNY|USD)?$|^[+-]?[¥￥$€£]\s*\d+(\.\d+)?$|^[+-]?\d+(\.\d+)?\s*(元|RMB|CNY)$"
)
_KIND_OF_TYPE = {"string": "string", "int": "int", "float": "float", "money": "money",
                 "bool": "bool", "date": "date", "timestamp": "date"}  # fmt: skip
_SCORE_NAME, _SCORE_CONTAINS = 1.0, 0.7


@dataclass(frozen=True)
class ValueProfile:
    """What the non-empty sampled values of one column look like."""

    kind: str  # string, int, float, money, bool, date, phone, email, empty
    share: float  # of the non-empty values, the share that fits ``kind``
    non_empty: int
    #: For day/month/year dates: dmy or mdy when the values decide it, "ambiguous" when not.
    date_order: str | None = None
    has_time: bool = False
    excel_serial: bool = False
    float_ids: bool = False  # whole numbers written with ".0" (17850.0)


def value_fits(kind: str, v: str) -> bool:
    """Whether the (trimmed, non-empty) text ``v`` looks like a ``kind`` value."""
    if kind == "bool":
        return v.lower() in _BOOL
    if kind == "int":
        return bool(_INT.match(v))
    if kind == "float":
        return bool(_FLOAT.match(v))
    if kind == "money":
        return bool(_MONEY.match(v))
    if kind == "phone":
        return bool(_MOBILE.match(v))
    if kind == "email":
        return bool(_EMAIL.match(v))
    if kind == "date":
        return bool(_YMD.match(v) or _COMPACT.match(v) or _XY_YEAR.match(v))
    return True


def sniff_values(values: Sequence[str | None]) -> ValueProfile:
    """The kind that fits most non-empty values (the most specific first)."""
    vals = [v.strip() for v in values if v is not None and v.strip()]
    vals = [v for v in vals if v.lower() not in NULL_TOKENS]
    if not vals:
        return ValueProfile("empty", 0.0, 0)
    best, best_share = "string", 0.0
    for kind in ("bool", "phone", "email", "date", "int", "float", "money"):
        share = sum(value_fits(kind, v) for v in vals) / len(vals)
        if share >= 0.9:
            best, best_share = kind, share
            break
    order = None
    if best == "date":
        firsts = [m for v in vals if (m := _XY_YEAR.match(v))]
        if firsts:
            day_first = any(int(m.group(1)) > 12 for m in firsts)
            month_first = any(int(m.group(2)) > 12 for m in firsts)
            order = (
                "dmy" if day_first and not month_first else "mdy" if month_first else "ambiguous"
            )
    return ValueProfile(
        best,
        best_share if best != "string" else 1.0,
        len(vals),
        date_order=order,
        has_time=any(_TIME.search(v) for v in vals),
        excel_serial=best in ("int", "float") and all(_SERIAL.match(v) for v in vals),
        float_ids=best == "float" and all(_FLOAT_ID.match(v) for v in vals),
    )


def normalise_header(text: str) -> str:
    """Lower case, half-width, without spaces, ``_-.`` and brackets: the form headers are compared in.

    >>> normalise_header("Customer_ID"), normalise_header("金额（元）")
    ('customerid', '金额元')
    """
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\s_\-.()\[\]/:：]", "", text)


@cache
def _synonyms() -> dict[str, tuple[str, ...]]:
    try:
        doc = tomllib.loads(SYNONYMS_FILE.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{SYNONYMS_FILE}: cannot read the synonyms catalogue: {exc}") from exc
    return {k: tuple(normalise_header(s) for s in v) for k, v in doc["columns"].items()}


def column_names(tbl: Table, column: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the column's own names, the catalogue's synonyms), normalised; table-specific ones first."""
    col = tbl.column(column)
    own = tuple(normalise_header(n) for n in (col.name, col.label_zh, col.label_en))
    syn = _synonyms()
    return own, syn.get(f"{tbl.name}.{column}", ()) + syn.get(column, ())


@dataclass(frozen=True)
class ColumnChoice:
    """A proposed canonical column with its source, confidence and reason."""

    rule: ColumnRule
    confidence: float
    reason: str

    @property
    def target(self) -> str:
        return self.rule.target

    @property
    def header(self) -> str | None:
        return self.rule.header


@dataclass(frozen=True)
class Suggestion:
    """A proposed mapping of a file onto ``kind``."""

    kind: str
    columns: tuple[ColumnChoice, ...]
    unmapped: tuple[str, ...]
    #: Required columns of the kind's table that no header fills (the file does not fit as is).
    missing_required: tuple[str, ...]
    profiles: dict[str, ValueProfile]
    date_order: str | None

    @property
    def confidence(self) -> float:
        """Mean confidence of the required columns (0 for each missing one)."""
        required = [c for c in table(self.kind).columns if not c.nullable]
        chosen = {c.target: c.confidence for c in self.columns}
        return sum(chosen.get(c.name, 0.0) for c in required) / len(required)

    @property
    def fits(self) -> bool:
        """Whether the file fits the kind: every required column has a source, and at least one
        comes from a header that matched by name (not only generated IDs and constants)."""
        required = {c.name for c in table(self.kind).columns if not c.nullable}
        named = [
            c for c in self.columns if c.target in required and c.header and c.confidence >= 0.8
        ]
        return not self.missing_required and bool(named)

    @property
    def coverage(self) -> float:
        """The share of the file's headers the mapping uses."""
        used = {c.header for c in self.columns if c.header}
        return len(used) / max(len(used) + len(self.unmapped), 1)

    def to_mapping(self, read: ReadOptions | None = None) -> IngestMapping:
        """The mapping to load (or save and edit), reading files with ``read``."""
        rules: dict[str, object] = {}
        if self.date_order in ("dmy", "mdy"):
            rules["date_order"] = self.date_order
        return IngestMapping(
            self.kind,
            tuple(c.rule for c in self.columns),
            rules=rules,
            read=read or ReadOptions(),
        )


def _word_runs(header: str) -> set[str]:
    """The header's words (split at case changes, digits and separators) and their runs, joined.

    >>> sorted(_word_runs("TrafficType"))
    ['traffic', 'traffictype', 'type']
    """
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", header)]
    return {"".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}


def _name_score(header: str, own: tuple[str, ...], syn: tuple[str, ...]) -> tuple[float, str]:
    h = normalise_header(header)
    if not h:
        return 0.0, ""
    if h in own:
        return _SCORE_NAME, "header is the column's name or label"
    if h in syn:
        return 0.95, "header is a known synonym"
    runs = _word_runs(unicodedata.normalize("NFKC", header))
    for s in (*own, *syn):
        # a Chinese synonym of 2+ characters inside the header, or a Latin one of 4+ letters
        # that is whole words of it ("OperatingSystems" does not contain "rating")
        if s.isascii():
            if len(s) >= 4 and s in runs:
                return _SCORE_CONTAINS, f"header contains the words {s!r}"
        elif len(s) >= 2 and s in h:
            return _SCORE_CONTAINS, f"header contains the synonym {s!r}"
    return 0.0, ""


def _value_fit(col_type: str, profile: ValueProfile) -> tuple[float, str]:
    """A multiplier for how well the values fit a column of ``col_type``, and why."""
    if profile.kind == "empty":
        return 0.8, "no sample values"
    want = _KIND_OF_TYPE[col_type]
    got = profile.kind
    if want == "string":
        return (
            (1.0, f"values are {got}")
            if got not in ("bool", "money")
            else (0.8, f"values are {got}")
        )
    if want == got or (want in ("float", "money") and got in ("int", "float", "money")):
        return 1.0, f"values are {got} ({profile.share:.0%})"
    if want == "int" and got == "float" and profile.float_ids:
        return 1.0, "values are whole numbers written with .0"
    if want == "date" and profile.excel_serial:
        return 0.9, "values are Excel serial day numbers"
    return 0.3, f"values are {got}, expected {want}"


def _candidates(
    headers: Sequence[str], profiles: dict[str, ValueProfile], tbl: Table, prefix: str
) -> list[tuple[float, str, str, str]]:
    """(score, column, header, reason) for every plausible pair."""
    out = []
    for col in tbl.columns:
        if col.name in ("load_id", "loaded_at", "anon_id"):
            continue
        own, syn = column_names(tbl, col.name)
        for h in headers:
            score, why = _name_score(h, own, syn)
            profile = profiles[h]
            if score == 0.0 and profile.kind in ("phone", "email") and profile.kind in col.name:
                score, why = 0.6, f"values look like {profile.kind}s"
            if score == 0.0:
                continue
            fit, fit_why = _value_fit(col.type, profile)
            if col.name in ("phone", "contact_phone") and profile.kind not in ("phone", "empty"):
                fit, fit_why = 0.4, f"values are {profile.kind}, not mobile numbers"
            if col.name == "email" and profile.kind not in ("email", "empty"):
                fit, fit_why = 0.4, f"values are {profile.kind}, not e-mails"
            out.append((round(score * fit, 2), prefix + col.name, h, f"{why}; {fit_why}"))
    return out


def _rule_for(target: str, header: str, col_type: str, profile: ValueProfile) -> ColumnRule:
    name = target.rpartition(".")[2]
    kind = "phone" if name in ("phone", "contact_phone") else "email" if name == "email" else None
    clean = "id" if col_type == "string" and profile.float_ids else None
    return ColumnRule(target, header=header, kind=kind, clean=clean)


def suggest_mapping(
    headers: Sequence[str], sample_rows: Sequence[Sequence[str | None]], kind: str
) -> Suggestion:
    """Propose a mapping of a file with ``headers`` (and some rows) onto the table ``kind``.

    Each header feeds at most one column (the best-scoring pairs first); line and order files may
    also describe their order and customer (``orders.*``, ``customers.*``).
    """
    tbl = table(kind)
    profiles = {
        h: sniff_values([row[i] if i < len(row) else None for row in sample_rows])
        for i, h in enumerate(headers)
    }
    pairs = _candidates(headers, profiles, tbl, "")
    for related in RELATED.get(kind, ()):
        rel = _candidates(headers, profiles, table(related), f"{related}.")
        # a related table's column only where the kind's table has none of that name
        pairs += [
            (s * 0.9, t, h, w) for s, t, h, w in rel if t.split(".")[1] not in tbl.column_names
        ]
    pairs.sort(key=lambda p: -p[0])
    chosen: dict[str, ColumnChoice] = {}
    used: set[str] = set()
    for score, target, header, why in pairs:
        if target in chosen or header in used or score < 0.3:
            continue
        related, _, name = target.rpartition(".")
        col_type = table(related or kind).column(name).type
        rule = _rule_for(target, header, col_type, profiles[header])
        chosen[target] = ColumnChoice(rule, score, why)
        used.add(header)
    _complete(kind, tbl, chosen)
    order = [c.name for c in tbl.columns]
    columns = sorted(
        chosen.values(),
        key=lambda c: (c.target.count("."), order.index(c.target) if "." not in c.target else 0),
    )
    orders = [profiles[c.header].date_order for c in columns if c.header]
    date_order = next((o for o in orders if o in ("dmy", "mdy")), None)
    if date_order is None and "ambiguous" in orders:
        date_order = "ambiguous"
    missing = tuple(c.name for c in tbl.columns if not c.nullable and c.name not in chosen)
    return Suggestion(
        kind,
        tuple(columns),
        tuple(h for h in headers if h not in used),
        missing,
        profiles,
        date_order,
    )


def _complete(kind: str, tbl: Table, chosen: dict[str, ColumnChoice]) -> None:
    """Columns a file rarely has but the kind needs, generated or constant, with low confidence."""
    if kind == "customers" and "customer_id" in chosen and "anon_id" not in chosen:
        src = chosen["customer_id"].rule
        chosen["anon_id"] = ColumnChoice(
            ColumnRule("anon_id", header=src.header, kind="anon_id", clean=src.clean),
            1.0,
            "salted hash of customer_id (behaviour is analysed under it, D4)",
        )
    if kind == "order_lines" and "line_no" not in chosen and "order_id" in chosen:
        chosen["line_no"] = ColumnChoice(
            ColumnRule("line_no", generate="position"), 0.8, "the line's position in its order"
        )
    key = tbl.primary_key
    if (
        len(key) == 1
        and key[0] not in chosen
        and kind
        in (
            "orders",
            "app_events",
            "web_sessions",
            "campaign_touches",
            "service_tickets",
            "sales_activities",
        )
    ):
        chosen[key[0]] = ColumnChoice(
            ColumnRule(key[0], generate="row"), 0.5, "no ID in the file: <file>-<line>"
        )
    if kind == "experiment_units":
        for name, value in (("experiment_id", "experiment"), ("unit_type", "customer")):
            if name not in chosen:
                chosen[name] = ColumnChoice(
                    ColumnRule(name, value=value), 0.4, f"constant {value!r}: edit the mapping"
                )


def suggest_kind(headers: Sequence[str], sample_rows: Sequence[Sequence[str | None]]) -> Suggestion:
    """The best-fitting kind: one that :attr:`~Suggestion.fits`, then the most confident use of
    the most headers."""
    suggestions = [suggest_mapping(headers, sample_rows, t.name) for t in data_tables()]
    return max(
        suggestions, key=lambda s: (s.fits, round(s.confidence * s.coverage, 3), s.confidence)
    )
