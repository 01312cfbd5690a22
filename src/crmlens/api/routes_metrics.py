"""KPI endpoints: the catalogue, a KPI's series, the overview, breakdowns, cohorts, lifecycle and
the member trend — each the metrics layer's function for the request's scope, through the cache."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from crmlens.api import schemas as s
from crmlens.api.context import Context, scope_out
from crmlens.api.convert import rows
from crmlens.api.params import (
    DimensionName,
    GrainName,
    Scoped,
    check_dims,
    check_metrics,
    invalid,
)
from crmlens.errors import ConfigError
from crmlens.metrics import (
    REGISTRY,
    SEED_OVERVIEW,
    Metric,
    breakdown,
    cohort_table,
    lifecycle,
    member_trend,
    metric,
    overview,
    timeseries,
)


class CohortBy(StrEnum):
    first_order = "first_order"
    signup = "signup"


class CohortMode(StrEnum):
    on = "on"
    on_or_after = "on_or_after"


class CohortMeasure(StrEnum):
    customers = "customers"
    revenue = "revenue"


def kpi_info(m: Metric) -> dict[str, Any]:
    """A KPI's catalogue entry (:class:`crmlens.api.schemas.KpiInfo`)."""
    return {
        "name": m.name,
        "label_zh": m.label_zh,
        "label_en": m.label_en,
        "description": m.description,
        "unit": m.unit,
        "direction": m.direction,
        "group": m.group,
        "change": m.change,
        "dimensions": list(m.dimensions),
        "default_dims": list(m.default_dims),
        "has_target": bool(m.target_names),
        "days": m.days,
        "family": m.family,
    }


def _points(frame: Any, by: list[str]) -> list[dict[str, Any]]:
    out = []
    for row in rows(frame):
        row["dimensions"] = {d: str(row.pop(d)) for d in by}
        out.append(row)
    return out


def metric_routes(ctx: Context) -> APIRouter:
    """The KPI routes over ``ctx``."""
    r = APIRouter(tags=["KPIs"])

    @r.get("/kpis", response_model=s.KpiList, summary="KPI catalogue")
    def kpis() -> dict[str, Any]:
        """Every KPI: labels (zh/en), unit, which direction is good, dimensions, targets."""
        return {"kpis": [kpi_info(m) for m in REGISTRY.values()]}

    @r.get("/kpis/{name}", response_model=s.KpiSeries, summary="One KPI per period")
    def kpi_series(
        params: Scoped,
        name: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
        by: Annotated[list[DimensionName], Query(description="Up to 3 dimensions.")] = [],  # noqa: B006
    ) -> dict[str, Any]:
        """The KPI per period of the grain, each with 环比 (``change``), 同比 (``change_yoy``),
        target, attainment and met. 404 for an unknown KPI."""
        try:
            m = metric(name)
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from exc
        dims = check_dims([d.value for d in by])
        scope = ctx.scope(params)
        frame = ctx.cached(
            ("kpi", m.name, scope, tuple(dims)),
            lambda: timeseries(ctx.wh, m, scope, dims, compare=True, targets=True),
        )
        return {
            "metric": kpi_info(m),
            "scope": scope_out(scope),
            "by": dims,
            "points": _points(frame.drop(columns="metric"), dims),
        }

    @r.get("/overview", response_model=s.Overview, summary="KPI overview (M1)")
    def kpi_overview(
        params: Scoped,
        metric_: Annotated[
            list[str],
            Query(alias="metric", description="KPIs (repeatable); default the seed-002 four."),
        ] = [],  # noqa: B006
    ) -> dict[str, Any]:
        """Per KPI over the whole range: value, 环比, 同比, target, attainment, met."""
        names = check_metrics(metric_ or list(SEED_OVERVIEW))
        if len(names) > 30:
            invalid("metric", f"at most 30 KPIs at once, got {len(names)}", len(names))
        scope = ctx.scope(params)
        frame = ctx.cached(
            ("overview", tuple(names), scope), lambda: overview(ctx.wh, names, scope)
        )
        return {"scope": scope_out(scope), "rows": rows(frame)}

    @r.get("/breakdown", response_model=s.Breakdown, summary="KPIs by up to 3 dimensions (M3)")
    def kpi_breakdown(
        params: Scoped,
        metric_: Annotated[list[str], Query(alias="metric", min_length=1, max_length=8)],
        by: Annotated[list[DimensionName], Query(min_length=1, max_length=3)],
        top: Annotated[int | None, Query(ge=1, le=100)] = None,
        sort_by: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
    ) -> dict[str, Any]:
        """KPIs over the whole range per combination of the dimensions, with shares of the
        total; ``top`` keeps the first dimension's top N by ``sort_by`` and folds the rest into
        其他."""
        names = check_metrics(metric_)
        dims = check_dims([d.value for d in by])
        if sort_by is not None and sort_by not in names:
            invalid("sort_by", f"sort_by must be one of the metrics {names}", sort_by)
        scope = ctx.scope(params)
        frame = ctx.cached(
            ("breakdown", tuple(names), tuple(dims), top, sort_by, scope),
            lambda: breakdown(ctx.wh, names, scope, dims, top=top, sort_by=sort_by),
        )
        return {"scope": scope_out(scope), "metrics": names, "by": dims, "rows": rows(frame)}

    @r.get("/cohorts", response_model=s.Cohorts, summary="Cohort retention (A4)")
    def cohorts(
        params: Scoped,
        cohort_by: CohortBy = CohortBy.first_order,
        mode: CohortMode = CohortMode.on,
        measure: CohortMeasure = CohortMeasure.customers,
        first_time_only: bool = True,
        periods: Annotated[int, Query(ge=1, le=36)] = 12,
    ) -> dict[str, Any]:
        """One cell per cohort (period of the grain) and period index 0..``periods``."""
        scope = ctx.scope(params)
        args = (cohort_by.value, mode.value, measure.value, first_time_only, periods)
        frame = ctx.cached(
            ("cohorts", scope, *args),
            lambda: cohort_table(
                ctx.wh,
                scope,
                cohort_by=args[0],  # type: ignore[arg-type]
                mode=args[1],  # type: ignore[arg-type]
                measure=args[2],  # type: ignore[arg-type]
                first_time_only=first_time_only,
                periods=periods,
            ),
        )
        return {
            "scope": scope_out(scope),
            "cohort_by": args[0],
            "mode": args[1],
            "measure": args[2],
            "first_time_only": first_time_only,
            "periods": periods,
            "cells": rows(frame),
        }

    @r.get("/lifecycle", response_model=s.Lifecycle, summary="Lifecycle status per period (A4)")
    def lifecycle_status(params: Scoped) -> dict[str, Any]:
        """New, returning, resurrecting and dormant (negative) customers per period."""
        scope = ctx.scope(params)
        frame = ctx.cached(("lifecycle", scope), lambda: lifecycle(ctx.wh, scope))
        return {"scope": scope_out(scope), "rows": rows(frame)}

    @r.get("/member-trend", response_model=s.MemberTrend, summary="Member overview (M5)")
    def members(params: Scoped) -> dict[str, Any]:
        """New, loyal, churned and all members per period."""
        scope = ctx.scope(params)
        frame = ctx.cached(("member_trend", scope), lambda: member_trend(ctx.wh, scope))
        return {"scope": scope_out(scope), "rows": rows(frame)}

    return r


__all__ = ["GrainName", "kpi_info", "metric_routes"]
