"""Plots as inline SVG, rendered on the server: line charts, bars, a traffic split, a lineage graph.

No JavaScript and no inline styles (the portal's CSP allows neither): colours are presentation
attributes. Every element goes through :func:`el`, which escapes attribute values and text, so a
user-supplied name can never become markup. Every chart has a ``<title>`` and an ``aria-label``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from markupsafe import Markup

PALETTE = ("#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#4d7c0f")
WIDTH, HEIGHT, LEFT, RIGHT, BOTTOM, TOP = 560, 220, 52, 16, 36, 12
INK, GREY, AXIS, GRID = "#111827", "#374151", "#6b7280", "#e5e7eb"
# Scores that live in [0, 1] (r2 only below 1): their axes never leave that range.
SCORES = re.compile(r"(accuracy|auc|f1|precision|recall|r2|error_rate|hit_rate)(_|$)")
NICE = (1.0, 2.0, 2.5, 5.0, 10.0)
SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
DAY = 86400


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]  # (x, y); x is a position (index or epoch seconds)


@dataclass(frozen=True)
class Axis:
    """An axis: its range, where its ticks go and how a tick (or a point's x) reads."""

    lo: float
    hi: float
    ticks: list[float]
    label: Callable[..., str] = field(default=lambda v, full=False: fmt(v), compare=False)


def bounds_of(metric: str) -> tuple[float | None, float | None]:
    """The range a metric cannot leave, by its name: (0, 1) for scores like accuracy and roc_auc,
    (None, 1) for r2, (None, None) for anything else (a loss, an error in the target's units)."""
    name = metric.lower().rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    found = SCORES.search(name)
    if found is None:
        return (None, None)
    return (None, 1.0) if found[1] == "r2" else (0.0, 1.0)


def nice_step(span: float, count: int = 5) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that cuts ``span`` into at most ``count``."""
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in NICE if m * magnitude >= raw * (1 - 1e-9))


def value_axis(
    values: Sequence[float],
    *,
    floor: float | None = None,
    bounds: tuple[float | None, float | None] = (None, None),
    count: int = 5,
) -> Axis:
    """A y axis that fits ``values`` with round ticks, starting at ``floor`` when given and never
    leaving ``bounds``; an axis of non-negative values never goes below 0.

    One value (or all equal) gets a little room above and below so it sits inside the plot.
    """
    lo, hi = min(values), max(values)
    if floor is not None:
        lo = min(lo, floor)
    if hi == lo and lo == floor:  # all at the floor: the floor at the bottom
        hi = lo + (abs(lo) or 1.0)
    elif hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    low = bounds[0] if bounds[0] is not None and min(values) >= bounds[0] else None
    if low is None and min(values) >= 0:
        low = 0.0
    high = bounds[1] if bounds[1] is not None and max(values) <= bounds[1] else None
    lo = max(lo, low) if low is not None else lo
    hi = min(hi, high) if high is not None else hi
    step = nice_step(hi - lo, count)
    start = round(math.floor(lo / step + 1e-9) * step, 12)
    end = round(math.ceil(hi / step - 1e-9) * step, 12)
    start = max(start, low) if low is not None else start
    end = min(end, high) if high is not None else end
    ticks = [round(start + i * step, 12) for i in range(round((end - start) / step) + 1)]
    return Axis(start, end, [t for t in ticks if start - 1e-9 <= t <= end + 1e-9])


def number_axis(xs: Sequence[float], span: tuple[float, float] | None = None, count: int = 6) -> Axis:
    """An x axis of steps or trials: whole-number ticks when every x is whole."""
    lo, hi = span if span is not None else (min(xs), max(xs))
    whole = all(float(x).is_integer() for x in xs)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    step = nice_step(hi - lo, count)
    if whole:
        step = max(1.0, math.ceil(step))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
    return Axis(lo, hi, ticks)


def time_axis(xs: Sequence[float], span: tuple[float, float] | None = None, count: int = 6) -> Axis:
    """An x axis of epoch seconds: ticks at whole seconds, minutes, hours or days (UTC)."""
    lo, hi = span if span is not None else (min(xs), max(xs))
    if hi == lo:  # one moment: half an hour either side
        lo, hi = lo - 1800, hi + 1800
    raw = (hi - lo) / count
    step = next((float(s) for s in SECONDS if s >= raw), DAY * float(math.ceil(raw / DAY)))
    first = math.ceil(lo / step) * step
    ticks = [first + i * step for i in range(int((hi - first) / step) + 1)]
    days = hi - lo > DAY or datetime.fromtimestamp(lo, UTC).date() != datetime.fromtimestamp(hi, UTC).date()
    tick_format = "%Y-%m-%d" if step >= DAY else ("%m-%d %H:%M" if days else "%H:%M")
    if step < 60:
        tick_format += ":%S"

    def label(value: float, full: bool = False) -> str:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if full else tick_format)

    return Axis(lo, hi, ticks, label)


def _x_axis(xs: Sequence[float], kind: str, span: tuple[float, float] | None) -> Axis:
    return time_axis(xs, span) if kind == "time" else number_axis(xs, span)


def el(tag: str, content: str | Markup | Iterable[Markup] = "", **attrs: object) -> Markup:
    """``<tag attrs>content</tag>`` with every attribute value and text escaped."""
    if not isinstance(content, str):
        content = Markup("").join(content)
    attributes = Markup("").join(
        Markup(' {}="{}"').format(key.rstrip("_").replace("_", "-"), value) for key, value in attrs.items()
    )
    return Markup("<{0}{1}>{2}</{0}>").format(tag, attributes, content)


def fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _figure(label: str, svg: Markup, legend: Sequence[str] = ()) -> Markup:
    parts = [svg, el("figcaption", label)]
    if len(legend) > 1:
        items = [
            el(
                "li",
                [
                    el("span", "■", class_="swatch", aria_hidden="true", data_colour=str(i % len(PALETTE))),
                    Markup(" "),
                    el("span", name),
                ],
            )
            for i, name in enumerate(legend)
        ]
        parts.append(el("ul", items, class_="legend"))
    return el("figure", parts, class_="chart")


def _svg(label: str, height: int, body: list[Markup]) -> Markup:
    return el(
        "svg",
        [el("title", label), *body],
        viewBox=f"0 0 {WIDTH} {height}",
        role="img",
        aria_label=label,
        preserveAspectRatio="xMidYMid meet",
    )


def empty(label: str, message: str) -> Markup:
    return el("figure", [el("figcaption", label), el("p", message, class_="muted")], class_="chart empty")


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 11, fill: str = GREY) -> Markup:
    return el("text", text, x=f"{x:.1f}", y=f"{y:.1f}", text_anchor=anchor, font_size=size, fill=fill)


def line_chart(
    label: str,
    series: Sequence[Series],
    *,
    x_kind: str = "number",
    x_title: str = "",
    x_range: tuple[float, float] | None = None,
    y_floor: float | None = None,
    y_bounds: tuple[float | None, float | None] = (None, None),
) -> Markup:
    """Lines (one per series) over shared axes with ticks, grid lines and a title on every point.

    ``x_kind`` is ``"time"`` (x in epoch seconds, ticks at whole minutes, hours or days, UTC) or
    ``"number"`` (steps, trials: whole-number ticks when every x is whole). ``x_range`` fixes the
    x axis (a time window) instead of fitting it to the points. ``y_floor`` starts the y axis there
    (0 for counts and rates); ``y_bounds`` is the range the metric cannot leave (:func:`bounds_of`),
    so accuracy's axis never goes past 1.
    """
    shown = [Series(s.name, [p for p in s.points if math.isfinite(p[1])]) for s in series]
    points = [p for s in shown for p in s.points]
    if not points:
        return empty(label, "no data yet")
    ys = value_axis([p[1] for p in points], floor=y_floor, bounds=y_bounds)
    xs = _x_axis([p[0] for p in points], x_kind, x_range)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - TOP

    def sx(x: float) -> float:
        return LEFT + (x - xs.lo) / (xs.hi - xs.lo) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (min(max(y, ys.lo), ys.hi) - ys.lo) / (ys.hi - ys.lo) * plot_h

    base = TOP + plot_h
    body: list[Markup] = []
    for tick in ys.ticks:
        y = sy(tick)
        body.append(el("line", x1=LEFT, y1=f"{y:.1f}", x2=WIDTH - RIGHT, y2=f"{y:.1f}", stroke=GRID))
        body.append(_text(LEFT - 4, y + 4, fmt(tick), "end"))
    for tick in xs.ticks:
        x = sx(tick)
        body.append(el("line", x1=f"{x:.1f}", y1=base, x2=f"{x:.1f}", y2=base + 4, stroke=AXIS))
        body.append(_text(x, base + 16, xs.label(tick), "middle"))
    body.append(el("line", x1=LEFT, y1=base, x2=WIDTH - RIGHT, y2=base, stroke=AXIS))
    body.append(el("line", x1=LEFT, y1=TOP, x2=LEFT, y2=base, stroke=AXIS))
    if x_title or x_kind == "time":
        body.append(_text(WIDTH - RIGHT, HEIGHT - 4, x_title or "time (UTC)", "end", 10))
    for i, s in enumerate(shown):
        colour = PALETTE[i % len(PALETTE)]
        pts = [(sx(x), sy(y), x, y) for x, y in s.points]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in pts)
            body.append(el("polyline", points=path, fill="none", stroke=colour, stroke_width=2))
        for x, y, at, value in pts:
            hover = el("title", f"{s.name}: {fmt(value)} at {xs.label(at, full=True)}")
            body.append(
                el("circle", hover, cx=f"{x:.1f}", cy=f"{y:.1f}", r=3 if len(pts) > 1 else 4, fill=colour)
            )
    if len(points) == 1:  # one point: say its value next to it
        x, y = sx(points[0][0]), sy(points[0][1])
        body.append(_text(x + 8, y - 6, fmt(points[0][1]), size=12, fill=INK))
    return _figure(label, _svg(label, HEIGHT, body), [s.name for s in series])


def bar_chart(
    label: str,
    bars: Sequence[tuple[str, float]],
    unit: str = "",
    limit: float | None = None,
    top: float | None = None,
) -> Markup:
    """Horizontal bars, one per (name, value), each with its value and a title to hover.

    ``limit`` draws a threshold line; ``top`` is the full width's value (1 for a score), the
    largest value otherwise.
    """
    if not bars:
        return empty(label, "no data yet")
    largest = max([v for _, v in bars if math.isfinite(v)] + [limit or 0.0, 1e-12])
    top = top if top is not None and top >= largest else largest
    row = 22
    height = TOP + row * len(bars) + 8
    name_w, plot_w = 160, WIDTH - 160 - 70
    body: list[Markup] = []
    for i, (name, value) in enumerate(bars):
        y = TOP + i * row
        width = max(0.0, value / top * plot_w) if math.isfinite(value) else 0.0
        body.append(_text(name_w - 6, y + 14, name[:28], "end", 12, INK))
        body.append(
            el(
                "rect",
                el("title", f"{name}: {fmt(value)}{unit}"),
                x=name_w,
                y=y + 3,
                width=f"{width:.1f}",
                height=14,
                fill=PALETTE[i % len(PALETTE)],
            )
        )
        body.append(_text(name_w + width + 4, y + 14, f"{fmt(value)}{unit}"))
    if limit is not None:
        x = f"{name_w + limit / top * plot_w:.1f}"
        body.append(
            el(
                "line",
                el("title", f"threshold {fmt(limit)}"),
                x1=x,
                y1=TOP,
                x2=x,
                y2=height - 4,
                stroke="#b91c1c",
                stroke_dasharray="4 3",
            )
        )
    return _figure(label, _svg(label, height, body))


def traffic_split(label: str, shares: Sequence[tuple[str, float]]) -> Markup:
    """One stacked bar: each version's share of the traffic (weights in percent)."""
    if not shares:
        return empty(label, "no traffic configured")
    total = sum(w for _, w in shares) or 1.0
    x = 0.0
    body: list[Markup] = []
    for i, (name, weight) in enumerate(shares):
        width = weight / total * WIDTH
        body.append(
            el(
                "rect",
                el("title", f"version {name}: {fmt(weight)}%"),
                x=f"{x:.1f}",
                y=0,
                width=f"{width:.1f}",
                height=34,
                fill=PALETTE[i % len(PALETTE)],
            )
        )
        if width > 80:
            body.append(_text(x + 8, 22, f"v{name} {fmt(weight)}%", size=13, fill="#ffffff"))
        x += width
    caption = f"{label}: " + ", ".join(f"version {n} {fmt(w)}%" for n, w in shares)
    return el("figure", [_svg(label, 34, body), el("figcaption", caption)], class_="chart")


def lineage(columns: Sequence[tuple[str, Sequence[str]]], edges: Sequence[tuple[str, str]]) -> Markup:
    """A left-to-right graph: columns of nodes (data versions, runs, model versions, deployment).

    Node ids are ``kind:label``; the label is what the box shows.
    """
    label = "Lineage: data version → run → model version → deployment"
    if not any(nodes for _, nodes in columns):
        return empty(label, "no runs yet")
    col_w = WIDTH / max(len(columns), 1)
    tallest = max(len(nodes) for _, nodes in columns) or 1
    height = 40 + 30 * tallest
    where: dict[str, tuple[float, float]] = {}
    boxes: list[Markup] = []
    for c, (title, nodes) in enumerate(columns):
        cx = c * col_w + 6
        boxes.append(_text(cx, 14, title, size=12, fill=INK))
        for r, node in enumerate(nodes):
            y = 26 + r * 30
            where[node] = (cx, y)
            boxes.append(
                el(
                    "rect",
                    el("title", node),
                    x=f"{cx:.1f}",
                    y=y,
                    width=f"{col_w - 24:.1f}",
                    height=22,
                    rx=4,
                    fill="#eef2ff",
                    stroke="#1f5fbf",
                )
            )
            boxes.append(_text(cx + 6, y + 15, node.split(":", 1)[-1][:22], fill=INK))
    lines = [
        el(
            "line",
            x1=f"{where[a][0] + col_w - 24:.1f}",
            y1=where[a][1] + 11,
            x2=f"{where[b][0]:.1f}",
            y2=where[b][1] + 11,
            stroke="#9ca3af",
        )
        for a, b in edges
        if a in where and b in where
    ]
    return el("figure", [_svg(label, height, lines + boxes), el("figcaption", label)], class_="chart")
