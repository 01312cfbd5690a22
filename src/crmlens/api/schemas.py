"""The API's response models (pydantic): what each endpoint returns, as the OpenAPI spec shows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

Number = float | None
#: A timestamp as the warehouse stores it: the company's local time, without an offset (so not
#: an RFC 3339 ``date-time``), e.g. ``2021-03-05T14:30:00``.
LocalDateTime = Annotated[
    datetime,
    WithJsonSchema(
        {
            "type": "string",
            "description": "Local time, ISO 8601 without offset.",
            "examples": ["2021-03-05T14:30:00"],
        }
    ),
]


class ErrorOut(BaseModel):
    """Every error: the HTTP status, a short code, a message saying what was wrong."""

    status: int = Field(examples=[422])
    error: str = Field(examples=["invalid_parameter"])
    message: str = Field(examples=["query.grain: Input should be 'day', 'week', …"])
    details: list[dict[str, Any]] = []


class ScopeOut(BaseModel):
    """The scope a result is for (row limits set by the server are not shown)."""

    start: date
    end: date
    grain: str
    filters: dict[str, list[str]]
    description: str


class KpiInfo(BaseModel):
    name: str
    label_zh: str
    label_en: str
    description: str
    unit: str
    direction: str = Field(description="up: higher is better; down: lower is better.")
    group: str
    change: str = Field(description="relative (+15 %) or absolute (percentage / score points).")
    dimensions: list[str]
    default_dims: list[str]
    has_target: bool
    days: int | None = None
    family: str | None = None


class KpiList(BaseModel):
    kpis: list[KpiInfo]


class KpiPoint(BaseModel):
    period: str
    start: date
    end: date
    dimensions: dict[str, str] = {}
    value: Number
    previous: Number = None
    change: Number = Field(None, description="环比: vs the previous period.")
    last_year: Number = None
    change_yoy: Number = Field(None, description="同比: vs the same period last year.")
    target: Number = None
    attainment: Number = None
    met: bool | None = None


class KpiSeries(BaseModel):
    metric: KpiInfo
    scope: ScopeOut
    by: list[str]
    points: list[KpiPoint]


class OverviewRow(BaseModel):
    metric: str
    label_zh: str
    label_en: str
    unit: str
    period: str
    value: Number
    previous_period: str
    previous: Number
    change: Number
    last_year_period: str
    last_year: Number
    change_yoy: Number
    change_kind: str
    target: Number
    attainment: Number
    met: bool | None
    note: str | None


class Overview(BaseModel):
    scope: ScopeOut
    rows: list[OverviewRow]


class Breakdown(BaseModel):
    scope: ScopeOut
    metrics: list[str]
    by: list[str]
    rows: list[dict[str, str | float | None]] = Field(
        description="One row per combination: the dimensions, each metric, <metric>_share."
    )


class CohortCell(BaseModel):
    cohort: str
    period_index: int
    cohort_size: int
    value: float
    rate: Number


class Cohorts(BaseModel):
    scope: ScopeOut
    cohort_by: str
    mode: str
    measure: str
    first_time_only: bool
    periods: int
    cells: list[CohortCell]


class LifecycleRow(BaseModel):
    period: str
    status: str
    customers: int


class Lifecycle(BaseModel):
    scope: ScopeOut
    rows: list[LifecycleRow]


class MemberTrendRow(BaseModel):
    period: str
    start: date
    end: date
    new_members: int
    loyal_members: int
    churned_members: int
    members: int


class MemberTrend(BaseModel):
    scope: ScopeOut
    rows: list[MemberTrendRow]


class SegmentRow(BaseModel):
    segment: str
    position: int | None
    name_zh: str | None
    name_en: str | None
    customers: int
    share: Number
    revenue: Number
    revenue_share: Number
    mean_clv_12m: Number
    mean_churn_risk: Number
    action_zh: str | None
    action_en: str | None


class Segments(BaseModel):
    scope: ScopeOut
    scheme: str
    rows: list[SegmentRow]


class RfmCell(BaseModel):
    r_score: int
    f_score: int
    customers: int
    share: Number
    mean_monetary: Number
    revenue: Number


class RfmGrid(BaseModel):
    scope: ScopeOut
    cells: list[RfmCell]


class ClusterRow(BaseModel):
    cluster: int
    label_zh: str | None
    label_en: str | None
    as_of: date | None
    customers: int | None
    share: Number
    revenue_share: Number
    mean_recency_days: Number
    mean_frequency: Number
    mean_monetary: Number
    mean_clv_12m: Number
    mean_churn_risk: Number


class ClusterPoint(BaseModel):
    customer_id: str
    cluster: int | None
    x: Number
    y: Number


class Clusters(BaseModel):
    clusters: list[ClusterRow]
    points: list[ClusterPoint] | None = None


class PersonaRow(BaseModel):
    dimension: str
    group_name: str
    as_of: date | None
    customers: int | None
    buyers: int | None
    member_share: Number
    revenue: Number
    revenue_share: Number
    gender_mix: dict[str, float]
    age_mix: dict[str, float]
    age_window: str | None
    age_window_share: Number
    top_regions: dict[str, float]
    top_cities: dict[str, float]
    top_departments: dict[str, float]
    top_categories: dict[str, float]
    channel_mix: dict[str, float]
    payment_mix: dict[str, float]
    hour_mix: dict[str, float]
    description_zh: str | None
    description_en: str | None


class Personas(BaseModel):
    rows: list[PersonaRow]


class ClvBin(BaseModel):
    bin: int
    lower: float
    upper: float
    customers: int
    clv_total: float


class ClvGroup(BaseModel):
    group: str
    customers: int
    mean_clv_12m: Number
    median_clv_12m: Number
    total_clv_12m: Number
    share: Number


class ClvParam(BaseModel):
    value: Number
    standard_error: Number


class ClvModel(BaseModel):
    parameters: dict[str, ClvParam]
    log_likelihood: Number
    customers: int | None


class Clv(BaseModel):
    scope: ScopeOut
    as_of: date | None
    models: dict[str, ClvModel]
    distribution: list[ClvBin]
    by: str | None
    groups: list[ClvGroup]


class RiskRow(BaseModel):
    customer_id: str
    name: str | None = Field(description="Masked: the first character and *.")
    phone: str | None = Field(description="Masked, e.g. 138****1234.")
    email: str | None = Field(description="Masked, e.g. z***@qq.com.")
    customer_type: str | None
    member_tier: str | None
    region: str | None
    city: str | None
    rfm_segment_cn: str | None
    rfm_segment_en: str | None
    lifecycle_stage: str | None
    recency_days: int | None
    frequency: int | None
    monetary: Number
    clv_12m: Number
    churn_risk: Number
    churn_reasons_zh: str | None
    churn_reasons_en: str | None
    early_warning: bool | None
    warning_no_recent_order: bool | None
    warning_falling_orders: bool | None
    warning_recent_complaint: bool | None


class RiskList(BaseModel):
    scope: ScopeOut
    total: int
    limit: int
    offset: int
    rows: list[RiskRow]


class Driver(BaseModel):
    reason_zh: str
    reason_en: str
    customers: int
    share: float = Field(description="Of the at-risk customers; a customer has up to 3 reasons.")


class ChurnedCategory(BaseModel):
    category: str
    as_of: date | None
    churned_lines: int | None
    active_lines: int | None
    churned_share: Number
    active_share: Number
    lift: Number = Field(description="null when only churned customers bought it (infinite).")
    rank_by_lines: int | None
    rank_by_lift: int | None
    first_month: str | None
    last_month: str | None
    first_skus: int | None
    last_skus: int | None
    sku_change: Number
    sku_slope: Number
    sku_trend: str | None


class SkuCount(BaseModel):
    category: str
    month: str
    skus: int | None


class Drivers(BaseModel):
    scope: ScopeOut
    at_risk: str = Field(description="Who counts as at risk.")
    rows: list[Driver]
    churned_categories: list[ChurnedCategory] = Field(
        description="What churned customers bought (model_churned_purchases)."
    )
    sku_counts: list[SkuCount] = Field(
        description="SKUs on sale per month end of the churned top categories."
    )


class CustomerHit(BaseModel):
    customer_id: str
    name: str | None
    phone: str | None
    email: str | None
    customer_type: str | None
    member_tier: str | None
    region: str | None
    city: str | None
    signup_date: LocalDateTime | None
    rfm_segment_cn: str | None
    lifecycle_stage: str | None
    clv_12m: Number
    churn_risk: Number


class CustomerSearch(BaseModel):
    query: str
    rows: list[CustomerHit]


class Customer360(BaseModel):
    profile: dict[str, Any] = Field(description="Master record; name, phone, e-mail masked.")
    scores: dict[str, Any] | None
    orders: dict[str, Any] = Field(description="Totals and the latest 50 orders (lines counted).")
    tickets: list[dict[str, Any]]
    surveys: list[dict[str, Any]]
    events: dict[str, Any]
    touches: dict[str, Any]


class Health(BaseModel):
    status: str
    engine: str
    loads: int | None
    last_load: LocalDateTime | None
    latest_build: dict[str, Any] | None
