"""The seeded demo company: a Shandong supermarket chain's exports, 2019-2021.

``generate(DemoConfig(customers=20_000, seed=42, out_dir=Path("demo-data")))`` writes every export
listed in ``docs/demo-exports.md`` plus ``planted.json`` and ``manifest.json``.
"""

from crmlens.demo.generator import generate
from crmlens.demo.people import build_world
from crmlens.demo.world import DemoConfig, DemoWorld

__all__ = ["DemoConfig", "DemoWorld", "build_world", "generate"]
