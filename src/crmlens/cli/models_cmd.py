"""``crmlens build``, ``segment``, ``clv`` and ``churn``: build the customer models, then read them.

``build`` computes every model (:mod:`crmlens.models.build`) and replaces the model tables; the
other three only read those tables, so they answer in a moment and show exactly what the dashboard
shows. Registered on the main app with ``app.command()(build)`` and so on; the model layer is
imported inside the commands so that ``crmlens --help`` stays fast.

Reports never show names, and customer IDs, phone numbers and e-mails only masked (D7).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from crmlens.cli.options import QuietOption, WarehouseOption
from crmlens.cli.progress import make_console, progress_bars
from crmlens.errors import ConfigError, ModelError, WarehouseError

if TYPE_CHECKING:
    from crmlens.models.build import BuildReport
    from crmlens.warehouse import Warehouse

console = make_console()

TopOption = Annotated[int, typer.Option(min=1, help="How many customers to list.")]
SCHEMES = ("cn8", "en11", "lifecycle")
WARNINGS = {
    "warning_no_recent_order": "近90天未下单",
    "warning_falling_orders": "互动频率下降",
    "warning_recent_complaint": "近期投诉",
}


# -- masking (D7) -----------------------------------------------------------------------------
def mask_id(value: object) -> str:
    """A customer ID with its middle hidden: enough to tell rows apart, not to look one up.

    >>> mask_id("M0001655")
    'M0****55'
    """
    text = "" if value is None else str(value)
    keep = len(text) // 4
    return text[:keep] + "*" * (len(text) - 2 * keep) + (text[-keep:] if keep else "")


def mask_phone(value: object) -> str:
    """A mobile number as ``138****5678``; other values as :func:`mask_id`; empty stays empty.

    >>> mask_phone("13812345678")
    '138****5678'
    """
    if value is None or value != value or value == "":  # None, NaN or empty
        return ""
    text = str(value)
    if len(text) == 11 and text.isdigit():
        return f"{text[:3]}****{text[-4:]}"
    return mask_id(text)


# -- formatting -------------------------------------------------------------------------------
def _missing(value: Any) -> bool:
    return value is None or value != value  # NaN and pd.NA compare unequal to themselves


def _flag(value: Any) -> bool:
    return not _missing(value) and bool(value)


def _money(value: Any) -> str:
    return "—" if _missing(value) else f"¥{float(value):,.2f}"


def _pct(value: Any) -> str:
    return "—" if _missing(value) else f"{float(value):.1%}"


def _num(value: Any, digits: int = 0) -> str:
    return "—" if _missing(value) else f"{float(value):,.{digits}f}"


def _parse_day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of must be a date like 2021-12-31; got {text!r}") from None


# -- reading the model tables -----------------------------------------------------------------
def _open(path: Path | None) -> Warehouse:
    from crmlens.warehouse import Warehouse

    return Warehouse(path, read_only=True)


def latest_build(wh: Warehouse) -> dict[str, Any]:
    """The ``model_runs`` row of the latest successful build; ModelError when there is none."""
    import ibis

    hint = f"{wh.path}: no customer models built yet; run `crmlens build` first"
    if "model_runs" not in wh.backend.list_tables():  # a file from before schema version 2
        raise ModelError(hint)
    runs = wh.table("model_runs")
    latest = runs.filter(runs.status == "ok").order_by(ibis.desc("started_at")).limit(1)
    frame = wh.execute(latest)
    if frame.empty:
        raise ModelError(hint)
    return frame.iloc[0].to_dict()


def _title(text: str, run: dict[str, Any]) -> str:
    return f"{text} — as of {run['as_of']:%Y-%m-%d} (build {run['build_id']})"


# -- commands ---------------------------------------------------------------------------------
def build(
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Observation date, e.g. 2021-12-31 (default: the day of the last order).",
        ),
    ] = None,
    warehouse: WarehouseOption = None,
    quiet: QuietOption = False,
) -> None:
    """Build every customer model (RFM, clusters, lifecycle, CLV, churn, personas) as of a date."""
    from crmlens.models.build import build as build_models
    from crmlens.warehouse import Warehouse, default_path

    day = _parse_day(as_of)
    path = warehouse or default_path()
    if not path.exists():
        raise WarehouseError(f"{path}: no warehouse there; run `crmlens load` first")
    with Warehouse(path) as wh, progress_bars(console, enabled=not quiet) as bars:
        report = build_models(wh, as_of=day, progress=bars)
    _print_build(report)


def _print_build(report: BuildReport) -> None:
    from crmlens.models.build import STEPS

    h = report.headline
    console.print(f"模型构建 / build {report.build_id}, as of {report.as_of}")
    table = Table()
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for key, label in STEPS.items():
        note = " (skipped)" if key in report.skipped else ""
        table.add_row(label + note, _num(report.seconds.get(key), 1))
    table.add_row("total", _num(report.total_seconds, 1))
    console.print(table)
    console.print(f"客户 customers {h['customers']:,}, 购买客户 buyers {h['buyers']:,}")
    console.print(f"聚类 clusters {h['n_clusters']} (silhouette {_num(h['silhouette'], 2)})")
    if "clv" not in report.skipped:
        console.print(f"12个月客户价值合计 CLV (12 months) {_money(h['clv_12m_total'])}")
    if "churn" not in report.skipped:
        console.print(
            f"流失模型 churn ROC AUC {_num(h['churn_auc'], 3)} vs recency baseline "
            f"{_num(h['churn_baseline_auc'], 3)}; 预警客户 early warning "
            f"{h['early_warning_customers']:,}"
        )
    if "churned_purchases" not in report.skipped:
        console.print(
            f"流失客户常购品类 churned customers bought: {'、'.join(h['churned_top_by_lines'])}"
        )
    for key, why in report.skipped.items():
        console.print(f"[yellow]{key} skipped:[/] {why}")


def segment(
    scheme: Annotated[
        str, typer.Option(help="cn8 (8 RFM groups), en11 (11 RFM segments) or lifecycle.")
    ] = "cn8",
    warehouse: WarehouseOption = None,
) -> None:
    """Customer segments of the latest build: size, value, averages and the suggested action."""
    if scheme not in SCHEMES:
        raise ConfigError(f"--scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}")
    with _open(warehouse) as wh:
        run = latest_build(wh)
        seg = wh.table("model_segments")
        frame = wh.execute(seg.filter(seg.scheme == scheme).order_by("position"))
    table = Table(title=_title(f"客户分群 / segments ({scheme})", run), title_justify="left")
    for name in (
        "分群",
        "Segment",
        "客户数",
        "占比",
        "金额占比",
        "R(天)",
        "F",
        "M",
        "CLV",
        "流失风险",
    ):
        # names never wrap or truncate: the action text takes what width is left
        label = name in ("分群", "Segment")
        table.add_column(name, justify="left" if label else "right", no_wrap=label)
    for r in frame.to_dict(orient="records"):
        cells = [
            r["name_zh"],
            r["name_en"],
            f"{r['customers']:,}",
            _pct(r["share"]),
            _pct(r["revenue_share"]),
            _num(r["mean_recency_days"]),
            _num(r["mean_frequency"], 1),
            _money(r["mean_monetary"]),
            _money(r["mean_clv_12m"]),
            _pct(r["mean_churn_risk"]),
        ]
        table.add_row(*cells)
    console.print(table)
    if scheme == "lifecycle":
        return
    # actions are sentences: their own table, so the numbers above stay on one line each
    actions = Table(title="建议策略 / Actions", title_justify="left", show_lines=True)
    actions.add_column("分群", no_wrap=True)
    actions.add_column("策略")
    actions.add_column("Action")
    for r in frame.to_dict(orient="records"):
        actions.add_row(r["name_zh"], r["action_zh"], r["action_en"])
    console.print(actions)


def clv(top: TopOption = 20, warehouse: WarehouseOption = None) -> None:
    """Customer lifetime value of the latest build: distribution, fitted models, top customers."""
    import ibis
    import numpy as np

    with _open(warehouse) as wh:
        run = latest_build(wh)
        scores = wh.table("model_customer_scores")
        valued = scores.filter(scores.clv_12m.notnull())
        values = wh.execute(valued.clv_12m).to_numpy(dtype=float)
        params = wh.execute(wh.table("model_clv_params"))
        best = wh.execute(
            valued.order_by([ibis.desc("clv_12m"), "customer_id"])
            .limit(top)
            .select(
                "customer_id",
                "rfm_segment_cn",
                "frequency",
                "monetary",
                "p_alive",
                "expected_purchases_90d",
                "clv_12m",
            )
        )
    if not len(values):
        raise ModelError(f"the latest build has no CLV: {run['error'] or 'CLV was not computed'}")
    ordered = np.sort(values)[::-1]
    total = ordered.sum()
    dist = Table(title=_title("12个月客户价值分布 / CLV (12 months)", run), title_justify="left")
    for name in ("buyers", "total", "mean", "median", "p90", "p99", "max", "top 10 % share"):
        dist.add_column(name, justify="right")
    top_tenth = ordered[: max(1, len(ordered) // 10)].sum() / total if total else float("nan")
    dist.add_row(
        f"{len(values):,}",
        _money(total),
        _money(values.mean()),
        *(_money(np.quantile(values, q)) for q in (0.5, 0.9, 0.99)),
        _money(ordered[0]),
        _pct(top_tenth),
    )
    console.print(dist)
    fitted = Table(title="模型参数 / fitted parameters (BG/NBD per week)", title_justify="left")
    for name in ("model", "parameter", "estimate", "std. error", "log-likelihood", "customers"):
        fitted.add_column(name, justify="left" if name in ("model", "parameter") else "right")
    for r in params.to_dict(orient="records"):
        fitted.add_row(
            r["model"],
            r["parameter"],
            f"{r['value']:.4g}",
            "—" if _missing(r["standard_error"]) else f"{r['standard_error']:.3g}",
            _num(r["log_likelihood"], 1),
            f"{r['customers']:,}",
        )
    console.print(fitted)
    ranked = Table(title=f"最高价值客户 / top {top} customers by CLV", title_justify="left")
    for name in ("客户", "RFM分群", "购买次数", "累计消费", "P(alive)", "预计90天购买", "CLV"):
        ranked.add_column(name, justify="left" if name in ("客户", "RFM分群") else "right")
    for r in best.to_dict(orient="records"):
        ranked.add_row(
            mask_id(r["customer_id"]),
            r["rfm_segment_cn"],
            _num(r["frequency"]),
            _money(r["monetary"]),
            _pct(r["p_alive"]),
            _num(r["expected_purchases_90d"], 2),
            _money(r["clv_12m"]),
        )
    console.print(ranked)


def churn(top: TopOption = 20, warehouse: WarehouseOption = None) -> None:
    """Churn of the latest build: validation, the early-warning list, what churned customers bought."""
    import ibis

    with _open(warehouse) as wh:
        run = latest_build(wh)
        scores = wh.table("model_customer_scores")
        customers = wh.table("customers").select("customer_id", "phone", "consent_marketing")
        watch = scores.filter(scores.early_warning)
        watch = watch.left_join(customers, watch.customer_id == customers.customer_id)
        at_risk = wh.execute(
            watch.order_by([ibis.desc("churn_risk"), ibis.desc("clv_12m"), "customer_id"])
            .limit(top)
            .select(
                "customer_id",
                "phone",
                "consent_marketing",
                "churn_risk",
                "clv_12m",
                *WARNINGS,
                "churn_reasons_zh",
                "churn_reasons_en",
            )
        )
        bought = wh.table("model_churned_purchases")
        categories = wh.execute(
            bought.filter(bought.rank_by_lines.notnull() | bought.rank_by_lift.notnull()).order_by(
                [bought.rank_by_lines.asc(nulls_first=False), bought.rank_by_lift]
            )
        )
    if _missing(run["churn_auc"]):
        console.print(f"[yellow]no churn model in the latest build:[/] {run['error']}")
    else:
        console.print(
            _title("流失模型验证 / churn model validation", run)
            + f"\ntrained at {run['churn_train_as_of']:%Y-%m-%d}, validated at "
            f"{run['churn_validation_as_of']:%Y-%m-%d} (churn rate {_pct(run['churn_rate'])})\n"
            f"ROC AUC {run['churn_auc']:.3f} vs recency baseline {run['churn_baseline_auc']:.3f}; "
            f"top-decile lift {run['churn_lift']:.2f} vs {run['churn_baseline_lift']:.2f}"
        )
    risk = Table(
        title=f"流失预警 / early warning: top {top} of {_num(run['early_warning_customers'])}",
        title_justify="left",
    )
    for name in ("客户", "手机", "营销授权", "流失风险", "CLV", "预警", "原因 / reasons"):
        risk.add_column(name, justify="right" if name in ("流失风险", "CLV") else "left")
    for r in at_risk.to_dict(orient="records"):
        fired = [text for column, text in WARNINGS.items() if _flag(r[column])]
        risk.add_row(
            mask_id(r["customer_id"]),
            mask_phone(r["phone"]),
            ""
            if _missing(r["consent_marketing"])
            else "是"
            if _flag(r["consent_marketing"])
            else "否",
            _pct(r["churn_risk"]),
            _money(r["clv_12m"]),
            "、".join(fired),
            f"{r['churn_reasons_zh'] or ''}\n{r['churn_reasons_en'] or ''}".strip(),
        )
    console.print(risk)
    if categories.empty:
        return
    trend = Table(
        title=f"流失客户常购品类 / what churned customers bought ({run['churned_customers']:,} churned)",
        title_justify="left",
    )
    for name in ("品类", "by lines", "by lift", "流失客户行数", "提升度", "SKU", "趋势"):
        trend.add_column(name, justify="left" if name in ("品类", "趋势") else "right")
    for r in categories.to_dict(orient="records"):
        trend.add_row(
            r["category"],
            _num(r["rank_by_lines"]),
            _num(r["rank_by_lift"]),
            f"{r['churned_lines']:,}",
            _num(r["lift"], 2),
            f"{r['first_month']} {_num(r['first_skus'])} → {r['last_month']} {_num(r['last_skus'])}",
            r["sku_trend"] or "",
        )
    console.print(trend)
