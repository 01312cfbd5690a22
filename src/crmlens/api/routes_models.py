"""Customer-model endpoints: segments, RFM grid, clusters, personas, CLV, churn, customers — each a
:mod:`crmlens.models.views` function over the tables ``crmlens build`` wrote, through the cache."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from crmlens.api import schemas as s
from crmlens.api.context import Context, scope_out
from crmlens.api.convert import plain, rows
from crmlens.api.params import Scoped, invalid
from crmlens.models import views
from crmlens.models.model_reads import CUSTOMER_DIMENSIONS

Scheme = StrEnum("Scheme", {k: k for k in views.SCHEMES})  # type: ignore[misc]
PersonaKind = StrEnum("PersonaKind", {k: k for k in views.PERSONA_KINDS})  # type: ignore[misc]
ClvGrouping = StrEnum(  # type: ignore[misc]
    "ClvGrouping", {k: k for k in (*CUSTOMER_DIMENSIONS, *views.MODEL_GROUPINGS)}
)


def model_routes(ctx: Context) -> APIRouter:
    """The customer-model routes over ``ctx``."""
    r = APIRouter(tags=["Customer models"])

    @r.get("/segments", response_model=s.Segments, summary="Segments of a scheme (A1, A4)")
    def segments(params: Scoped, scheme: Scheme = Scheme.cn8) -> dict[str, Any]:  # type: ignore[attr-defined]
        """Customers, revenue, mean CLV and churn risk per segment among the customers in scope
        (filters on customer attributes), with names and suggested actions."""
        scope = ctx.scope(params)
        frame = ctx.cached(
            ("segment_counts", scope, scheme.value),
            lambda: views.segment_counts(ctx.wh, scope, scheme.value),
        )
        return {"scope": scope_out(scope), "scheme": scheme.value, "rows": rows(frame)}

    @r.get("/segments/rfm-grid", response_model=s.RfmGrid, summary="R × F score grid (A1)")
    def rfm_grid(params: Scoped) -> dict[str, Any]:
        """Buyers per R score × F score cell with their mean monetary value."""
        scope = ctx.scope(params)
        frame = ctx.cached(("rfm_grid", scope), lambda: views.rfm_grid(ctx.wh, scope))
        return {"scope": scope_out(scope), "cells": rows(frame)}

    @r.get("/clusters", response_model=s.Clusters, summary="Customer clusters (A2)")
    def clusters(points: bool = False) -> dict[str, Any]:
        """The clusters' profiles; with ``points=true`` also the scatter sample (≤ 5,000)."""
        out: dict[str, Any] = {
            "clusters": ctx.cached(("clusters",), lambda: rows(views.clusters(ctx.wh)))
        }
        if points:
            out["points"] = ctx.cached(
                ("cluster_points",), lambda: rows(views.cluster_points(ctx.wh))
            )
        return out

    @r.get("/personas", response_model=s.Personas, summary="Personas (A3, A10)")
    def personas(kind: PersonaKind | None = None) -> dict[str, Any]:  # type: ignore[valid-type]
        """Per member tier, RFM group or cluster: who they are and how they buy."""
        value = None if kind is None else kind.value
        return {
            "rows": ctx.cached(("personas", value), lambda: rows(views.personas(ctx.wh, value)))
        }

    @r.get("/clv", response_model=s.Clv, summary="Customer lifetime value (A5)")
    def clv(
        params: Scoped,
        by: ClvGrouping | None = None,  # type: ignore[valid-type]
        bins: Annotated[int, Query(ge=1, le=200)] = 30,
    ) -> dict[str, Any]:
        """The fitted models, the distribution of 12-month CLV among the customers in scope and,
        with ``by``, mean / median / total CLV per customer dimension or model group."""
        scope = ctx.scope(params)
        grouping = None if by is None else by.value

        def compute() -> dict[str, Any]:
            fitted = views.clv_params(ctx.wh)
            groups = []
            if grouping is not None:
                frame = views.clv_by(ctx.wh, scope, grouping)
                groups = rows(frame.rename(columns={grouping: "group"}))
            return {
                "scope": scope_out(scope),
                "as_of": fitted["as_of"],
                "models": plain(fitted["models"]),
                "distribution": rows(views.clv_distribution(ctx.wh, scope, bins)),
                "by": grouping,
                "groups": groups,
            }

        return ctx.cached(("clv", scope, grouping, bins), compute)

    @r.get("/churn/risk", response_model=s.RiskList, summary="Churn-risk list (A6)")
    def churn_risk(
        params: Scoped,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        min_risk: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
        early_warning_only: bool = False,
    ) -> dict[str, Any]:
        """Customers by churn risk, highest first, with reasons and early-warning flags;
        phones, e-mails and names masked."""
        scope = ctx.scope(params)
        opts = {"min_risk": min_risk, "early_warning_only": early_warning_only}

        def compute() -> dict[str, Any]:
            page = views.churn_risk_list(ctx.wh, scope, limit=limit, offset=offset, **opts)
            return {
                "scope": scope_out(scope),
                "total": views.churn_risk_count(ctx.wh, scope, **opts),
                "limit": limit,
                "offset": offset,
                "rows": rows(page),
            }

        return ctx.cached(("churn_risk", scope, limit, offset, *opts.values()), compute)

    @r.get("/churn/drivers", response_model=s.Drivers, summary="Churn drivers (A6)")
    def churn_drivers(
        params: Scoped,
        min_risk: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    ) -> dict[str, Any]:
        """How often each reason is given among the at-risk customers in scope (the
        early-warning list, or ``churn_risk >= min_risk``), and what churned customers bought."""

        scope = ctx.scope(params)

        def compute() -> dict[str, Any]:
            who = "early_warning" if min_risk is None else f"churn_risk >= {min_risk}"
            return {
                "scope": scope_out(scope),
                "at_risk": who,
                "rows": rows(views.churn_drivers(ctx.wh, scope, min_risk=min_risk)),
                "churned_categories": rows(views.churned_purchases(ctx.wh)),
                "sku_counts": rows(views.churned_sku_counts(ctx.wh)),
            }

        return ctx.cached(("churn_drivers", scope, min_risk), compute)

    @r.get("/customers", response_model=s.CustomerSearch, summary="Find customers")
    def search(
        params: Scoped,
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=64,
                description="ID prefix, phone (full, or last 4 digits) or part of the name.",
            ),
        ],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """Customers in scope matching ``q``; contact data masked."""
        if not q.strip():
            invalid("q", "search text must not be blank", q)
        scope = ctx.scope(params)
        frame = ctx.cached(
            ("search", q.strip(), limit, scope),
            lambda: views.search_customers(ctx.wh, q, limit=limit, scope=scope),
        )
        return {"query": q.strip(), "rows": rows(frame)}

    @r.get(
        "/customers/{customer_id}",
        response_model=s.Customer360,
        summary="A customer's 360 record",
        responses={404: {"model": s.ErrorOut}},
    )
    def customer(
        params: Scoped,
        customer_id: Annotated[str, Path(pattern=r"^[\w\-.]{1,64}$")],
    ) -> dict[str, Any]:
        """Profile, scores, orders, tickets, surveys, app events and campaign touches; 404 when
        unknown or outside the scope's filters and row limits."""
        scope = ctx.scope(params)
        record = ctx.cached(
            ("customer_360", customer_id, scope),
            lambda: views.customer_360(ctx.wh, customer_id, scope),
        )
        if record is None:
            raise HTTPException(404, f"no customer {customer_id!r} (or not visible in this scope)")
        return plain(record)

    return r


__all__ = ["model_routes"]
