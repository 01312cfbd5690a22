"""Small inline SVG line charts for the HTML report: no script, no font file, no external reference.

The chart is drawn in a fixed ``viewBox`` and scales with the page (``width: 100%``); every point
carries a ``<title>`` tooltip with its period and formatted value, so the exact numbers stay
readable where the chart is too small to label them.

>>> "<polyline" in line_chart("收入", ["2021-01", "2021-02"], [1.0, 2.0], str)
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

WIDTH, HEIGHT = 600, 240
#: Margins: left for the y labels, bottom for the rotated period labels.
LEFT, RIGHT, TOP, BOTTOM = 70, 16, 28, 56


def line_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    fmt: Callable[[float | None], str],
    color: str = "#2563eb",
) -> str:
    """A line chart of ``values`` over ``labels``; a missing value breaks the line."""
    known = [v for v in values if v is not None]
    lo = min([0.0, *known])
    hi = max([*known, lo + 1.0]) if known else 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        level = lo + (hi - lo) * fraction
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            'class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y(level) + 4:.1f}" class="axis" text-anchor="end">'
            f"{escape(fmt(level))}</text>"
        )
    for segment in _segments(values):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in segment)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        if v is not None:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                f"<title>{escape(label)}: {escape(fmt(v))}</title></circle>"
            )
        base = HEIGHT - BOTTOM + 14
        parts.append(
            f'<text x="{x(i):.1f}" y="{base}" class="axis" text-anchor="end" '
            f'transform="rotate(-35 {x(i):.1f} {base})">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _segments(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive known values, each drawn as one line."""
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((i, v))
    return [run for run in runs if run]
