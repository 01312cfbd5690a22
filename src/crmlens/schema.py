"""The canonical CRM schema: every table and column crmlens knows, in one place.

Everything else is derived from these declarations: the warehouse creates its tables from them, the
loaders map source headers onto them, `docs/schema.md` is rendered from them and the UI takes its
column labels from them. Change a table here and bump :data:`SCHEMA_VERSION` with a migration in
``crmlens.warehouse.migrations``.

>>> table("customers").column("customer_id").label_zh
'客户编号'
>>> "orders" in TABLES
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import ibis.expr.datatypes as dt

from crmlens.errors import ConfigError

LogicalType = Literal["string", "int", "float", "money", "bool", "date", "timestamp"]

#: Bumped whenever a table or column is added, removed or retyped; see warehouse/migrations.py.
SCHEMA_VERSION = 1

# Money is stored as float64 in one currency (CNY by default): sums are exact to the cent for any
# realistic total, and every engine and every model library reads it without Decimal conversions.
_IBIS_TYPES: dict[str, dt.DataType] = {
    "string": dt.string,
    "int": dt.int64,
    "float": dt.float64,
    "money": dt.float64,
    "bool": dt.boolean,
    "date": dt.date,
    "timestamp": dt.timestamp,
}


@dataclass(frozen=True)
class Column:
    """One canonical column: its type, labels in Chinese and English, and what it means."""

    name: str
    type: LogicalType
    label_zh: str
    label_en: str
    description: str
    nullable: bool = True
    #: Personal data (names, phone numbers, e-mails, ID numbers): never shown unmasked in reports (D7).
    pii: bool = False

    @property
    def ibis_type(self) -> dt.DataType:
        """The Ibis data type this column is stored as."""
        return _IBIS_TYPES[self.type].copy(nullable=self.nullable)


@dataclass(frozen=True)
class Table:
    """One canonical table."""

    name: str
    label_zh: str
    label_en: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    #: "data" tables hold the company's data; "system" tables are crmlens' own bookkeeping.
    kind: Literal["data", "system"] = "data"
    #: The column that places a row in time (for freshness, date ranges and period filters).
    time_column: str | None = None

    def column(self, name: str) -> Column:
        """The column called ``name``; :class:`ConfigError` naming the table if there is none."""
        for col in self.columns:
            if col.name == name:
                return col
        raise ConfigError(
            f"table {self.name!r} has no column {name!r}; expected one of: "
            + ", ".join(self.column_names)
        )

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(col.name for col in self.columns)

    def ibis_schema(self) -> dict[str, dt.DataType]:
        """Column name → Ibis type, in declaration order (what ``create_table`` takes)."""
        return {col.name: col.ibis_type for col in self.columns}


def _col(
    name: str,
    type_: LogicalType,
    label_zh: str,
    label_en: str,
    description: str,
    *,
    required: bool = False,
    pii: bool = False,
) -> Column:
    return Column(name, type_, label_zh, label_en, description, nullable=not required, pii=pii)


def _table(
    name: str,
    label_zh: str,
    label_en: str,
    description: str,
    key: tuple[str, ...],
    *columns: Column,
    kind: Literal["data", "system"] = "data",
    time: str | None = None,
) -> Table:
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ConfigError(f"table {name!r} declares a column twice: {names}")
    missing = [k for k in (*key, *([time] if time else [])) if k not in names]
    if missing:
        raise ConfigError(f"table {name!r}: key or time columns {missing} are not declared")
    return Table(name, label_zh, label_en, description, tuple(columns), key, kind, time)


_LOADED_AT = _col(
    "loaded_at", "timestamp", "入库时间", "Loaded at", "When this row was last loaded."
)
_LOAD_ID = _col("load_id", "string", "批次号", "Load ID", "The load that last wrote this row.")
_AUDIT = (_LOAD_ID, _LOADED_AT)

# fmt: off
_DATA_TABLES = (
    _table("customers",
        "客户",
        "Customers",
        "One row per customer (member or company): the single customer view's master record.",
        ("customer_id",),
        _col("customer_id", "string", "客户编号", "Customer ID", "The one customer key across systems (the member card number in the demo).", required=True),
        _col("anon_id", "string", "匿名编号", "Anonymous ID", "Salted hash of customer_id; behaviour is analysed under this ID (D4)."),
        _col("name", "string", "姓名", "Name", "Person's or contact's name.", pii=True),
        _col("customer_type", "string", "客户类型", "Customer type", "个人 (individual) or 企业 (company)."),
        _col("company_name", "string", "企业名称", "Company name", "For 企业 customers.", pii=True),
        _col("industry", "string", "行业", "Industry", "For 企业 customers."),
        _col("company_size", "string", "企业规模", "Company size", "Employee band, e.g. 50-199."),
        _col("member_tier", "string", "会员等级", "Member tier", "白金 / 黄金 / 白银 / 普通."),
        _col("gender", "string", "性别", "Gender", "男 / 女; empty when unknown."),
        _col("birth_date", "date", "出生日期", "Birth date", "For age bands.", pii=True),
        _col("region", "string", "大区", "Region", "Sales region, e.g. 华东."),
        _col("province", "string", "省份", "Province", "Province."),
        _col("city", "string", "城市", "City", "City."),
        _col("home_store_id", "string", "注册门店", "Home store", "Store where the member signed up."),
        _col("signup_channel_id", "string", "注册渠道", "Signup channel", "Acquisition channel."),
        _col("signup_method", "string", "注册方式", "Signup method", "收银台, 自助入会机, 线上, 地推 …"),
        _col("signup_date", "timestamp", "注册时间", "Signup time", "When the customer signed up."),
        _col("referrer_id", "string", "推荐人", "Referrer", "customer_id of the referring customer."),
        _col("phone", "string", "手机号", "Mobile", "Normalised 11-digit mobile number.", pii=True),
        _col("email", "string", "电子邮箱", "E-mail", "Lower-cased e-mail address.", pii=True),
        _col("consent_marketing", "bool", "营销授权", "Marketing consent", "May be contacted for marketing (PIPL/GDPR, D7)."),
        _col("updated_at", "timestamp", "更新时间", "Updated at", "Last change in the source system."),
        *_AUDIT,
        time="signup_date",
    ),
    _table("stores",
        "门店",
        "Stores",
        "Physical stores and the online shop.",
        ("store_id",),
        _col("store_id", "string", "门店编号", "Store ID", "Store key.", required=True),
        _col("store_name", "string", "门店名称", "Store name", "Store name."),
        _col("region", "string", "大区", "Region", "Sales region."),
        _col("province", "string", "省份", "Province", "Province."),
        _col("city", "string", "城市", "City", "City."),
        _col("store_type", "string", "门店类型", "Store type", "大卖场, 标准超市, 社区店, 线上."),
        _col("opened_date", "date", "开业日期", "Opened", "Opening date."),
        _col("area_sqm", "float", "面积(平方米)", "Area (m²)", "Sales floor area."),
        *_AUDIT,
        time="opened_date",
    ),
    _table("products",
        "商品",
        "Products",
        "SKUs with their category and department.",
        ("sku",),
        _col("sku", "string", "商品编码", "SKU", "Product key.", required=True),
        _col("product_name", "string", "商品名称", "Product", "Product name."),
        _col("category", "string", "品类", "Category", "Category, e.g. 膨化食品."),
        _col("department", "string", "部门", "Department", "Department, e.g. 休闲食品."),
        _col("brand", "string", "品牌", "Brand", "Brand."),
        _col("unit_price", "money", "单价", "Unit price", "List price."),
        _col("unit_cost", "money", "单位成本", "Unit cost", "Cost, for margins."),
        _col("listed_date", "date", "上架日期", "Listed", "First day on sale."),
        _col("delisted_date", "date", "下架日期", "Delisted", "Last day on sale; empty while on sale."),
        *_AUDIT,
        time="listed_date",
    ),
    _table("orders",
        "订单",
        "Orders",
        "One row per order or refund, POS and online. Refunds have a negative amount.",
        ("order_id",),
        _col("order_id", "string", "订单号", "Order ID", "Order key.", required=True),
        _col("customer_id", "string", "客户编号", "Customer ID", "Empty for walk-in non-members."),
        _col("store_id", "string", "门店编号", "Store ID", "Where the order was placed."),
        _col("order_channel", "string", "下单渠道", "Order channel", "POS, online or app."),
        _col("order_time", "timestamp", "下单时间", "Order time", "When the order was placed.", required=True),
        _col("payment_method", "string", "支付方式", "Payment method", "储值卡, 微信支付, 支付宝, 现金, 银行卡."),
        _col("gross_amount", "money", "应付金额", "Gross amount", "Before discounts."),
        _col("discount_amount", "money", "优惠金额", "Discount", "Discounts given."),
        _col("amount", "money", "实付金额", "Amount", "Paid, net of discounts; negative for refunds.", required=True),
        _col("currency", "string", "币种", "Currency", "Currency the amount was converted from."),
        _col("status", "string", "订单状态", "Status", "completed or refunded."),
        _col("is_refund", "bool", "是否退款", "Refund", "A refund of an earlier order."),
        _col("original_order_id", "string", "原订单号", "Original order", "For refunds: the order refunded."),
        *_AUDIT,
        time="order_time",
    ),
    _table("order_lines",
        "订单明细",
        "Order lines",
        "Items of an order.",
        ("order_id", "line_no"),
        _col("order_id", "string", "订单号", "Order ID", "The order.", required=True),
        _col("line_no", "int", "行号", "Line", "Line number within the order.", required=True),
        _col("sku", "string", "商品编码", "SKU", "The product."),
        _col("quantity", "float", "数量", "Quantity", "Units; negative on refund lines."),
        _col("unit_price", "money", "单价", "Unit price", "Price per unit charged."),
        _col("amount", "money", "金额", "Amount", "Line amount."),
        *_AUDIT,
    ),
    _table("channels",
        "渠道",
        "Channels",
        "Acquisition and marketing channels.",
        ("channel_id",),
        _col("channel_id", "string", "渠道编号", "Channel ID", "Channel key.", required=True),
        _col("channel_name", "string", "渠道名称", "Channel", "Channel name."),
        _col("channel_type", "string", "渠道类型", "Channel type", "offline, paid_online, social, referral, organic."),
        *_AUDIT,
    ),
    _table("channel_spend",
        "渠道花费",
        "Channel spend",
        "Daily marketing spend per channel.",
        ("spend_date", "channel_id"),
        _col("spend_date", "date", "日期", "Date", "Day of the spend.", required=True),
        _col("channel_id", "string", "渠道编号", "Channel ID", "Channel.", required=True),
        _col("spend", "money", "花费", "Spend", "Money spent."),
        _col("impressions", "int", "曝光", "Impressions", "Ad impressions."),
        _col("clicks", "int", "点击", "Clicks", "Ad clicks."),
        *_AUDIT,
        time="spend_date",
    ),
    _table("campaigns",
        "营销活动",
        "Campaigns",
        "Marketing campaigns.",
        ("campaign_id",),
        _col("campaign_id", "string", "活动编号", "Campaign ID", "Campaign key.", required=True),
        _col("campaign_name", "string", "活动名称", "Campaign", "Campaign name."),
        _col("channel_id", "string", "渠道编号", "Channel ID", "Channel used."),
        _col("start_date", "date", "开始日期", "Start", "First day."),
        _col("end_date", "date", "结束日期", "End", "Last day."),
        _col("objective", "string", "活动目标", "Objective", "What the campaign is for."),
        _col("budget", "money", "预算", "Budget", "Planned spend."),
        *_AUDIT,
        time="start_date",
    ),
    _table("campaign_touches",
        "营销触达",
        "Campaign touches",
        "One message sent to one customer, with its open/click/convert funnel.",
        ("touch_id",),
        _col("touch_id", "string", "触达编号", "Touch ID", "Touch key.", required=True),
        _col("campaign_id", "string", "活动编号", "Campaign ID", "Campaign."),
        _col("customer_id", "string", "客户编号", "Customer ID", "Recipient."),
        _col("variant", "string", "版本", "Variant", "A/B test variant."),
        _col("sent_at", "timestamp", "发送时间", "Sent", "When sent."),
        _col("opened_at", "timestamp", "打开时间", "Opened", "When opened; empty if never."),
        _col("clicked_at", "timestamp", "点击时间", "Clicked", "When clicked; empty if never."),
        _col("converted_at", "timestamp", "转化时间", "Converted", "When converted; empty if never."),
        _col("bounced", "bool", "退信", "Bounced", "The message bounced."),
        _col("order_id", "string", "订单号", "Order ID", "The converting order, if known."),
        *_AUDIT,
        time="sent_at",
    ),
    _table("service_tickets",
        "服务工单",
        "Service tickets",
        "Inquiries, complaints, after-sales and suggestions.",
        ("ticket_id",),
        _col("ticket_id", "string", "工单号", "Ticket ID", "Ticket key.", required=True),
        _col("customer_id", "string", "客户编号", "Customer ID", "Resolved customer."),
        _col("contact_phone", "string", "联系电话", "Contact phone", "Phone given on the ticket.", pii=True),
        _col("ticket_type", "string", "工单类型", "Type", "咨询, 投诉, 售后, 建议."),
        _col("issue_category", "string", "问题分类", "Issue category", "What it is about."),
        _col("sku", "string", "商品编码", "SKU", "Product concerned, if any."),
        _col("store_id", "string", "门店编号", "Store ID", "Store concerned."),
        _col("service_channel", "string", "受理渠道", "Service channel", "电话, 在线客服, 门店, APP."),
        _col("opened_at", "timestamp", "创建时间", "Opened", "When the ticket was opened."),
        _col("first_response_at", "timestamp", "首次响应时间", "First response", "First reply."),
        _col("closed_at", "timestamp", "关闭时间", "Closed", "When resolved; empty while open."),
        _col("status", "string", "状态", "Status", "已关闭 or 处理中."),
        _col("satisfaction", "int", "满意度", "Satisfaction", "CSAT 1-5 given after closing."),
        _col("text", "string", "内容", "Text", "The customer's words."),
        *_AUDIT,
        time="opened_at",
    ),
    _table("survey_responses",
        "问卷回复",
        "Survey responses",
        "One answered questionnaire.",
        ("response_id",),
        _col("response_id", "string", "问卷编号", "Response ID", "Response key.", required=True),
        _col("survey_id", "string", "问卷", "Survey", "Which survey."),
        _col("customer_id", "string", "客户编号", "Customer ID", "Respondent."),
        _col("store_id", "string", "门店编号", "Store ID", "Store surveyed."),
        _col("responded_at", "timestamp", "提交时间", "Submitted", "When answered."),
        _col("nps_score", "int", "推荐意愿", "NPS answer", "Likelihood to recommend, 0-10."),
        _col("csat_score", "int", "总体满意度", "CSAT", "Overall satisfaction, 1-5."),
        _col("comment", "string", "意见建议", "Comment", "Open suggestion."),
        *_AUDIT,
        time="responded_at",
    ),
    _table("survey_scores",
        "问卷维度得分",
        "Survey scores",
        "Dimension scores of a response (long form).",
        ("response_id", "dimension"),
        _col("response_id", "string", "问卷编号", "Response ID", "Response.", required=True),
        _col("dimension", "string", "维度", "Dimension", "e.g. 购物环境, 商品丰富度.", required=True ),
        _col("score", "float", "得分", "Score", "1-5."),
        *_AUDIT,
    ),
    _table("app_events",
        "行为事件",
        "App events",
        "Behaviour events of the shopping app and of CRM users, under an anonymised user ID.",
        ("event_id",),
        _col("event_id", "string", "事件编号", "Event ID", "Event key.", required=True),
        _col("app", "string", "应用", "App", "shop_app or crm."),
        _col("user_id", "string", "用户编号", "User ID", "Anonymised user (customers.anon_id) or a CRM user (sales_reps.rep_id)."),
        _col("session_id", "string", "会话编号", "Session ID", "Session."),
        _col("event_name", "string", "事件", "Event", "login, view_product, pay_success, …"),
        _col("page", "string", "页面", "Page", "Page or module."),
        _col("event_time", "timestamp", "事件时间", "Event time", "When it happened.", required=True ),
        _col("device", "string", "设备", "Device", "iOS, Android, Web, 小程序."),
        _col("duration_seconds", "float", "时长(秒)", "Duration (s)", "Time spent on the step."),
        _col("success", "bool", "是否成功", "Success", "The operation succeeded."),
        *_AUDIT,
        time="event_time",
    ),
    _table("sales_reps",
        "销售代表",
        "Sales reps",
        "The sales team.",
        ("rep_id",),
        _col("rep_id", "string", "销售编号", "Rep ID", "Rep key.", required=True),
        _col("rep_name", "string", "销售姓名", "Rep", "Name.", pii=True),
        _col("team", "string", "团队", "Team", "Team."),
        _col("region", "string", "大区", "Region", "Region covered."),
        _col("hired_date", "date", "入职日期", "Hired", "Start date."),
        *_AUDIT,
        time="hired_date",
    ),
    _table("leads",
        "线索商机",
        "Leads",
        "Leads and opportunities through to won or lost.",
        ("lead_id",),
        _col("lead_id", "string", "线索编号", "Lead ID", "Lead key.", required=True),
        _col("company_name", "string", "企业名称", "Company", "Prospect.", pii=True),
        _col("contact_phone", "string", "联系电话", "Contact phone", "Phone.", pii=True),
        _col("source_channel_id", "string", "来源渠道", "Source channel", "Where the lead came from."),
        _col("rep_id", "string", "销售编号", "Rep ID", "Owner."),
        _col("created_at", "timestamp", "创建时间", "Created", "When the lead was created."),
        _col("stage", "string", "阶段", "Stage", "lead, opportunity, won, lost."),
        _col("expected_value", "money", "预计金额", "Expected value", "Deal size estimate."),
        _col("closed_at", "timestamp", "关闭时间", "Closed", "When won or lost."),
        _col("customer_id", "string", "客户编号", "Customer ID", "The customer it became, when won."),
        *_AUDIT,
        time="created_at",
    ),
    _table("lead_stage_history",
        "阶段变更",
        "Lead stage history",
        "Each stage a lead entered.",
        ("lead_id", "stage"),
        _col("lead_id", "string", "线索编号", "Lead ID", "Lead.", required=True),
        _col("stage", "string", "阶段", "Stage", "Stage entered.", required=True),
        _col("entered_at", "timestamp", "进入时间", "Entered", "When."),
        *_AUDIT,
        time="entered_at",
    ),
    _table("sales_activities",
        "销售活动",
        "Sales activities",
        "Visits, calls and messages by reps.",
        ("activity_id",),
        _col("activity_id", "string", "活动编号", "Activity ID", "Activity key.", required=True),
        _col("rep_id", "string", "销售编号", "Rep ID", "Rep."),
        _col("lead_id", "string", "线索编号", "Lead ID", "Lead, if any."),
        _col("customer_id", "string", "客户编号", "Customer ID", "Customer, if any."),
        _col("activity_type", "string", "活动类型", "Type", "拜访, 电话, 微信, 邮件."),
        _col("activity_time", "timestamp", "活动时间", "Time", "When it happened."),
        _col("logged_at", "timestamp", "录入时间", "Logged", "When the rep recorded it."),
        _col("duration_minutes", "float", "时长(分钟)", "Duration (min)", "Length."),
        _col("tags", "string", "标签", "Tags", "Semicolon-separated tags."),
        _col("notes", "string", "备注", "Notes", "Free text."),
        *_AUDIT,
        time="activity_time",
    ),
    _table("targets",
        "目标",
        "Targets",
        "Targets for a metric, period and dimension value.",
        ("metric", "period", "dimension", "dimension_value"),
        _col("metric", "string", "指标", "Metric", "Metric name, e.g. members.", required=True),
        _col("period", "string", "期间", "Period", "YYYY-MM, YYYY-Qn or YYYY.", required=True),
        _col("period_start", "date", "期间开始", "Period start", "First day of the period."),
        _col("period_end", "date", "期间结束", "Period end", "Last day of the period."),
        _col("dimension", "string", "维度", "Dimension", "city, store, region, rep or all.", required=True),
        _col("dimension_value", "string", "维度值", "Dimension value", "* for all.", required=True),
        _col("target_value", "float", "目标值", "Target", "The goal."),
        *_AUDIT,
        time="period_start",
    ),
    _table("experiments",
        "实验",
        "Experiments",
        "Store pilots and A/B tests.",
        ("experiment_id",),
        _col("experiment_id", "string", "实验编号", "Experiment ID", "Key.", required=True),
        _col("experiment_name", "string", "实验名称", "Experiment", "Name."),
        _col("kind", "string", "类型", "Kind", "store_pilot or ab_test."),
        _col("start_date", "date", "开始日期", "Start", "First day."),
        _col("end_date", "date", "结束日期", "End", "Last day, if ended."),
        _col("campaign_id", "string", "活动编号", "Campaign ID", "For A/B tests of a campaign."),
        _col("description", "string", "说明", "Description", "What is tested."),
        *_AUDIT,
        time="start_date",
    ),
    _table("experiment_units",
        "实验单元",
        "Experiment units",
        "Which store or customer got which variant.",
        ("experiment_id", "unit_type", "unit_id"),
        _col("experiment_id", "string", "实验编号", "Experiment ID", "Experiment.", required=True),
        _col("unit_type", "string", "单元类型", "Unit type", "store or customer.", required=True),
        _col("unit_id", "string", "单元编号", "Unit ID", "store_id or customer_id.", required=True),
        _col("variant", "string", "组别", "Variant", "treatment/control or A/B."),
        *_AUDIT,
    ),
)

_SYSTEM_TABLES = (
    _table("load_log",
        "加载日志",
        "Load log",
        "One row per table per load: rows read = loaded + quarantined + merged duplicates.",
        ("load_id", "table_name"),
        _col("load_id", "string", "批次号", "Load ID", "Load key.", required=True),
        _col("table_name", "string", "表", "Table", "Canonical table loaded.", required=True),
        _col("source", "string", "来源", "Source", "File or query read."),
        _col("started_at", "timestamp", "开始时间", "Started", "Load start."),
        _col("finished_at", "timestamp", "结束时间", "Finished", "Load end."),
        _col("rows_read", "int", "读取行数", "Rows read", "Data rows in the source."),
        _col("rows_loaded", "int", "入库行数", "Rows loaded", "Rows written (new or updated)."),
        _col("rows_quarantined", "int", "隔离行数", "Rows quarantined", "Rows rejected, with reason."),
        _col("rows_merged", "int", "合并重复", "Duplicates merged", "Duplicate rows merged."),
        _col("status", "string", "状态", "Status", "ok or failed."),
        kind="system",
        time="started_at",
    ),
    _table("quarantine",
        "隔离区",
        "Quarantine",
        "Rejected rows with the rule they broke.",
        ("load_id", "source", "line_no", "rule"),
        _col("load_id", "string", "批次号", "Load ID", "Load.", required=True),
        _col("table_name", "string", "表", "Table", "Target table."),
        _col("source", "string", "来源", "Source", "File.", required=True),
        _col("line_no", "int", "行号", "Line", "Line in the file (header = 1).", required=True),
        _col("column_name", "string", "列", "Column", "Source column at fault."),
        _col("rule", "string", "规则", "Rule", "Rule broken, e.g. bad_timestamp.", required=True),
        _col("action", "string", "处理", "Action", "rejected (row not loaded) or cleared (value set empty, row loaded)."),
        _col("original_value", "string", "原始值", "Original value", "The value as read."),
        _col("row_json", "string", "原始行", "Original row", "The whole row as JSON."),
        kind="system",
    ),
)
# fmt: on

#: Every table, data first then system, by name.
TABLES: dict[str, Table] = {t.name: t for t in (*_DATA_TABLES, *_SYSTEM_TABLES)}


def table(name: str) -> Table:
    """The canonical table called ``name``; :class:`ConfigError` listing the known ones if unknown."""
    try:
        return TABLES[name]
    except KeyError:
        raise ConfigError(f"unknown table {name!r}; expected one of: {', '.join(TABLES)}") from None


def data_tables() -> tuple[Table, ...]:
    """The tables holding the company's data, in load order (masters before facts)."""
    return tuple(t for t in TABLES.values() if t.kind == "data")


def render_markdown() -> str:
    """``docs/schema.md``: every table and column with type, labels and meaning."""
    lines = [
        "# Canonical schema",
        "",
        "Generated from `src/crmlens/schema.py` by `crmlens docs`; do not edit by hand.",
        f"Schema version {SCHEMA_VERSION}. Money is stored as float64 in one currency.",
        "Columns marked PII are personal data: reports and the dashboard never show them unmasked.",
        "",
    ]
    for tbl in TABLES.values():
        key = ", ".join(f"`{k}`" for k in tbl.primary_key)
        lines += [
            f"## `{tbl.name}` — {tbl.label_zh} / {tbl.label_en}",
            "",
            f"{tbl.description} Key: {key}."
            + (f" Time: `{tbl.time_column}`." if tbl.time_column else "")
            + (" (system table)" if tbl.kind == "system" else ""),
            "",
            "| column | type | 中文 | English | required | PII | description |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| `{c.name}` | {c.type} | {c.label_zh} | {c.label_en} | "
            f"{'' if c.nullable else 'yes'} | {'yes' if c.pii else ''} | {c.description} |"
            for c in tbl.columns
        ]
        lines.append("")
    return "\n".join(lines)
