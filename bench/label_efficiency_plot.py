"""The label-efficiency plot as a plain SVG file (no plotting library on the workers): one
panel per preference, test accuracy (mean +- standard error over seeds) against labels, one
line per strategy."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

Curve = list[tuple[int, float, float, int]]  # (labels, mean, standard error, seeds)
COLORS = {"uniform": "#1f77b4", "uncertainty": "#d62728", "disagreement": "#2ca02c"}
WIDTH, HEIGHT, MARGIN = 420, 300, 50


def _panel(curves: dict[str, Curve], title: str, left: float) -> list[str]:
    points = [p for curve in curves.values() for p in curve]
    if not points:
        return []
    x_max = max(n for n, *_ in points)
    lows = [m - s for _, m, s, _ in points]
    highs = [m + s for _, m, s, _ in points]
    y_min = max(0.0, min(lows) - 0.05)
    y_max = min(1.0, max(highs) + 0.05)
    plot_w, plot_h = WIDTH - 1.5 * MARGIN, HEIGHT - 2 * MARGIN

    def x(n: float) -> float:
        return left + MARGIN + plot_w * n / x_max

    def y(v: float) -> float:
        return MARGIN + plot_h * (1 - (v - y_min) / (y_max - y_min or 1))

    out = [
        f'<text x="{left + WIDTH / 2}" y="20" text-anchor="middle" font-size="14">'
        f"{escape(title)}</text>",
        f'<line x1="{x(0)}" y1="{y(y_min)}" x2="{x(x_max)}" y2="{y(y_min)}" stroke="black"/>',
        f'<line x1="{x(0)}" y1="{y(y_min)}" x2="{x(0)}" y2="{y(y_max)}" stroke="black"/>',
        f'<text x="{left + WIDTH / 2}" y="{HEIGHT - 10}" text-anchor="middle" font-size="12">'
        "labels</text>",
    ]
    for i in range(6):
        value = y_min + (y_max - y_min) * i / 5
        out.append(
            f'<text x="{x(0) - 5}" y="{y(value) + 4}" text-anchor="end" font-size="10">'
            f"{value:.2f}</text>"
        )
    for n in sorted({n for n, *_ in points}):
        out.append(
            f'<text x="{x(n)}" y="{y(y_min) + 14}" text-anchor="middle" font-size="10">{n}</text>'
        )
    for row, (strategy, curve) in enumerate(curves.items()):
        color = COLORS.get(strategy, "gray")
        path = " ".join(f"{x(n):.1f},{y(m):.1f}" for n, m, _, _ in curve)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for n, m, s, _ in curve:
            out.append(
                f'<line x1="{x(n):.1f}" y1="{y(m - s):.1f}" x2="{x(n):.1f}" y2="{y(m + s):.1f}" '
                f'stroke="{color}"/><circle cx="{x(n):.1f}" cy="{y(m):.1f}" r="3" fill="{color}"/>'
            )
        out.append(
            f'<text x="{x(0) + 10}" y="{MARGIN + 14 * row}" font-size="12" fill="{color}">'
            f"{escape(strategy)}</text>"
        )
    return out


def write_svg(curves: dict[tuple[str, str], Curve], preferences: list[str], path: Path) -> None:
    """``curves[(preference, strategy)]`` as one panel per preference."""
    body: list[str] = []
    for i, preference in enumerate(preferences):
        mine = {s: c for (p, s), c in curves.items() if p == preference and c}
        body += _panel(mine, f"{preference} labeler: RM test accuracy", i * WIDTH)
    width = WIDTH * max(1, len(preferences))
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
        f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
        + "".join(body)
        + "</svg>\n"
    )
