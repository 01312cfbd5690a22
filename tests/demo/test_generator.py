"""``crmlens.demo.generate``: determinism, chunking, the export contract and the manifest."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from crmlens.demo import DemoConfig, generate
from crmlens.demo.commerce import BLOCK
from crmlens.errors import ConfigError

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "demo-exports.md"
CUSTOMERS = 6_000
# the core generator's files and their headers (docs/demo-exports.md)
HEADERS = {
    "crm/members.csv": ["会员卡号", "姓名", "性别", "出生日期", "手机号", "电子邮箱", "会员等级",
                        "客户类型", "企业名称", "行业", "企业规模", "大区", "省份", "城市", "注册门店",
                        "注册渠道", "注册方式", "注册时间", "推荐人卡号", "营销授权", "更新时间"],
    "crm/stores.csv": ["store_id", "store_name", "region", "province", "city", "store_type",
                       "opened_date", "area_sqm"],
    "shop/products.csv": ["sku", "product_name", "category", "department", "brand", "unit_price",
                          "unit_cost", "listed_date", "delisted_date"],
    "shop/orders.csv": ["order_id", "member_card_no", "store_id", "order_channel", "order_time",
                        "payment_method", "gross_amount", "discount_amount", "paid_amount",
                        "currency", "status", "original_order_id"],
    "shop/order_lines.csv": ["order_id", "line_no", "sku", "quantity", "unit_price",
                             "line_amount"],
    "planning/targets.csv": ["metric", "period", "dimension", "dimension_value", "target_value"],
    "planning/experiments.csv": ["experiment_id", "experiment_name", "kind", "start_date",
                                 "end_date", "campaign_id", "description"],
    "planning/experiment_units.csv": ["experiment_id", "unit_type", "unit_id", "variant"],
}  # fmt: skip
CORE_EFFECTS = ("tiers", "demographics", "member_targets", "covid_dip", "kiosk_pilot",
                "churned_categories", "customer_mix")  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hashes(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): _sha256(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def _contract_files() -> list[str]:
    """File names from the contract's table (rows like ``| `crm/members.csv` | ...``)."""
    return re.findall(r"^\| `([^`]+)` \|", CONTRACT.read_text("utf-8"), flags=re.MULTILINE)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same config twice, a different seed, and the same config in one-block chunks."""
    base = DemoConfig(customers=CUSTOMERS, seed=5, chunk_customers=50_000)
    dirs = {}
    for name, config in {
        "a": base,
        "b": base,
        "other_seed": replace(base, seed=6),
        "small_chunks": replace(base, chunk_customers=BLOCK),
    }.items():
        dirs[name] = tmp_path_factory.mktemp(name)
        generate(replace(config, out_dir=dirs[name]))
    return dirs


def test_same_seed_gives_identical_bytes(runs: dict[str, Path]) -> None:
    a, b = _hashes(runs["a"]), _hashes(runs["b"])
    assert a == b
    assert set(_contract_files()) <= set(a) | {"manifest.json"}
    manifest = json.loads((runs["a"] / "manifest.json").read_text("utf-8"))
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == a
    assert (runs["a"] / "manifest.json").read_bytes() == (runs["b"] / "manifest.json").read_bytes()


def test_different_seed_gives_different_files(runs: dict[str, Path]) -> None:
    a, other = _hashes(runs["a"]), _hashes(runs["other_seed"])
    for name in ("crm/members.csv", "shop/orders.csv", "shop/order_lines.csv", "planted.json"):
        assert a[name] != other[name], name


def test_chunking_does_not_change_the_output(
    runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every file (core and peripheral, planted.json and the manifest) has the same bytes whatever
    the chunk size: a chunk is only a unit of writing."""
    assert _hashes(runs["a"]) == _hashes(runs["small_chunks"])
    # chunks smaller than a block (and than the lead list) vs one chunk for everything
    config = DemoConfig(customers=7_000, seed=5)
    hashes = []
    for chunk in (500, 7_000):
        out = tmp_path_factory.mktemp(f"chunk{chunk}")
        generate(replace(config, out_dir=out, chunk_customers=chunk))
        hashes.append({**_hashes(out), "manifest.json": _sha256(out / "manifest.json")})
    assert set(_contract_files()) <= set(hashes[0])
    different = sorted(k for k in hashes[0] if hashes[0][k] != hashes[1].get(k))
    assert hashes[0] == hashes[1], different


def test_contract_headers(runs: dict[str, Path]) -> None:
    out = runs["a"]
    for name, header in HEADERS.items():
        encoding = "gbk" if name == "crm/members.csv" else "utf-8"
        first = (out / name).read_bytes().split(b"\n", 1)[0].decode(encoding)
        assert first.split(",") == header, name


def test_encodings_and_line_ends(runs: dict[str, Path]) -> None:
    out = runs["a"]
    members = (out / "crm/members.csv").read_bytes()
    members.decode("gbk")
    with pytest.raises(UnicodeDecodeError):
        members.decode("utf-8")
    tickets = (out / "service/tickets.csv").read_bytes()
    assert tickets.startswith(b"\xef\xbb\xbf") and b"\r\n" in tickets
    for path in out.rglob("*.csv"):
        name = path.relative_to(out).as_posix()
        if name in ("crm/members.csv", "service/tickets.csv"):
            continue
        data = path.read_bytes()
        data.decode("utf-8")
        assert not data.startswith(b"\xef\xbb\xbf"), name
        assert b"\r\n" not in data, name


def test_manifest_rows_and_encodings(runs: dict[str, Path]) -> None:
    out = runs["a"]
    files = json.loads((out / "manifest.json").read_text("utf-8"))["files"]
    assert files["crm/members.csv"]["encoding"] == "gbk"
    assert files["service/tickets.csv"]["encoding"] == "utf-8-sig"
    assert files["survey/store_survey.xlsx"]["encoding"] == "xlsx"
    for name in HEADERS:
        encoding = files[name]["encoding"]
        frame = pd.read_csv(out / name, encoding=encoding, dtype=str, keep_default_na=False)
        assert files[name]["rows"] == len(frame), name


def test_planted_record(runs: dict[str, Path]) -> None:
    planted = json.loads((runs["a"] / "planted.json").read_text("utf-8"))
    assert planted["seed"] == 5 and planted["customers"] == CUSTOMERS
    assert planted["period"] == {"start": "2019-01-01", "end": "2021-12-31"}
    assert set(CORE_EFFECTS) <= set(planted["effects"])
    for name, effect in planted["effects"].items():
        assert {"requirement", "description", "definition", "expected", "realised"} <= set(effect)
        assert "tolerance" in effect, name
    assert all(isinstance(v, int) and v >= 0 for v in planted["dirt"].values())
    assert all(re.fullmatch(r"[a-z_]+/[a-z_]+\.(csv|xlsx)\.[a-z0-9_]+", k) for k in planted["dirt"])


def test_progress_is_reported(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    generate(DemoConfig(customers=300, seed=1, out_dir=tmp_path), lambda *a: calls.append(a))
    steps = [step for step, _, _ in calls]
    assert "orders" in steps and steps[-1] == "manifest"
    assert all(0 <= done <= total for _, done, total in calls)


@pytest.mark.parametrize(
    "config",
    [
        DemoConfig(customers=0),
        DemoConfig(customers=100, chunk_customers=0),
        DemoConfig(customers=100, start=pd.Timestamp("2020-01-01").date()),
    ],
)
def test_bad_config_is_a_config_error(config: DemoConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        generate(replace(config, out_dir=tmp_path))


def test_output_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    """Two processes with different string-hash seeds write the same bytes."""
    script = (
        "import sys; from pathlib import Path; from crmlens.demo import DemoConfig, generate; "
        "generate(DemoConfig(customers=2_000, seed=3, out_dir=Path(sys.argv[1])))"
    )
    hashes = []
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env)
        hashes.append(_hashes(out))
    assert hashes[0] == hashes[1]
