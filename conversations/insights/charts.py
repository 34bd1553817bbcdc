"""The overview's charts as data for a small SVG template (templates/insights/_chart.html): bars
for counts and money, lines for rates and latency. Server-rendered, no JavaScript; every chart
has a title, a description and the same numbers in a table (the template's <details>)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from .selectors import DayPoint

WIDTH, HEIGHT = 600, 160
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 64, 20, 10


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass
class Series:
    name: str
    css: str  # the series' class in static/css/insights.css (its colour)
    values: list[float | None]
    points: str = ""  # the polyline's "x,y x,y" (lines only)
    # A dot per value (lines only): a day alone between two quiet days is still seen.
    dots: list[tuple[float, float, str]] = field(default_factory=list)


@dataclass
class Chart:
    key: str
    title: str
    description: str
    unit: str
    kind: str  # "bars" | "lines"
    labels: list[str]
    series: list[Series]
    top: float  # the value at the top of the plot
    bars: list[Bar] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    pad_left: int = PAD_LEFT
    plot_bottom: int = HEIGHT - PAD_BOTTOM
    plot_top: int = PAD_TOP

    @property
    def rows(self) -> list[tuple[str, list[str]]]:
        """The table fallback: one row per day, one cell per series ("—" where there is no value)."""
        return [
            (label, ["—" if s.values[i] is None else _fmt(s.values[i], self.unit) for s in self.series])
            for i, label in enumerate(self.labels)
        ]

    @property
    def marks(self) -> str:
        """The bars, or the lines and their dots, as SVG markup: built here rather than in the
        template, where 90 days of 5 charts meant ~18k variable look-ups (most of the page's time)."""
        if self.kind == "bars":
            parts = [
                format_html(
                    '<rect class="bar s1" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
                    b.x,
                    b.y,
                    b.width,
                    b.height,
                    b.label,
                )
                for b in self.bars
            ]
        else:
            parts = []
            for s in self.series:
                if s.points:
                    parts.append(format_html('<polyline class="line {}" points="{}" />', s.css, s.points))
                parts += [
                    format_html(
                        '<circle class="dot {}" cx="{}" cy="{}" r="3"><title>{}</title></circle>', s.css, x, y, t
                    )
                    for x, y, t in s.dots
                ]
        return mark_safe("".join(parts))  # noqa: S308 - every part went through format_html

    @property
    def table_body(self) -> str:
        """The table fallback's rows, as markup (the same reason as `marks`)."""
        return mark_safe(  # noqa: S308 - every part went through format_html
            "".join(
                format_html(
                    '<tr><th scope="row">{}</th>{}</tr>',
                    label,
                    format_html_join("", "<td>{}</td>", ((c,) for c in cells)),
                )
                for label, cells in self.rows
            )
        )

    @property
    def top_label(self) -> str:
        return _fmt(self.top, self.unit)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "$":
        return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
    if unit in ("%", "ms"):
        return f"{value:,.0f} {unit}" if unit == "ms" else f"{value:.1f}%"
    return f"{value:,.0f}"


def _nice_top(highest: float) -> float:
    if highest <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(highest))) - 1) if highest >= 1 else 1
    return float(-(-highest // magnitude) * magnitude) if highest >= 1 else highest


def _chart(
    key: str, title: str, unit: str, kind: str, points: Sequence[DayPoint], series: list[tuple[str, str, Callable]]
) -> Chart:
    labels = [p.day.strftime("%b %d") for p in points]
    built = [Series(name, css, [_value(get(p)) for p in points]) for name, css, get in series]
    numbers = [v for s in built for v in s.values if v is not None]
    top = 100.0 if unit == "%" else _nice_top(max(numbers, default=0.0))
    chart = Chart(key, title, "", unit, kind, labels, built, top)
    plot_height = chart.plot_bottom - chart.plot_top
    step = (WIDTH - PAD_LEFT) / max(len(points), 1)

    def y_of(value: float) -> float:
        return round(chart.plot_bottom - plot_height * min(value, top) / top, 1)

    if kind == "bars":
        values = built[0].values
        chart.bars = [
            Bar(
                x=round(PAD_LEFT + i * step + step * 0.1, 1),
                y=y_of(v or 0),
                width=round(max(step * 0.8, 1), 1),
                height=round(chart.plot_bottom - y_of(v or 0), 1),
                label=f"{labels[i]}: {_fmt(v or 0, unit)}",
            )
            for i, v in enumerate(values)
        ]
    else:
        for s in built:
            s.dots = [
                (round(PAD_LEFT + i * step + step / 2, 1), y_of(v), f"{labels[i]}: {s.name} {_fmt(v, unit)}")
                for i, v in enumerate(s.values)
                if v is not None
            ]
            s.points = " ".join(f"{x},{y}" for x, y, _ in s.dots)
    chart.description = _describe(chart, points)
    return chart


def _value(raw: Any) -> float | None:
    return None if raw is None else float(raw)


def _describe(chart: Chart, points: Sequence[DayPoint]) -> str:
    first, last = points[0].day, points[-1].day
    parts = []
    for s in chart.series:
        known = [v for v in s.values if v is not None]
        if not known:
            parts.append(f"{s.name}: no data")
        elif chart.unit in ("%", "ms"):
            parts.append(f"{s.name}: from {_fmt(min(known), chart.unit)} to {_fmt(max(known), chart.unit)}")
        else:
            parts.append(
                f"{s.name}: {_fmt(sum(known), chart.unit)} in total, at most {_fmt(max(known), chart.unit)} a day"
            )
    return f"{chart.title}, {first:%b %d} to {last:%b %d}. " + "; ".join(parts) + "."


def overview_charts(points: Sequence[DayPoint]) -> list[Chart]:
    return [
        _chart("messages", "Messages per day", "", "bars", points, [("Messages", "s1", lambda p: p.messages)]),
        _chart("answer-rate", "Answer rate", "%", "lines", points, [("Answered", "s1", lambda p: p.answer_rate)]),
        _chart(
            "satisfaction",
            "Satisfaction (thumbs up)",
            "%",
            "lines",
            points,
            [("Thumbs up", "s1", lambda p: p.satisfaction)],
        ),
        _chart("cost", "Cost per day", "$", "bars", points, [("Cost", "s1", lambda p: p.cost)]),
        _chart(
            "latency",
            "Time to first token",
            "ms",
            "lines",
            points,
            [("p50", "s1", lambda p: p.ttft_p50_ms), ("p95", "s2", lambda p: p.ttft_p95_ms)],
        ),
    ]
