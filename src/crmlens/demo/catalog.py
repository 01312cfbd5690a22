"""The demo company's assortment: departments, categories, SKUs and their listing history.

Each category has a price level and a lifecycle. Most categories turn over slowly at a stable SKU
count; three of the categories churned members liked (杯面, 巧克力, 膨化食品) lose about a third of
their SKUs from 2020 on (seed 000 ④), while the other two (夹心面包, 绿叶菜) hold steady.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# The five categories churned members used to buy (seed 000 ④), in the seed's order.
CHURN_CATEGORIES = ("膨化食品", "夹心面包", "巧克力", "绿叶菜", "杯面")
# Of those, the ones whose SKU count shrinks.
SHRINKING_CATEGORIES = ("杯面", "巧克力", "膨化食品")
# Top-5 departments of platinum and gold members by revenue (seed 000 ③).
TOP_TIER_DEPARTMENTS = ("南北干货", "蔬菜", "日配", "面包", "乳酸菌饮品")


@dataclass(frozen=True)
class Category:
    """One category: its department, typical unit price, SKU count and naming material."""

    name: str
    department: str
    price: float  # median unit price (CNY)
    skus: int  # SKUs on sale at the start of 2019
    stems: tuple[str, ...]  # product-name stems
    specs: tuple[str, ...]  # pack sizes


_BRANDS: dict[str, tuple[str, ...]] = {
    "南北干货": ("十月稻田", "富昌", "古松", "山萃", "禾煜", "本地优选"),
    "蔬菜": ("本地基地", "寿光蔬菜", "绿源农场", "田园鲜"),
    "日配": ("祖名", "光明", "新希望", "伊利", "佳宝", "德青源"),
    "面包": ("桃李", "宾堡", "曼可顿", "店内烘焙", "盼盼"),
    "乳酸菌饮品": ("养乐多", "味全", "蒙牛", "伊利", "娃哈哈", "君乐宝"),
    "休闲食品": ("乐事", "上好佳", "旺旺", "三只松鼠", "好丽友", "卫龙", "洽洽"),
    "方便食品": ("康师傅", "统一", "今麦郎", "白象", "日清", "农心"),
    "糖果巧克力": ("德芙", "费列罗", "士力架", "金丝猴", "大白兔", "好时"),
    "粮油": ("鲁花", "金龙鱼", "福临门", "五得利", "十月稻田", "西王"),
    "酒水饮料": ("青岛啤酒", "张裕", "景芝", "农夫山泉", "可口可乐", "康师傅", "崂山矿泉水"),
    "肉禽": ("得利斯", "龙大", "凤祥", "本地鲜肉"),
    "水产": ("獐子岛", "好当家", "本地海鲜", "鲜活水产"),
    "水果": ("烟台苹果", "莱阳梨", "佳沛", "都乐", "本地果园"),
    "日化": ("海飞丝", "高露洁", "清风", "维达", "立白", "蓝月亮", "舒肤佳"),
    "冷冻食品": ("思念", "三全", "湾仔码头", "海霸王"),
    "调味品": ("海天", "李锦记", "太太乐", "老干妈", "欣和"),
    "熟食": ("店内厨房", "德州扒鸡", "周黑鸭"),
}


def _c(name: str, dept: str, price: float, skus: int, stems: str, specs: str) -> Category:
    return Category(name, dept, price, skus, tuple(stems.split()), tuple(specs.split()))


CATEGORIES: tuple[Category, ...] = (
    _c("香菇木耳", "南北干货", 26.0, 40, "干香菇 黑木耳 银耳 花菇 茶树菇", "100g 200g 250g 500g"),
    _c("红枣枸杞", "南北干货", 32.0, 36, "新疆红枣 宁夏枸杞 灰枣 桂圆干", "250g 500g 1kg"),
    _c("海带紫菜", "南北干货", 18.0, 30, "干海带 紫菜 虾皮 海米", "100g 200g 500g"),
    _c("干果坚果", "南北干货", 38.0, 44, "核桃 板栗 花生 腰果 开心果", "250g 500g 1kg"),
    _c("干货杂粮", "南北干货", 16.0, 32, "黄豆 绿豆 红豆 小米 薏米", "500g 1kg 2.5kg"),
    _c("绿叶菜", "蔬菜", 4.5, 34, "菠菜 油菜 小白菜 生菜 韭菜 芹菜 茼蒿", "300g 500g 1把"),
    _c("根茎菜", "蔬菜", 4.0, 30, "土豆 胡萝卜 白萝卜 山药 莲藕", "500g 1kg"),
    _c("茄果类", "蔬菜", 5.5, 30, "西红柿 黄瓜 茄子 青椒 西葫芦", "500g 1kg"),
    _c("菌菇", "蔬菜", 7.0, 24, "平菇 金针菇 杏鲍菇 香菇 海鲜菇", "200g 300g 500g"),
    _c("葱姜蒜", "蔬菜", 3.5, 18, "大葱 生姜 大蒜 小葱", "250g 500g"),
    _c("豆制品", "日配", 4.5, 36, "北豆腐 内酯豆腐 豆干 腐竹 豆皮", "300g 400g 500g"),
    _c("鲜蛋", "日配", 14.0, 20, "鲜鸡蛋 土鸡蛋 鸭蛋 鹌鹑蛋", "10枚 15枚 30枚"),
    _c("低温奶", "日配", 9.0, 34, "鲜牛奶 巴氏鲜奶 低温酸奶", "250ml 450ml 950ml"),
    _c("冷藏熟食", "日配", 15.0, 30, "火腿肠 培根 午餐肉 鸡肉肠", "200g 300g"),
    _c("鲜面条", "日配", 5.0, 20, "鲜面条 饺子皮 馄饨皮 手擀面", "500g 1kg"),
    _c(
        "夹心面包",
        "面包",
        6.5,
        40,
        "奶油夹心面包 豆沙夹心面包 巧克力夹心面包 肉松夹心面包",
        "80g 100g 150g",
    ),
    _c("吐司", "面包", 9.5, 26, "全麦吐司 牛奶吐司 切片吐司", "300g 400g"),
    _c("蛋糕", "面包", 12.0, 28, "戚风蛋糕 纸杯蛋糕 瑞士卷 蛋黄派", "200g 300g 6枚"),
    _c("糕点", "面包", 10.0, 26, "桃酥 蛋挞 老婆饼 绿豆糕", "200g 250g 400g"),
    _c("活性乳酸菌", "乳酸菌饮品", 8.0, 24, "活性乳酸菌饮品 益生菌饮品", "100ml*5 100ml*10"),
    _c("常温乳酸菌", "乳酸菌饮品", 6.0, 26, "乳酸菌饮品 原味乳酸菌 草莓味乳酸菌", "340ml 450ml 1L"),
    _c("酸奶饮品", "乳酸菌饮品", 7.0, 24, "风味酸奶 常温酸奶 饮用型酸奶", "200g 230g*10"),
    _c("膨化食品", "休闲食品", 6.5, 48, "薯片 虾条 玉米棒 薯条 锅巴", "45g 70g 104g 150g"),
    _c("饼干", "休闲食品", 8.0, 40, "苏打饼干 夹心饼干 曲奇 威化饼干", "100g 200g 400g"),
    _c("肉干肉脯", "休闲食品", 22.0, 26, "牛肉干 猪肉脯 鸭脖 鸡爪", "100g 200g"),
    _c("瓜子炒货", "休闲食品", 10.0, 24, "瓜子 花生米 蚕豆 开心果", "150g 260g 500g"),
    _c("果冻布丁", "休闲食品", 9.0, 18, "果冻 布丁 椰果", "200g 360g"),
    _c("杯面", "方便食品", 5.5, 44, "红烧牛肉杯面 老坛酸菜杯面 海鲜杯面 香辣牛肉杯面", "105g 120g"),
    _c("袋面", "方便食品", 12.0, 30, "红烧牛肉面 五连包 拉面 拌面", "5连包 3连包"),
    _c("自热食品", "方便食品", 18.0, 18, "自热火锅 自热米饭 螺蛳粉", "350g 400g"),
    _c("方便粉丝", "方便食品", 7.0, 16, "酸辣粉 粉丝 米线", "100g 130g"),
    _c(
        "巧克力",
        "糖果巧克力",
        16.0,
        42,
        "牛奶巧克力 黑巧克力 榛仁巧克力 巧克力豆",
        "43g 80g 168g 252g",
    ),
    _c("糖果", "糖果巧克力", 9.0, 30, "奶糖 水果糖 软糖 棒棒糖", "100g 227g 500g"),
    _c("口香糖", "糖果巧克力", 8.0, 16, "木糖醇口香糖 薄荷糖", "40粒 56g"),
    _c("大米", "粮油", 45.0, 28, "东北大米 五常大米 长粒香米", "2.5kg 5kg 10kg"),
    _c("食用油", "粮油", 70.0, 32, "花生油 大豆油 玉米油 菜籽油", "1.8L 5L"),
    _c("面粉", "粮油", 28.0, 20, "特一粉 饺子粉 全麦粉", "2.5kg 5kg"),
    _c("白酒", "酒水饮料", 88.0, 30, "景芝白干 浓香型白酒 清香型白酒", "500ml 475ml"),
    _c("啤酒", "酒水饮料", 5.0, 28, "青岛啤酒经典 崂山啤酒 纯生啤酒", "330ml 500ml 500ml*12"),
    _c("饮用水", "酒水饮料", 2.5, 20, "矿泉水 纯净水 苏打水", "550ml 1.5L 4L"),
    _c("碳酸饮料", "酒水饮料", 3.5, 24, "可乐 雪碧 芬达", "330ml 500ml 2L"),
    _c("果汁茶饮", "酒水饮料", 4.5, 30, "橙汁 冰红茶 绿茶 乌龙茶", "500ml 1L"),
    _c("猪肉", "肉禽", 26.0, 30, "五花肉 里脊肉 排骨 猪蹄", "500g 1kg"),
    _c("牛羊肉", "肉禽", 48.0, 24, "牛腩 羊肉卷 牛排 肥牛卷", "300g 500g"),
    _c("禽肉", "肉禽", 19.0, 24, "鸡胸肉 鸡翅 鸡腿 整鸡", "500g 1kg"),
    _c("鲜鱼", "水产", 28.0, 22, "鲈鱼 黄花鱼 草鱼 鲅鱼", "500g 1条"),
    _c("虾蟹", "水产", 55.0, 20, "对虾 皮皮虾 梭子蟹 海虾", "500g 1kg"),
    _c("贝类", "水产", 22.0, 18, "扇贝 蛤蜊 海蛎子 海参", "500g 1kg"),
    _c("苹果梨", "水果", 12.0, 20, "烟台红富士 莱阳梨 黄元帅", "1kg 2.5kg"),
    _c("柑橘", "水果", 10.0, 18, "砂糖橘 脐橙 沃柑", "1kg 2.5kg"),
    _c("时令水果", "水果", 16.0, 30, "樱桃 草莓 葡萄 西瓜 蓝莓", "500g 1kg 1个"),
    _c("洗发护发", "日化", 36.0, 30, "洗发水 护发素 沐浴露", "400ml 750ml"),
    _c("口腔护理", "日化", 14.0, 24, "牙膏 牙刷 漱口水", "120g 3支装"),
    _c("纸品", "日化", 26.0, 24, "卷纸 抽纸 湿巾", "10卷 6包"),
    _c("洗衣用品", "日化", 30.0, 24, "洗衣液 洗衣粉 柔顺剂", "2kg 3kg"),
    _c("速冻水饺", "冷冻食品", 18.0, 26, "猪肉白菜水饺 三鲜水饺 汤圆 馄饨", "450g 1kg"),
    _c("冷冻肉丸", "冷冻食品", 16.0, 20, "牛肉丸 鱼丸 虾滑", "250g 500g"),
    _c("酱油醋", "调味品", 12.0, 24, "生抽 老抽 陈醋 米醋", "500ml 1.28L"),
    _c("调味料", "调味品", 7.0, 30, "盐 鸡精 蚝油 火锅底料 花椒", "200g 400g"),
    _c("盒饭", "熟食", 16.0, 16, "红烧肉盒饭 鸡腿饭 宫保鸡丁饭 素菜盒饭", "1份"),
    _c("卤味", "熟食", 22.0, 20, "卤猪蹄 扒鸡 卤牛肉 酱鸭", "250g 500g 1只"),
)

DEPARTMENTS: tuple[str, ...] = tuple(dict.fromkeys(c.department for c in CATEGORIES))
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)

PERIOD_START = pd.Timestamp("2019-01-01")
SHRINK_START = pd.Timestamp("2020-01-01")
PERIOD_END = pd.Timestamp("2021-12-31")
# Yearly share of a category's SKUs delisted (and, for stable categories, replaced).
TURNOVER = 0.08
# Share of a shrinking category's SKUs delisted over 2020-2021 (SKU count 2021-12 vs 2019-12).
SHRINK_SHARE = 0.35
SHRINK_END = pd.Timestamp("2021-12-15")
# SKUs added over the period to the steady churn categories (夹心面包, 绿叶菜), as a share.
STEADY_GROWTH = 0.08


def _uniform_dates(
    rng: np.random.Generator, n: int, low: pd.Timestamp, high: pd.Timestamp
) -> pd.DatetimeIndex:
    days = rng.integers(0, (high - low).days + 1, size=n)
    return pd.DatetimeIndex(low + pd.to_timedelta(days, unit="D"))


def build_products(rng: np.random.Generator) -> pd.DataFrame:
    """The product master with listing history (a few thousand SKUs).

    Columns: sku, product_name, category, department, brand, unit_price, unit_cost, listed_date,
    delisted_date (NaT while on sale) and ``popularity`` (relative pick weight inside its category).
    """
    frames = []
    for dept_no, department in enumerate(DEPARTMENTS, start=10):
        for cat_no, cat in enumerate(c for c in CATEGORIES if c.department == department):
            frames.append(_category_skus(rng, cat, dept_no * 100 + cat_no))
    products = pd.concat(frames, ignore_index=True)
    return products


def _category_skus(rng: np.random.Generator, cat: Category, code: int) -> pd.DataFrame:
    """SKUs of one category: an initial range plus new listings, each with a delisting time."""
    initial = cat.skus
    shrinking = cat.name in SHRINKING_CATEGORIES
    # the churners' other two categories keep (and slightly grow) their ranges
    steady = cat.name in CHURN_CATEGORIES and not shrinking
    # New listings over the 3 years: replacements for turnover in ordinary categories, a few
    # additions to the steady ones, none for the shrinking ones (the buyers are cutting them).
    n_new = 0 if shrinking else round(initial * (STEADY_GROWTH if steady else TURNOVER * 3))
    n = initial + n_new

    listed = _uniform_dates(rng, initial, pd.Timestamp("2014-01-01"), pd.Timestamp("2018-12-31"))
    listed = listed.append(_uniform_dates(rng, n_new, PERIOD_START, PERIOD_END))
    # Delisting: normal turnover as an exponential lifetime from the later of listing and 2019-01-01;
    # the five churn categories have no random turnover, so their SKU trends are exactly as planted.
    life_years = rng.exponential(1.0 / TURNOVER, size=n)
    if shrinking or steady:
        life_years[:] = np.inf
    base = np.maximum(listed.values, PERIOD_START.to_datetime64())
    life = pd.to_timedelta(np.minimum(life_years, 50.0) * 365.25, unit="D")
    delisted = pd.DatetimeIndex(base + life)
    if shrinking:
        # a fixed share of the range is cut on random days of 2020-01-01..2021-12-15
        cut = rng.permutation(initial)[: round(initial * SHRINK_SHARE)]
        cut_dates = _uniform_dates(rng, len(cut), SHRINK_START, SHRINK_END)
        values = delisted.values.copy()
        values[cut] = cut_dates.values
        delisted = pd.DatetimeIndex(values)
    delisted = delisted.normalize()
    delisted = delisted.where(delisted <= PERIOD_END)

    brands = _BRANDS[cat.department]
    stem = rng.integers(0, len(cat.stems), size=n)
    spec = rng.integers(0, len(cat.specs), size=n)
    brand = rng.integers(0, len(brands), size=n)
    names = [
        f"{brands[b]} {cat.stems[s]} {cat.specs[p]}"
        for b, s, p in zip(brand, stem, spec, strict=True)
    ]
    price = np.round(cat.price * rng.lognormal(0.0, 0.35, size=n), 1)
    price = np.maximum(price, 0.5)
    cost = np.round(price * rng.uniform(0.62, 0.82, size=n), 2)
    order = np.argsort(listed.values, kind="stable")  # SKU codes follow listing order
    frame = pd.DataFrame(
        {
            "product_name": np.asarray(names, dtype=object)[order],
            "category": cat.name,
            "department": cat.department,
            "brand": np.asarray([brands[b] for b in brand], dtype=object)[order],
            "unit_price": price[order],
            "unit_cost": cost[order],
            "listed_date": listed.values[order],
            "delisted_date": delisted.values[order],
            # Zipf-like popularity: a few best sellers per category
            "popularity": rng.pareto(1.5, size=n)[order] + 0.2,
        }
    )
    frame.insert(0, "sku", [f"{code}{i:04d}" for i in range(1, n + 1)])
    return frame


def active_sku_counts(products: pd.DataFrame, months: pd.PeriodIndex) -> pd.DataFrame:
    """Active SKUs per category at each month end (listed on or before it, not yet delisted)."""
    ends = months.to_timestamp(how="end").normalize()
    listed = products["listed_date"].to_numpy()
    delisted = products["delisted_date"].to_numpy()
    counts = {}
    for period, month_end in zip(months, ends, strict=True):
        stamp = month_end.to_datetime64()
        active = (listed <= stamp) & ~(delisted <= stamp)
        counts[str(period)] = products.loc[active, "category"].value_counts()
    return pd.DataFrame(counts).fillna(0).astype(int)
