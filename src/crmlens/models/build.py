"""``crmlens build``: every customer model as of one date, written to the model tables at once.

The models are computed first (reads only), then all model tables (``kind="model"`` in
:mod:`crmlens.schema`) are replaced in one :meth:`Warehouse.replace_tables` transaction, so the
dashboard sees the previous build or this one, never half of each::

    report = build(wh)                                 # as of the day of the last order
    report = build(wh, as_of=date(2021, 12, 31), progress=bars)
    report.seconds, report.headline

What is computed, all as of the same day:

* RFM scores and both segment schemes (:class:`~crmlens.models.rfm.RFMModel`, cn8 and en11);
* clusters on the same purchase features (:class:`~crmlens.models.clustering.CustomerClusters`);
* lifecycle stages (:class:`~crmlens.models.lifecycle.LifecycleStages`) — their population, every
  customer signed up by then plus every buyer, is the population of ``model_customer_scores``;
* BG/NBD + Gamma-Gamma on weekly histories: expected purchases in 90 days, P(alive), 12-month CLV
  discounted 1 % a month;
* churn (:class:`~crmlens.models.churn.ChurnModel`): trained at ``2 × horizon`` and validated at
  ``horizon`` days before the last labelled day (the earlier of ``as_of`` and the last order), then
  risk, reasons and the early-warning list at ``as_of``;
* personas per member tier, RFM group and cluster; what churned customers bought.

A model the data cannot support (a :class:`~crmlens.errors.ModelError` such as
:class:`~crmlens.errors.InsufficientDataError` from CLV, churn or churned purchases, e.g. with under
half a year of history) is skipped: its columns stay empty and
``model_runs.error`` says why. Any other error fails the build: nothing is written except a
``failed`` row in ``model_runs``, and the previous build's tables stay as they were.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from crmlens.errors import (
    ConfigError,
    InsufficientDataError,
    ModelError,
    NotFittedError,
    WarehouseError,
)
from crmlens.metrics.derived_tables import derived_tables
from crmlens.models.base import Estimator
from crmlens.models.build_tables import (
    churned_tables,
    clusters_table,
    persona_row,
    points_table,
    scores_table,
    segments_table,
)
from crmlens.models.churn import ChurnModel
from crmlens.models.churn_purchases import churned_purchases
from crmlens.models.churn_reasons import join_texts
from crmlens.models.clustering import CustomerClusters
from crmlens.models.clv import BetaGeoModel, GammaGammaModel, summarise_transactions
from crmlens.models.features import as_of_day, customer_features, transactions
from crmlens.models.lifecycle import LifecycleStages
from crmlens.models.personas import personas
from crmlens.models.rfm import RFMModel
from crmlens.schema import table as schema_table
from crmlens.warehouse import Warehouse

Progress = Callable[[str, int, int], None]
E = TypeVar("E", bound=Estimator)

#: Step key → progress label, in build order (the keys are the ``seconds_*`` of ``model_runs``).
STEPS = {
    "rfm": "RFM 分群 / RFM",
    "clusters": "聚类 / clusters",
    "lifecycle": "生命周期 / lifecycle",
    "clv": "客户价值 / CLV",
    "churn": "流失风险 / churn",
    "personas": "群体画像 / personas",
    "churned_purchases": "流失品类 / churned purchases",
    "write": "写入 / write tables",
}
#: Steps whose model may be skipped when the data cannot support it (a ModelError).
OPTIONAL_STEPS = ("clv", "churn", "churned_purchases")
#: Histories are in weeks, the unit BG/NBD is usually reported in (alpha per week).
TIME_UNIT_DAYS = 7
PURCHASE_HORIZON_DAYS = 90
CLV_MONTHS = 12
DISCOUNT_RATE_MONTHLY = 0.01
#: Gamma-Gamma needs mean repeat spend > 0; a repeat buyer whose repeat orders were refunded in
#: full is valued as if each had been worth a cent (credibility-weighted towards the population).
MIN_SPEND = 0.01
CLUSTER_POINTS = 5_000
#: The tables a build replaces, every ``kind="model"`` table except ``model_runs`` (appended to).
OUTPUT_TABLES = (
    "model_customer_scores",
    "model_segments",
    "model_clusters",
    "model_cluster_points",
    "model_personas",
    "model_churned_purchases",
    "model_churned_sku_counts",
    "model_clv_params",
)


@dataclass
class BuildReport:
    """What a build did: when, for which day, seconds per step, rows per table, headline numbers."""

    build_id: str
    as_of: date
    started_at: datetime
    finished_at: datetime
    seconds: dict[str, float]
    rows: dict[str, int]
    headline: dict[str, Any]
    #: Step → why its model was skipped (a ModelError); empty when every model was built.
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def default_as_of(wh: Warehouse) -> date:
    """The day of the last order.

    A date means the end of that day (:func:`~crmlens.models.features.cutoff`), so every order
    counts, a purchase on the last day has recency 0, and no model sees a day without data (the
    day after would add an empty first day to the next month, e.g. of the SKU trend).
    """
    last = wh.execute(wh.table("orders").order_time.max())
    if last is None or pd.isna(last):
        raise InsufficientDataError("the warehouse has no orders; load data first (crmlens load)")
    return pd.Timestamp(last).date()


def build(
    wh: Warehouse,
    *,
    as_of: date | None = None,
    progress: Progress | None = None,
    rfm: RFMModel | None = None,
    clusters: CustomerClusters | None = None,
    lifecycle: LifecycleStages | None = None,
    churn: ChurnModel | None = None,
    cluster_points: int = CLUSTER_POINTS,
    random_state: int = 0,
) -> BuildReport:
    """Compute every model as of ``as_of`` (default :func:`default_as_of`) and replace the tables.

    ``rfm``, ``clusters``, ``lifecycle`` and ``churn`` configure the models (unfitted estimators;
    copies are fitted, for RFM once per scheme). ``progress(step, done, total)`` is called at the
    start and end of each step of :data:`STEPS`.
    """
    if wh.read_only:
        raise WarehouseError(f"{wh.path}: opened read-only; a build writes the model tables")
    started = datetime.now()
    run: dict[str, Any] = {"build_id": f"{started:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"}
    run["started_at"] = started
    try:
        day = default_as_of(wh) if as_of is None else as_of_day(as_of)
        run["as_of"] = day
        builder = _Builder(wh, day, progress, random_state)
        outputs = builder.compute(
            rfm or RFMModel(),
            clusters or CustomerClusters(random_state=random_state),
            lifecycle or LifecycleStages(),
            churn or ChurnModel(random_state=random_state),
            cluster_points,
        )
        finished = datetime.now()
        run |= builder.run_columns() | {"finished_at": finished, "status": "ok"}
        with builder.step("write"):
            # with the dashboard's read-optimised copies (a load dropped them; see
            # derived_tables), which are written after the new scores they copy
            rows = wh.replace_tables(
                outputs | {"model_runs": _runs(wh, run)}, derived=derived_tables(wh)
            )
    except BaseException as exc:
        run |= {"finished_at": datetime.now(), "status": "failed"}
        run["error"] = f"{type(exc).__name__}: {exc}"
        # The build's own error matters more than a failure to record it (e.g. a read-only file).
        with contextlib.suppress(Exception):
            wh.replace_table("model_runs", _runs(wh, run))
        raise
    return BuildReport(
        build_id=run["build_id"],
        as_of=day,
        started_at=started,
        finished_at=datetime.now(),
        seconds=builder.seconds,
        rows=rows,
        headline=builder.headline,
        skipped=builder.skipped,
    )


def _runs(wh: Warehouse, run: dict[str, Any]) -> pd.DataFrame:
    """The ``model_runs`` history with ``run`` appended (the table is small: one row per build)."""
    declared = schema_table("model_runs")
    row = pd.DataFrame([dict.fromkeys(declared.column_names) | run])
    history = wh.execute(wh.table("model_runs"))
    runs = pd.concat([history, row], ignore_index=True) if len(history) else row
    for col in declared.columns:
        if col.type in ("date", "timestamp"):  # DuckDB returns dates as datetimes: one kind
            runs[col.name] = pd.to_datetime(runs[col.name])
    return runs


def _clone(model: E, **params: Any) -> E:
    """An unfitted copy of ``model`` with ``params`` changed, so the caller's object stays unfitted."""
    return type(model)(**(model.get_params(deep=False) | params))


class _Builder:
    """One build's state: the day, the step timings, and the models' results as they come in."""

    def __init__(
        self, wh: Warehouse, day: date, progress: Progress | None, random_state: int
    ) -> None:
        self.wh, self.day, self.progress, self.random_state = wh, day, progress, random_state
        self.seconds: dict[str, float] = {}
        self.skipped: dict[str, str] = {}
        self.headline: dict[str, Any] = {"as_of": day}

    @contextlib.contextmanager
    def step(self, key: str) -> Iterator[None]:
        """Time a step and report it; a ModelError of an optional model skips the model."""
        label = STEPS[key]
        if self.progress:
            self.progress(label, 0, 1)
        start = time.perf_counter()
        try:
            yield
        except ModelError as exc:
            # data that cannot support an optional model (too little history, a fit that does not
            # converge) skips it; a bug (NotFittedError) or a bad option (ConfigError) does not
            if key not in OPTIONAL_STEPS or isinstance(exc, NotFittedError):
                raise
            self.skipped[key] = str(exc)
        self.seconds[key] = time.perf_counter() - start
        if self.progress:
            self.progress(label, 1, 1)

    # -- the models -------------------------------------------------------------------------
    def compute(
        self,
        rfm: RFMModel,
        clusters: CustomerClusters,
        lifecycle: LifecycleStages,
        churn: ChurnModel,
        cluster_points: int,
    ) -> dict[str, pd.DataFrame]:
        """Every output table but ``model_runs``, by name."""
        wh, day = self.wh, self.day
        with self.step("rfm"):
            features = wh.execute(customer_features(wh.table, as_of=day))
            cn8 = _clone(rfm, scheme="cn8").fit(features)
            en11 = _clone(rfm, scheme="en11").fit(features)
        with self.step("clusters"):
            cl = _clone(clusters).fit(features)
        with self.step("lifecycle"):
            stages = _clone(lifecycle).fit(wh, as_of=day).stages_
        clv = pd.DataFrame(columns=["customer_id", "expected_purchases_90d", "p_alive", "clv_12m"])
        params = pd.DataFrame(columns=list(schema_table("model_clv_params").column_names))
        with self.step("clv"):
            clv, params = self._clv()
        risk = pd.DataFrame(columns=["customer_id", "churn_risk"])
        with self.step("churn"):
            risk = self._churn(_clone(churn))
        scores = scores_table(
            day, stages, features, cn8.scores_, en11.scores_, cl.labels_, clv, risk
        )
        with self.step("personas"):
            personas = self._personas(scores)
        bought = None
        with self.step("churned_purchases"):
            bought = churned_purchases(wh, as_of=day)
        self.headline |= {
            "customers": len(scores),
            "buyers": len(features),
            "n_clusters": cl.n_clusters_,
            "silhouette": cl.silhouette_,
            "clv_12m_total": float(scores["clv_12m"].sum()) if len(clv) else None,
            "early_warning_customers": int(scores["early_warning"].eq(True).sum()),
        }
        return {
            "model_customer_scores": scores,
            "model_segments": segments_table(day, scores),
            "model_clusters": clusters_table(day, scores, cl.profile_),
            "model_cluster_points": points_table(cl.projection_, cluster_points, self.random_state),
            "model_personas": personas,
            **churned_tables(day, bought, self.headline),
            "model_clv_params": params,
        }

    def _clv(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        tx = self.wh.execute(transactions(self.wh.table, as_of=self.day))
        summary = summarise_transactions(
            tx["customer_id"].to_numpy(),
            tx["order_time"],
            tx["amount"].to_numpy(),
            observation_end=self.day,
            time_unit_days=TIME_UNIT_DAYS,
        )
        x, t_x, T, m = (summary[c].to_numpy() for c in ("x", "t_x", "T", "monetary"))
        bg = BetaGeoModel().fit(x, t_x, T)
        spend = (x > 0) & (m > 0)
        gg = GammaGammaModel().fit(x[spend], m[spend])
        value = np.where(x > 0, np.maximum(m, MIN_SPEND), 0.0)
        clv = pd.DataFrame(
            {
                "customer_id": summary.index.to_numpy(),
                "expected_purchases_90d": bg.expected_purchases(
                    PURCHASE_HORIZON_DAYS / TIME_UNIT_DAYS, x, t_x, T
                ),
                "p_alive": bg.probability_alive(x, t_x, T),
                "clv_12m": gg.customer_lifetime_value(
                    bg,
                    x,
                    t_x,
                    T,
                    value,
                    horizon_months=CLV_MONTHS,
                    discount_rate_monthly=DISCOUNT_RATE_MONTHLY,
                    time_unit_days=TIME_UNIT_DAYS,
                ),
            }
        )
        rows = [
            (name, model, key)
            for name, model in (("bgnbd", bg), ("gamma_gamma", gg))
            for key in model.params_
        ]
        params = pd.DataFrame(
            {
                "model": [r[0] for r in rows],
                "parameter": [r[2] for r in rows],
                "as_of": self.day,
                "value": [r[1].params_[r[2]] for r in rows],
                "standard_error": [r[1].standard_errors_[r[2]] for r in rows],
                "log_likelihood": [r[1].log_likelihood_ for r in rows],
                "customers": [r[1].n_customers_ for r in rows],
            }
        )
        self.headline |= {"bgnbd": bg.params_, "gamma_gamma": gg.params_}
        return clv, params

    def _churn(self, model: ChurnModel) -> pd.DataFrame:
        """Risk, reasons and warning flags per buyer, from a model trained on earlier cutoffs."""
        horizon = model.horizon_days
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ConfigError(f"churn horizon_days must be a whole number >= 1; got {horizon!r}")
        last = pd.Timestamp(self.wh.execute(self.wh.table("orders").order_time.max())).date()
        # labels need the horizon after a cutoff, and only data up to as_of may be used
        validation = min(self.day, last) - timedelta(days=horizon)
        train = validation - timedelta(days=horizon)
        model.fit(self.wh, train_as_of=train, validation_as_of=validation)
        v = model.validation_
        assert v is not None  # fit was given a validation cutoff
        self.headline |= {
            "churn_train_as_of": train,
            "churn_validation_as_of": validation,
            "churn_rate": v.get("churn_rate"),
            "churn_auc": v["model"]["roc_auc"],
            "churn_baseline_auc": v["baseline"]["roc_auc"],
            "churn_lift": v["model"]["top_decile_lift"],
            "churn_baseline_lift": v["baseline"]["top_decile_lift"],
        }
        # risk, reasons and the watch list from one feature query and one reasons pass
        found = model.assess(self.wh, as_of=self.day, top=3)
        risk, why = found.risk, found.reasons
        reasons = pd.DataFrame(
            {
                "churn_reasons_zh": join_texts(why, why["reason_zh"], "；"),
                "churn_reasons_en": join_texts(why, why["reason_en"], "; "),
            }
        ).rename_axis("customer_id")
        watch = found.early_warning.set_index("customer_id")
        flags = watch[["no_recent_order", "falling_orders", "recent_complaint"]].astype(object)
        flags = flags.add_prefix("warning_").assign(early_warning=True)
        out = risk.merge(reasons, on="customer_id", how="left")
        out = out.merge(flags, left_on="customer_id", right_index=True, how="left")
        out["early_warning"] = (
            out["early_warning"].astype(object).where(out["early_warning"].notna(), False)
        )
        return out

    def _personas(self, scores: pd.DataFrame) -> pd.DataFrame:
        buyers = scores[scores["rfm_segment_cn"].notna()].set_index("customer_id")
        groups = {
            "member_tier": "member_tier",
            "rfm_segment_cn": buyers["rfm_segment_cn"].astype(str),
            "cluster": buyers["cluster"].astype("Int64").astype(str),
        }
        # one pass over the orders and lines for all three groupings
        found = personas(self.wh, groups, as_of=self.day)
        rows = [
            persona_row(dimension, self.day, p)
            for dimension, by_group in found.items()
            for p in by_group.values()
        ]
        return pd.DataFrame(rows)

    def run_columns(self) -> dict[str, Any]:
        """The ``model_runs`` columns of this build: seconds per step and headline numbers."""
        out = {f"seconds_{k}": v for k, v in self.seconds.items() if k != "write"}
        names = schema_table("model_runs").column_names
        out |= {k: v for k, v in self.headline.items() if k in names}
        if self.skipped:
            out["error"] = "; ".join(f"{k} skipped: {why}" for k, why in self.skipped.items())
        return out
