"""Plots as inline SVG, rendered on the server: line charts, bars, a traffic split, a lineage graph.

No JavaScript and no inline styles (the portal's CSP allows neither): colours are presentation
attributes. Every element goes through :func:`el`, which escapes attribute values and text, so a
user-supplied name can never become markup. Every chart has a ``<title>`` and an ``aria-label``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

PALETTE = ("#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#4d7c0f")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 560, 200, 48, 28, 12
INK, GREY = "#111827", "#374151"


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]  # (x, y); x is a position (index or epoch seconds)


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
    x_labels: Sequence[str] = (),
    y_min: float | None = None,
    x_range: tuple[float, float] | None = None,
) -> Markup:
    """Lines (one per series) over a shared x axis; ``x_labels`` name the first and last x.

    ``x_range`` fixes the axis (a time window) instead of fitting it to the points; ``y_min``
    starts the y axis there (0 for counts and rates).
    """
    points = [p for s in series for p in s.points if math.isfinite(p[1])]
    if not points:
        return empty(label, "no data yet")
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = x_range if x_range is not None else (min(xs), max(xs))
    y0 = min(ys) if y_min is None else min(y_min, min(ys))
    y1 = max(ys)
    if y1 == y0 and y_min is not None:  # all at the floor: show the floor at the bottom
        y1 = y0 + (abs(y0) or 1.0)
    elif y1 == y0:  # one value: centre it
        pad = abs(y0) * 0.05 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    if x1 == x0:
        x1 = x0 + 1
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    base = TOP + plot_h
    body = [
        el("line", x1=LEFT, y1=base, x2=WIDTH - 10, y2=base, stroke="#6b7280"),
        el("line", x1=LEFT, y1=TOP, x2=LEFT, y2=base, stroke="#6b7280"),
        _text(LEFT - 4, TOP + 8, fmt(y1), "end"),
        _text(LEFT - 4, base, fmt(y0), "end"),
    ]
    if x_labels:
        body.append(_text(LEFT, HEIGHT - 8, x_labels[0]))
        body.append(_text(WIDTH - 10, HEIGHT - 8, x_labels[-1], "end"))
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        pts = [(sx(x), sy(y)) for x, y in s.points if math.isfinite(y)]
        if not pts:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        body.append(el("polyline", points=path, fill="none", stroke=colour, stroke_width=2))
        body.extend(el("circle", cx=f"{x:.1f}", cy=f"{y:.1f}", r=2.5, fill=colour) for x, y in pts)
    return _figure(label, _svg(label, HEIGHT, body), [s.name for s in series])


def bar_chart(
    label: str, bars: Sequence[tuple[str, float]], unit: str = "", limit: float | None = None
) -> Markup:
    """Horizontal bars, one per (name, value); ``limit`` draws a threshold line."""
    if not bars:
        return empty(label, "no data yet")
    top = max([v for _, v in bars if math.isfinite(v)] + [limit or 0.0, 1e-12])
    row = 22
    height = TOP + row * len(bars) + 8
    name_w, plot_w = 160, WIDTH - 160 - 70
    body: list[Markup] = []
    for i, (name, value) in enumerate(bars):
        y = TOP + i * row
        width = max(0.0, value / top * plot_w) if math.isfinite(value) else 0.0
        body.append(_text(name_w - 6, y + 14, name[:28], "end", 12, INK))
        body.append(
            el("rect", x=name_w, y=y + 3, width=f"{width:.1f}", height=14, fill=PALETTE[i % len(PALETTE)])
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
