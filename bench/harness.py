"""A small benchmark harness: named steps, each run in its own process, reported as ratios.

These machines are shared and noisy, so absolute seconds mean little; every figure we quote is a
ratio against a baseline measured in the same run on the same data. Each step runs in a fresh
subprocess so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

STEPS_SCRIPT = Path(__file__).with_name("steps.py")


@dataclass
class StepResult:
    """One timed step."""

    name: str
    seconds: float
    peak_rss_mb: float
    rows: int
    baseline: str | None = None
    target_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


class Bench:
    """Collects step results and prints them as ratios against their baselines."""

    def __init__(self, title: str, params: dict[str, Any]) -> None:
        self.title = title
        self.params = params
        self.results: dict[str, StepResult] = {}

    def run_step(
        self,
        name: str,
        step: str,
        *args: str,
        repeat: int = 1,
        baseline: str | None = None,
        target_ratio: float | None = None,
    ) -> StepResult:
        """Run ``steps.py STEP ARGS`` ``repeat`` times in fresh processes and keep the fastest."""
        best: dict[str, Any] | None = None
        for _ in range(repeat):
            proc = subprocess.run(
                [sys.executable, str(STEPS_SCRIPT), step, *args],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"step {name} failed:\n{proc.stderr[-4000:]}")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            if best is None or out["seconds"] < best["seconds"]:
                best = out
        assert best is not None
        result = StepResult(
            name=name,
            seconds=best.pop("seconds"),
            peak_rss_mb=best.pop("peak_rss_mb"),
            rows=best.pop("rows"),
            baseline=baseline,
            target_ratio=target_ratio,
            extra=best,
        )
        self.results[name] = result
        return result

    def compare(self, name: str, result: StepResult, baseline: str) -> StepResult:
        """Report ``result`` again, as a ratio against another baseline (no target)."""
        again = replace(result, name=name, baseline=baseline, target_ratio=None)
        self.results[name] = again
        return again

    def ratio(self, result: StepResult) -> float | None:
        if result.baseline is None:
            return None
        return result.seconds / self.results[result.baseline].seconds

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        table = Table(title=f"{self.title} {self.params}", title_justify="left")
        columns = ("step", "seconds", "CPU s", "rows", "rows/s", "peak MB", "vs baseline", "target")
        for col in columns:
            table.add_column(col, justify="left" if col == "step" else "right")
        for res in self.results.values():
            ratio = self.ratio(res)
            ok = ratio is not None and res.target_ratio is not None and ratio <= res.target_ratio
            ratio_text = "" if ratio is None else f"{ratio:.2f}× {res.baseline}"
            target = "" if res.target_ratio is None else f"≤ {res.target_ratio}×"
            table.add_row(
                res.name,
                f"{res.seconds:.2f}",
                f"{res.extra['cpu_seconds']:.2f}" if "cpu_seconds" in res.extra else "",
                f"{res.rows:,}",
                f"{res.rows_per_second:,.0f}",
                f"{res.peak_rss_mb:,.0f}",
                f"[{'green' if ok else 'yellow'}]{ratio_text}[/]" if ratio_text else "",
                target,
            )
        console.print(table)

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "title": self.title,
            "params": self.params,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "steps": [
                asdict(r) | {"ratio": self.ratio(r), "rows_per_second": r.rows_per_second}
                for r in self.results.values()
            ],
        }
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
