"""The portal's SVG charts: axes, ranges, ticks and what a chart of one point or none reads like."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from pave.portal import charts


def _ticks(svg: str) -> list[str]:
    """The text of the chart's tick labels, in order (y ticks first, then x ticks)."""
    return re.findall(r'<text [^>]*font-size="11"[^>]*>([^<]*)</text>', svg)


def _y_ticks(svg: str) -> list[float]:
    """The values of the y axis's tick labels (right-aligned, left of the axis)."""
    return [
        float(t) for t in re.findall(r'<text [^>]*text-anchor="end" font-size="11"[^>]*>([^<]*)</text>', svg)
    ]


@pytest.mark.parametrize(
    ("name", "bounds"),
    [
        ("accuracy", (0.0, 1.0)),
        ("roc_auc", (0.0, 1.0)),
        ("val_f1", (0.0, 1.0)),
        ("test.precision", (0.0, 1.0)),
        ("r2", (None, 1.0)),
        ("rmse", (None, None)),
        ("loss", (None, None)),
        ("aucpr_weird", (None, None)),
    ],
)
def test_scores_are_bounded_by_their_name(name: str, bounds: tuple[float | None, float | None]) -> None:
    assert charts.bounds_of(name) == bounds


@pytest.mark.parametrize(
    "values",
    [[0.97], [1.0], [0.93, 0.97, 0.99], [0.5, 1.0], [0.0], [0.999, 1.0]],
)
def test_an_accuracy_axis_never_goes_above_1_or_below_0(values: list[float]) -> None:
    axis = charts.value_axis(values, bounds=charts.bounds_of("accuracy"))
    assert 0.0 <= axis.lo <= min(values)
    assert max(values) <= axis.hi <= 1.0
    assert axis.ticks[0] >= axis.lo
    assert axis.ticks[-1] <= 1.0
    assert len(axis.ticks) >= 2


def test_a_value_axis_has_round_ticks_that_cover_the_values() -> None:
    axis = charts.value_axis([0.912, 0.958])
    assert axis.lo <= 0.912
    assert axis.hi >= 0.958
    steps = {round(b - a, 9) for a, b in zip(axis.ticks, axis.ticks[1:], strict=False)}
    assert len(steps) == 1  # evenly spaced
    (step,) = steps
    assert step in (0.01, 0.02, 0.025, 0.05)
    assert 3 <= len(axis.ticks) <= 7


def test_counts_start_at_the_floor_and_values_that_are_all_zero_still_have_a_range() -> None:
    axis = charts.value_axis([3.0, 17.0], floor=0)
    assert axis.lo == 0
    assert axis.hi >= 17
    flat = charts.value_axis([0.0, 0.0], floor=0)
    assert (flat.lo, flat.hi) == (0.0, 1.0)


def test_an_unbounded_metric_may_go_negative_but_a_positive_one_does_not_cross_zero() -> None:
    assert charts.value_axis([-3.0, 2.0]).lo <= -3.0
    assert charts.value_axis([0.01, 0.02]).lo >= 0.0
    r2 = charts.value_axis([-0.4, 0.6], bounds=charts.bounds_of("r2"))
    assert r2.lo <= -0.4
    assert r2.hi <= 1.0


def test_a_time_axis_puts_ticks_on_whole_minutes_and_reads_them_in_utc() -> None:
    start = datetime(2026, 12, 6, 10, 3, 17, tzinfo=UTC).timestamp()
    axis = charts.time_axis([], span=(start, start + 3600))
    assert 4 <= len(axis.ticks) <= 7
    assert all(t % 600 == 0 for t in axis.ticks)  # an hour: ticks every 10 minutes
    assert axis.label(axis.ticks[0]) == "10:10"
    assert axis.label(start, full=True) == "2026-12-06 10:03:17 UTC"
    week = charts.time_axis([start, start + 6 * 86400])
    assert all(t % 86400 == 0 for t in week.ticks)
    assert week.label(week.ticks[0]) == "2026-12-07"


def test_a_step_axis_has_whole_number_ticks() -> None:
    axis = charts.number_axis([0, 1, 2, 3, 4, 5, 6])
    assert all(float(t).is_integer() for t in axis.ticks)
    assert axis.ticks[0] == 0
    assert axis.ticks[-1] == 6
    assert charts.number_axis([3]).ticks == [2, 3, 4]  # one step: a little room either side


def test_an_accuracy_chart_has_lines_ticks_and_a_title_per_point_and_no_label_above_1() -> None:
    start = datetime(2026, 12, 6, 9, 0, tzinfo=UTC).timestamp()
    series = [charts.Series("accuracy", [(start + i * 600, v) for i, v in enumerate((0.95, 0.97, 0.99))])]
    svg = str(
        charts.line_chart("accuracy by run", series, x_kind="time", y_bounds=charts.bounds_of("accuracy"))
    )
    assert svg.count("<polyline") == 1
    assert svg.count("<circle") == 3
    assert "<title>accuracy: 0.97 at 2026-12-06 09:10:00 UTC</title>" in svg
    labels = _ticks(svg)
    assert _y_ticks(svg)
    assert max(_y_ticks(svg)) <= 1.0
    assert "09:00" in labels
    assert "time (UTC)" in svg


def test_a_chart_of_one_point_shows_the_point_and_its_value_and_one_of_none_says_so() -> None:
    svg = str(charts.line_chart("accuracy", [charts.Series("accuracy", [(5, 0.97)])], y_bounds=(0.0, 1.0)))
    assert "<polyline" not in svg  # no line through a single point
    assert svg.count("<circle") == 1
    assert ">0.97</text>" in svg
    assert max(_y_ticks(svg)) <= 1.0
    assert min(_y_ticks(svg)) < 0.97
    nothing = str(charts.line_chart("accuracy", [charts.Series("accuracy", [])]))
    assert "no data yet" in nothing
    assert "<svg" not in nothing


def test_bars_of_a_score_are_drawn_against_1() -> None:
    svg = str(charts.bar_chart("accuracy per run", [("a", 0.5), ("b", 0.25)], top=1.0))
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([0-9.]+)"', svg)]
    full = charts.WIDTH - 160 - 70
    assert widths == [pytest.approx(full * 0.5, abs=0.1), pytest.approx(full * 0.25, abs=0.1)]
    assert "<title>a: 0.5</title>" in svg
