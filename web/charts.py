"""Charts drawn on the server as SVG (no script, no library): a metric's daily rate over
90 days against its standard, and flawed items per month by reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28


@dataclass(frozen=True)
class DayRate:
    day: str  # YYYY-MM-DD
    rate: float
    numerator: int
    denominator: int


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def daily_rate_svg(points: Sequence[DayRate], last_day: str, days: int, threshold_below: float,
                   at_risk: float, title: str) -> str:
    """A line of the daily rate, one point per day with data, over the `days` days ending
    `last_day`, with the standard and the at-risk line; text alternatives for each point."""
    end = date.fromisoformat(last_day)
    start = end - timedelta(days=days - 1)
    top_rate = max([threshold_below * 1.25] + [p.rate for p in points]) or 0.01
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: str) -> float:
        return LEFT + plot_w * (date.fromisoformat(day) - start).days / max(1, days - 1)

    def y(rate: float) -> float:
        return TOP + plot_h * (1 - rate / top_rate)

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" '
             f'preserveAspectRatio="xMidYMid meet"><title id="chart-title">{escape(title)}</title>']
    for frac in (0.0, 0.5, 1.0):
        rate = top_rate * frac
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(rate):.1f}" y2="{y(rate):.1f}"/>'
                     f'<text class="axis" x="{LEFT - 4}" y="{y(rate) + 4:.1f}" text-anchor="end">{_pct(rate)}</text>')
    for label, day in ((start.isoformat(), start.isoformat()), (end.isoformat(), end.isoformat())):
        anchor = "start" if day == start.isoformat() else "end"
        parts.append(f'<text class="axis" x="{x(day):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">{label}</text>')
    parts.append(f'<line class="standard" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(threshold_below):.1f}" '
                 f'y2="{y(threshold_below):.1f}"><title>standard: at most {_pct(threshold_below)}</title></line>')
    risk = threshold_below * at_risk
    parts.append(f'<line class="risk" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(risk):.1f}" y2="{y(risk):.1f}">'
                 f'<title>at risk from {_pct(risk)}</title></line>')
    inside = [p for p in points if start.isoformat() <= p.day <= end.isoformat()]
    if len(inside) > 1:
        path = " ".join(f"{x(p.day):.1f},{y(p.rate):.1f}" for p in inside)
        parts.append(f'<polyline class="rate" points="{path}"/>')
    for p in inside:
        parts.append(f'<circle class="point" data-day="{p.day}" cx="{x(p.day):.1f}" cy="{y(p.rate):.1f}" r="3">'
                     f'<title>{p.day}: {_pct(p.rate)} ({p.numerator}/{p.denominator})</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def monthly_bars_svg(months: Sequence[str], reasons: Sequence[str], counts: Sequence[Sequence[int]],
                     title: str) -> str:
    """Stacked bars: per month, the flawed items by reason (patterns differ, not colour only:
    each bar segment is labelled in its title and in the table beside the chart)."""
    width, height, left, bottom = 360, 180, 30, 24
    top_count = max([sum(c) for c in counts] + [1])
    bar_w = (width - left) / max(1, len(months)) * 0.6
    parts = [f'<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">']
    for m, month in enumerate(months):
        x = left + (width - left) * (m + 0.2) / len(months)
        y = float(height - bottom)
        for r, reason in enumerate(reasons):
            n = counts[m][r]
            if not n:
                continue
            h = (height - bottom - 10) * n / top_count
            y -= h
            parts.append(f'<rect class="reason-{r}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                         f'<title>{escape(month)}: {n} {escape(reason.lower().replace("_", " "))}</title></rect>')
        parts.append(f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                     f'{escape(month)}</text>')
    parts.append("</svg>")
    return "".join(parts)
