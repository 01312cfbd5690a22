"""The demo company's export files (docs/demo-exports.md) as source specs, in load order.

Masters come before the facts that refer to them: order lines are checked against the products and
orders loaded just before them. The member card number becomes ``customer_id`` everywhere.
"""

from __future__ import annotations

from crmlens.ingest.spec import (
    ColumnSpec,
    Derive,
    Infer,
    Reference,
    RowRule,
    SourceSpec,
    Unpivot,
)


def _same(*names: str) -> tuple[ColumnSpec, ...]:
    """Columns whose header is already the canonical name."""
    return tuple(ColumnSpec(n, n) for n in names)


_EVENT_COLUMNS = (
    *_same("event_id", "session_id", "event_name", "page", "event_time", "device"),
    *_same("duration_seconds", "success"),
)
_SURVEY = "survey/store_survey.xlsx"
_SURVEY_SHEET = "问卷数据"  # title in row 1, blank row 2, headers in row 3
_SURVEY_DIMENSIONS = ("购物环境", "商品价格", "服务态度", "商品丰富度")

DEMO_SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        path="crm/stores.csv",
        table="stores",
        columns=_same("store_id", "store_name", "region", "province", "city", "store_type")
        + _same("opened_date", "area_sqm"),
    ),
    SourceSpec(
        path="shop/products.csv",
        table="products",
        columns=_same("sku", "product_name", "category", "department", "brand", "unit_price")
        + _same("unit_cost", "listed_date", "delisted_date"),
    ),
    SourceSpec(
        path="marketing/channels.csv",
        table="channels",
        columns=_same("channel_id", "channel_name", "channel_type"),
    ),
    SourceSpec(
        path="crm/members.csv",
        table="customers",
        encoding="gbk",
        columns=(
            ColumnSpec("customer_id", "会员卡号"),
            ColumnSpec("anon_id", "会员卡号", kind="anon_id"),
            ColumnSpec("name", "姓名"),
            ColumnSpec("gender", "性别"),
            ColumnSpec("birth_date", "出生日期"),
            ColumnSpec("phone", "手机号", kind="phone"),
            ColumnSpec("email", "电子邮箱", kind="email"),
            ColumnSpec("member_tier", "会员等级"),
            ColumnSpec("customer_type", "客户类型"),
            ColumnSpec("company_name", "企业名称"),
            ColumnSpec("industry", "行业"),
            ColumnSpec("company_size", "企业规模"),
            ColumnSpec("region", "大区"),
            ColumnSpec("province", "省份"),
            ColumnSpec("city", "城市"),
            ColumnSpec("home_store_id", "注册门店"),
            ColumnSpec("signup_channel_id", "注册渠道"),
            ColumnSpec("signup_method", "注册方式"),
            ColumnSpec("signup_date", "注册时间"),
            ColumnSpec("referrer_id", "推荐人卡号"),
            ColumnSpec("consent_marketing", "营销授权"),
            ColumnSpec("updated_at", "更新时间"),
        ),
        updated_column="updated_at",
    ),
    SourceSpec(
        path="shop/orders.csv",
        table="orders",
        columns=(
            *_same("order_id", "store_id", "order_channel", "order_time", "payment_method"),
            *_same("gross_amount", "discount_amount", "currency", "status", "original_order_id"),
            ColumnSpec("customer_id", "member_card_no"),
            ColumnSpec("amount", "paid_amount"),
        ),
        # a negative amount is a refund only when it names the order it refunds
        derive=(Derive("is_refund", "amount < 0 AND original_order_id IS NOT NULL"),),
        rules=(
            RowRule(
                "negative_amount_not_refund", "amount", "amount < 0 AND original_order_id IS NULL"
            ),
        ),
    ),
    SourceSpec(
        path="shop/order_lines.csv",
        table="order_lines",
        columns=(
            *_same("order_id", "line_no", "sku", "quantity", "unit_price"),
            ColumnSpec("amount", "line_amount"),
        ),
        infer=(Infer("quantity", "round(amount / nullif(unit_price, 0), 3)", "missing_quantity"),),
        references=(
            Reference("order_id", "orders", "order_id", "orphan_line"),
            Reference("sku", "products", "sku", "unknown_sku"),
        ),
    ),
    SourceSpec(
        path="marketing/channel_spend.csv",
        table="channel_spend",
        columns=(
            ColumnSpec("spend_date", "date"),
            *_same("channel_id", "spend", "impressions", "clicks"),
        ),
    ),
    SourceSpec(
        path="marketing/campaigns.csv",
        table="campaigns",
        columns=_same("campaign_id", "campaign_name", "channel_id", "start_date", "end_date")
        + _same("objective", "budget"),
    ),
    SourceSpec(
        path="marketing/campaign_touches.csv",
        table="campaign_touches",
        columns=(
            *_same("touch_id", "campaign_id", "variant", "sent_at", "opened_at", "clicked_at"),
            *_same("converted_at", "bounced", "order_id"),
            ColumnSpec("customer_id", "member_card_no"),
        ),
    ),
    SourceSpec(
        path="service/tickets.csv",
        table="service_tickets",
        encoding="utf-8-sig",
        columns=(
            ColumnSpec("ticket_id", "工单号"),
            ColumnSpec("customer_id", "会员卡号"),
            ColumnSpec("contact_phone", "联系电话", kind="phone"),
            ColumnSpec("ticket_type", "工单类型"),
            ColumnSpec("issue_category", "问题分类"),
            ColumnSpec("sku", "商品编码"),
            ColumnSpec("store_id", "门店"),
            ColumnSpec("service_channel", "受理渠道"),
            ColumnSpec("opened_at", "创建时间"),
            ColumnSpec("first_response_at", "首次响应时间"),
            ColumnSpec("closed_at", "关闭时间"),
            ColumnSpec("status", "状态"),
            ColumnSpec("satisfaction", "满意度"),
            ColumnSpec("text", "内容"),
        ),
        rules=(
            RowRule("closed_before_opened", "closed_at", "closed_at < opened_at", "cleared"),
            RowRule("out_of_range", "satisfaction", "satisfaction NOT BETWEEN 1 AND 5", "cleared"),
        ),
    ),
    SourceSpec(
        path=_SURVEY,
        table="survey_responses",
        format="excel",
        sheet=_SURVEY_SHEET,
        header_row=3,
        columns=(
            ColumnSpec("response_id", "问卷编号"),
            ColumnSpec("survey_id", value="store_survey"),
            ColumnSpec("customer_id", "会员卡号"),
            ColumnSpec("store_id", "门店"),
            ColumnSpec("responded_at", "提交时间"),
            ColumnSpec("nps_score", "推荐意愿(0-10)"),
            ColumnSpec("csat_score", "总体满意度(1-5)"),
            ColumnSpec("comment", "意见建议"),
        ),
        rules=(
            RowRule("out_of_range", "nps_score", "nps_score NOT BETWEEN 0 AND 10", "cleared"),
            RowRule("out_of_range", "csat_score", "csat_score NOT BETWEEN 1 AND 5", "cleared"),
        ),
    ),
    SourceSpec(
        path=_SURVEY,
        table="survey_scores",
        format="excel",
        sheet=_SURVEY_SHEET,
        header_row=3,
        unpivot=Unpivot(_SURVEY_DIMENSIONS, name="维度", value="得分"),
        columns=(
            ColumnSpec("response_id", "问卷编号"),
            ColumnSpec("dimension", "维度"),
            ColumnSpec("score", "得分"),
        ),
        rules=(RowRule("out_of_range", "score", "score NOT BETWEEN 1 AND 5", "cleared"),),
    ),
    SourceSpec(
        path="app/app_events.csv",
        table="app_events",
        columns=(
            *_EVENT_COLUMNS,
            ColumnSpec("app", value="shop_app"),
            # shoppers' behaviour is analysed under the anonymised ID only (D4, D7)
            ColumnSpec("user_id", "user_ref", kind="anon_id"),
        ),
    ),
    SourceSpec(
        path="sales/crm_usage_log.csv",
        table="app_events",
        columns=(
            *_EVENT_COLUMNS,
            ColumnSpec("app", value="crm"),
            ColumnSpec("user_id", "user_ref"),
        ),
    ),
    SourceSpec(
        path="sales/sales_reps.csv",
        table="sales_reps",
        columns=_same("rep_id", "rep_name", "team", "region", "hired_date"),
    ),
    SourceSpec(
        path="sales/leads.csv",
        table="leads",
        columns=(
            *_same("lead_id", "company_name", "source_channel_id", "rep_id", "created_at"),
            *_same("stage", "expected_value", "closed_at"),
            ColumnSpec("contact_phone", "contact_phone", kind="phone"),
            ColumnSpec("customer_id", "member_card_no"),
        ),
    ),
    SourceSpec(
        path="sales/lead_stage_history.csv",
        table="lead_stage_history",
        columns=_same("lead_id", "stage", "entered_at"),
    ),
    SourceSpec(
        path="sales/sales_activities.csv",
        table="sales_activities",
        columns=(
            *_same("activity_id", "rep_id", "lead_id", "activity_type", "activity_time"),
            *_same("logged_at", "duration_minutes", "tags", "notes"),
            ColumnSpec("customer_id", "member_card_no"),
        ),
    ),
    SourceSpec(
        path="planning/targets.csv",
        table="targets",
        columns=(
            *_same("metric", "period", "dimension", "dimension_value", "target_value"),
            ColumnSpec("period_start", "period", kind="period_start", required=True),
            ColumnSpec("period_end", "period", kind="period_end", required=True),
        ),
    ),
    SourceSpec(
        path="planning/experiments.csv",
        table="experiments",
        columns=_same("experiment_id", "experiment_name", "kind", "start_date", "end_date")
        + _same("campaign_id", "description"),
    ),
    SourceSpec(
        path="planning/experiment_units.csv",
        table="experiment_units",
        columns=_same("experiment_id", "unit_type", "unit_id", "variant"),
    ),
)
